"""``est-hw provision PLAN.toml``: a tray of 50 real SoftHSM2 tokens against the real test
server; rerun skips, a SIGKILLed run is finished by the next one with no duplicate key, a
failing device does not stop the others, secrets are refused in the plan, CSV values feed
the templates.

The tokens live in their own SoftHSM2 directory (on /dev/shm when there is one: SoftHSM
rewrites its object files on every change, which ext4 makes slow), so ``tokens = "all"``
sees exactly them."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from est_hw.testing.config import Response
from tests.conftest import REPO, SO_PIN, SOFTHSM_MODULE, USER_PIN, SoftHsmToken
from tests.e2e.conftest import EST_HW, Cli, CliResult, StartServer
from tests.pkcs11_tool import TokenObject, list_objects

TRAY = 50
WRONG_PIN = "wrong-PIN-kq7z"
REPORT_FIELDS = {
    "device", "index", "group", "status", "token_label", "token_serial", "slot", "tcti",
    "key_label", "subject", "serial", "not_after", "resumed", "retry_after", "error",
    "exit_code", "timings", "started_at", "finished_at", "worker", "attempts",
}  # fmt: skip


@dataclass(frozen=True)
class Tray:
    """A SoftHSM2 token directory of its own with ``labels`` initialised in it."""

    conf: Path
    labels: tuple[str, ...]

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def token(self, label: str) -> SoftHsmToken:
        return SoftHsmToken(label, USER_PIN, SO_PIN, SOFTHSM_MODULE, self.conf)


def make_tray(base: Path, count: int, prefix: str = "dev") -> Tray:
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    template = (REPO / "softhsm" / "softhsm2.conf.in").read_text()
    conf.write_text(template.replace("@TOKENDIR@", str(base / "tokens")))
    labels = tuple(f"{prefix}-{n:02d}" for n in range(1, count + 1))
    for label in labels:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
             "--pin", USER_PIN],
            check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        )  # fmt: skip
    return Tray(conf, labels)


@pytest.fixture
def tray_dir() -> Iterator[Path]:
    """A private directory for token files, in memory when possible."""
    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(prefix="est-hw-tray-", dir=shm if shm.is_dir() else None))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    """The CLI with a clean environment (no EST_HW_*, no user config file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EST_HW_")}
    env.update(EST_HW_PIN=USER_PIN, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    return Cli(env)


def write_plan(
    path: Path, url: str, ca_file: Path, *, devices: str, server_extra: str = "", extra: str = ""
) -> Path:
    path.write_text(
        f"""
[server]
url = "{url}"
ca_file = "{ca_file}"
{server_extra}
[key]
type = "ec-p256"
[subject]
template = "CN=dev-{{token_label}}"
{extra}
{devices}
"""
    )
    return path


ALL_TOKENS = f"""
[[devices]]
module = "{SOFTHSM_MODULE}"
tokens = "all"
pin_source = "env:EST_HW_PIN"
"""


def read_report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def slow_enrollments(seconds: float) -> Callable[[str, Response], Response]:
    """A test-server hook that delays every /simpleenroll answer by ``seconds``: keeps a
    run long enough to interrupt it in the middle."""

    def slow(operation: str, response: Response) -> Response:
        if operation == "simpleenroll":
            time.sleep(seconds)
        return response

    return slow


def start_provision(
    run: Cli, tray: Tray, plan: Path, report: Path, *options: str, **popen: Any
) -> subprocess.Popen[str]:
    """``est-hw provision PLAN --workers now --report REPORT OPTIONS`` in the background
    on ``tray``'s tokens; stdout and stderr are pipes of text unless ``popen`` says else."""
    return subprocess.Popen(
        [EST_HW, "provision", str(plan), "--workers", "now", "--report", str(report), *options],
        env={**run.env, **tray.env()},
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen},
    )


def wait_for_lines(report: Path, count: int) -> None:
    """Wait (at most a minute) until the report has ``count`` lines."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if report.exists() and len(report.read_text().splitlines()) >= count:
            return
        time.sleep(0.005)


# --- processes, as /proc shows them (Linux) ---------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name; None when gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields


def worker_processes(parent: int) -> dict[int, str]:
    """The live worker processes (multiprocessing ``spawn`` children) of ``parent``, each
    with its start time (to tell a reused pid apart)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields and int(fields[1]) == parent and b"--multiprocessing-fork" in cmdline:
            found[int(entry.name)] = fields[19]
    return found


def processes_with(variable: str, value: str) -> set[int]:
    """The live processes whose environment has ``variable=value``."""
    wanted = f"{variable}={value}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ and _stat(int(entry.name)) is not None:
            found.add(int(entry.name))
    return found


def wait_gone(processes: dict[int, str], timeout: float = 5.0) -> dict[int, str]:
    """Wait until none of ``processes`` (pid: start time) runs; those still running."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {pid: start for pid, start in processes.items()
                 if (fields := _stat(pid)) is not None and fields[19] == start}  # fmt: skip
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


def is_stub(obj: TokenObject) -> bool:
    """An object that a process killed inside SoftHSM's object creation left behind.

    SoftHSM creates the object file first and writes the attributes one by one, so a
    SIGKILL in between (of ``est-hw`` or of a worker process dying with it) leaves an
    object with neither label nor id (a data object, or a public key without its point).
    It is no key anyone could use, and not est-hw's to delete. pkcs11-tool prints such a
    label as ``''`` when the attribute is there but empty, and as ``<empty>`` when the
    object has no label attribute at all (a data object killed before any attribute).
    """
    return obj.label in ("", "''", "<empty>") and not obj.id


def assert_one_key_and_certificate_each(tray: Tray, labels: tuple[str, ...]) -> None:
    """Exactly one key pair, one certificate with its id, no journal record left."""
    for label in labels:
        everything = list_objects(tray.token(label))
        objects = [o for o in everything if not is_stub(o)]
        private = [o for o in objects if o.kind.startswith("Private Key Object")]
        assert len(private) == 1, (label, everything)
        public = [o for o in objects if o.kind.startswith("Public Key Object")]
        assert [o.id for o in public] == [private[0].id], (label, everything)
        records = [o for o in objects if o.kind.startswith("Data object")]
        assert not records, (label, everything)
        certs = [o for o in objects if o.kind.startswith("Certificate Object")]
        assert [o.id for o in certs].count(private[0].id) == 1, (label, everything)


def test_tray_of_50_issued_then_all_skipped(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    tray = make_tray(tray_dir, TRAY)
    server, _ = est_server(users={"line7": "s3cret"}, auth="digest")  # writes ca-1.pem
    (tmp_path / "est-password").write_text("s3cret\n")
    plan = write_plan(
        tmp_path / "plan.toml", server.url, Path("ca-1.pem"), devices=ALL_TOKENS,
        server_extra='username = "line7"\npassword_file = "est-password"',
    )  # fmt: skip
    report = tmp_path / "report.jsonl"
    started = time.monotonic()
    first = run("provision", str(plan), "--jobs", "2", "--report", str(report), "--json",
                env=tray.env())  # fmt: skip
    elapsed = time.monotonic() - started
    assert first.code == 0, first.stderr
    summary = first.json()
    assert (summary["issued"], summary["skipped"], summary["failed"]) == (TRAY, 0, 0)
    lines = read_report(report)
    assert len(lines) == TRAY
    assert sorted(line["token_label"] for line in lines) == list(tray.labels)
    for line in lines:
        assert set(line) == REPORT_FIELDS
        assert line["status"] == "issued"
        assert line["error"] is None and line["exit_code"] == 0
        assert line["device"] == line["token_label"]
        assert line["subject"] == f"CN=dev-{line['token_label']}"
        assert line["key_label"] == f"dev-{line['token_label']}"
        assert line["token_serial"] and isinstance(line["slot"], int)
        assert int(line["serial"], 16) > 0 and line["not_after"]
        assert {"token_open", "keygen", "csr_sign", "http", "verify", "store"} <= set(
            line["timings"]["phases_ms"]
        )
    assert sorted(line["index"] for line in lines) == list(range(1, TRAY + 1))
    # est-hw and (once it pays: --workers auto) one worker process, each with one TLS
    # connection reused for all of its devices
    assert 1 <= len({line["worker"] for line in lines}) <= 2
    assert len({record.connection for record in server.requests}) <= 2
    # the anchor file holds only the root: each worker fetched /cacerts once to complete
    # the chain, and its later devices reused the answer
    fetched = [r for r in server.requests if r.path.endswith("/cacerts")]
    assert 1 <= len(fetched) <= 2
    print(f"\n50 tokens, --jobs 2: {elapsed:.1f} s, {summary['devices_per_second']} devices/s")

    again = run("provision", str(plan), "--report", str(report), "--json", env=tray.env())
    assert again.code == 0, again.stderr
    assert (again.json()["issued"], again.json()["skipped"]) == (0, TRAY)
    skipped = {line["token_label"]: line for line in read_report(report)}
    assert len(skipped) == TRAY
    first_serials = {line["token_label"]: line["serial"] for line in lines}
    for label, line in skipped.items():
        assert line["status"] == "skipped"
        assert line["serial"] == first_serials[label]
    assert_one_key_and_certificate_each(tray, tray.labels)


def test_killed_midway_then_rerun_finishes_without_duplicates(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    tray = make_tray(tray_dir, TRAY)

    server, ca_file = est_server(response_hook=slow_enrollments(0.02))
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    report = tmp_path / "killed.jsonl"
    proc = start_provision(run, tray, plan, report, "--jobs", "3",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for_lines(report, 10)
    workers = worker_processes(proc.pid)
    assert len(workers) == 2
    for pid in workers:  # the PIN went over a pipe: not on argv, not in the environment
        assert USER_PIN.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"EST_HW_PIN=" not in Path(f"/proc/{pid}/environ").read_bytes()
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # the workers die with est-hw: none goes on enrolling while the rerun starts
    assert not wait_gone(workers)
    done_before = read_report(report)
    assert 10 <= len(done_before) < TRAY

    rerun = run("provision", str(plan), "--report", str(tmp_path / "rerun.jsonl"), "--json",
                env=tray.env())  # fmt: skip
    assert rerun.code == 0, rerun.stderr
    summary = rerun.json()
    assert summary["issued"] + summary["skipped"] == TRAY
    assert summary["skipped"] >= len(done_before)
    lines = {line["token_label"]: line for line in read_report(tmp_path / "rerun.jsonl")}
    for line in done_before:
        assert lines[line["token_label"]]["status"] == "skipped"
        assert lines[line["token_label"]]["serial"] == line["serial"]
    assert_one_key_and_certificate_each(tray, tray.labels)


def _span(line: dict[str, Any]) -> tuple[float, float]:
    start = datetime.datetime.fromisoformat(line["started_at"]).timestamp()
    return start, datetime.datetime.fromisoformat(line["finished_at"]).timestamp()


def certain_keygen_overlap(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Seconds during which devices ``a`` and ``b`` were certainly both generating keys.

    Within the overlap W of their spans, each device spent at most (span - keygen) doing
    anything else, so their key generations overlapped by at least
    ``|W| - (span_a - keygen_a) - (span_b - keygen_b)``.
    """
    (start_a, end_a), (start_b, end_b) = _span(a), _span(b)
    window = min(end_a, end_b) - max(start_a, start_b)
    keygen_a = float(a["timings"]["phases_ms"]["keygen"]) / 1000
    keygen_b = float(b["timings"]["phases_ms"]["keygen"]) / 1000
    return window - (end_a - start_a - keygen_a) - (end_b - start_b - keygen_b)


def test_jobs_are_worker_processes_generating_keys_at_the_same_time(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    """12 RSA tokens at --jobs 3 --workers now: est-hw's own job and 2 worker processes,
    whose key generations overlapped.  (--workers auto would start them too, but how many
    depends on SoftHSM's RSA key generation time, which varies from 0.05 to 0.4 s.)

    Threads of one process cannot pass: they share its pid, and the module lock lets one
    of them into the token at a time.  In each process the keygen phase is pure token
    time (one device at a time, no lock to wait for), so the overlap bound is honest.
    """
    tray = make_tray(tray_dir, 12)
    server, ca_file = est_server()
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    plan.write_text(plan.read_text().replace('type = "ec-p256"', 'type = "rsa-2048"'))
    report = tmp_path / "report.jsonl"
    proc = start_provision(run, tray, plan, report, "--jobs", "3", "--json")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["issued"] == 12
    lines = read_report(report)
    workers = {line["worker"] for line in lines}
    assert len(workers) == 3 and proc.pid in workers
    pairs = [(a, b) for a in lines for b in lines if a["worker"] < b["worker"]]
    best = max(certain_keygen_overlap(a, b) for a, b in pairs)
    assert best > 0, [(line["worker"], _span(line), line["timings"]) for line in lines]
    print(f"\nkey generations on two workers overlapped by at least {best * 1000:.0f} ms")

    again = run("provision", str(plan), "--jobs", "3", "--json", env=tray.env())
    assert again.code == 0, again.stderr
    assert (again.json()["issued"], again.json()["skipped"]) == (0, 12)
    assert_one_key_and_certificate_each(tray, tray.labels)


@pytest.mark.parametrize(("point", "jobs"), [("after-keygen@worker", 3),
                                             ("after-answer@worker", 3),
                                             ("after-keygen", 2), ("after-keygen", 1)])  # fmt: skip
def test_a_crash_point_kills_the_whole_run_and_the_rerun_finishes_it(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer, point: str, jobs: int
) -> None:
    tray = make_tray(tray_dir, 6)
    server, ca_file = est_server()
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    killed = run("provision", str(plan), "--jobs", str(jobs), "--workers", "now", "--json",
                 env={**tray.env(), "EST_HW_CRASH_AT": point})  # fmt: skip
    # est-hw itself was killed (@worker: by the worker that reached the point), not just a
    # worker; and no worker outlived it
    assert killed.code == -signal.SIGKILL, killed.stderr
    assert killed.stdout == ""
    assert not _orphans(tray)

    rerun = run("provision", str(plan), "--jobs", str(jobs), "--json", env=tray.env())
    assert rerun.code == 0, rerun.stderr
    summary = rerun.json()
    assert summary["issued"] + summary["skipped"] == 6
    assert summary["issued"] >= 1
    assert_one_key_and_certificate_each(tray, tray.labels)


def _orphans(tray: Tray) -> set[int]:
    """Processes still running with the tray's token directory, after a grace period."""
    deadline = time.monotonic() + 5
    while (left := processes_with("SOFTHSM2_CONF", str(tray.conf))) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def test_a_worker_killed_once_costs_no_device(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    """A worker killed from outside takes the pool down; the devices it stopped are run
    again, one at a time, and resume: every device is issued, with one key each."""
    tray = make_tray(tray_dir, 16)

    server, ca_file = est_server(response_hook=slow_enrollments(0.05))
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    report = tmp_path / "report.jsonl"
    proc = start_provision(run, tray, plan, report, "--jobs", "3", "--json")
    wait_for_lines(report, 3)
    first_workers = worker_processes(proc.pid)
    os.kill(min(first_workers), signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["issued"] == 16
    lines = read_report(report)
    assert len(lines) == 16
    again = [line for line in lines if line["attempts"] == 2]
    assert 1 <= len(again) <= 2  # the devices on the two workers when one was killed
    assert all(line["status"] == "issued" for line in again)
    assert {line["attempts"] for line in lines} == {1, 2}
    # the devices went on on new workers
    assert {line["worker"] for line in lines} - {*first_workers, proc.pid}
    assert_one_key_and_certificate_each(tray, tray.labels)


def test_a_device_that_crashes_its_worker_fails_alone(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    """dev-02's worker dies before it sends its request, every time (a token library that
    crashes): it fails on its second attempt, run alone, and no other device fails."""
    tray = make_tray(tray_dir, 10)

    server, ca_file = est_server(response_hook=slow_enrollments(0.2))
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    report = tmp_path / "report.jsonl"
    # --workers now: est-hw's own job takes dev-01, the workers dev-02 (and dev-03)
    crash = {"EST_HW_CRASH_AT": "before-send@worker:dev-02"}
    result = run("provision", str(plan), "--jobs", "3", "--workers", "now", "--report",
                 str(report), "--json", env={**tray.env(), **crash})  # fmt: skip
    assert result.code == 8, result.stderr
    assert "Traceback" not in result.stderr
    summary = result.json()
    assert (summary["issued"], summary["failed"]) == (9, 1)
    (failure,) = summary["failures"]
    assert failure["device"] == "dev-02"
    assert "a worker process died twice" in failure["error"]
    lines = {line["device"]: line for line in read_report(report)}
    assert len(lines) == 10
    assert lines["dev-02"]["attempts"] == 2
    assert lines["dev-02"]["worker"] is None
    # whichever devices shared the workers with dev-02 were run again and issued (which
    # ones depends on when the pool notices the death: not at once for a new worker)
    assert all(line["status"] == "issued" for name, line in lines.items() if name != "dev-02")
    assert {line["attempts"] for line in lines.values()} <= {1, 2}
    assert_one_key_and_certificate_each(tray, tuple(x for x in tray.labels if x != "dev-02"))

    rerun = run("provision", str(plan), "--json", env=tray.env())  # the library fixed
    assert rerun.code == 0, rerun.stderr
    assert (rerun.json()["issued"], rerun.json()["skipped"]) == (1, 9)
    assert_one_key_and_certificate_each(tray, tray.labels)


def test_ctrl_c_finishes_the_devices_in_progress_and_starts_no_other(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    tray = make_tray(tray_dir, 16)

    server, ca_file = est_server(response_hook=slow_enrollments(0.1))
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    report = tmp_path / "report.jsonl"
    # start_new_session: a process group of its own, as a terminal's job
    proc = start_provision(run, tray, plan, report, "--jobs", "2", start_new_session=True)
    wait_for_lines(report, 2)
    workers = worker_processes(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches est-hw and its workers
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert not wait_gone(workers)
    reported = len(read_report(report))
    touched = [label for label in tray.labels if list_objects(tray.token(label))]
    # the devices in progress were finished (one key, one certificate, no journal), but
    # no device was started after the interrupt
    assert reported <= len(touched) <= reported + 2
    assert_one_key_and_certificate_each(tray, tuple(touched))

    rerun = run("provision", str(plan), "--json", env=tray.env())
    assert rerun.code == 0, rerun.stderr
    assert (rerun.json()["issued"], rerun.json()["skipped"]) == (16 - len(touched), len(touched))


def test_a_failed_device_does_not_stop_the_others(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    tray = make_tray(tray_dir, 6)
    server, ca_file = est_server()
    # a PIN that cannot turn up by chance: "9999" once did, inside a random token serial
    (tmp_path / "wrong-pin").write_text(f"{WRONG_PIN}\n")
    devices = f"""
[[devices]]
module = "{SOFTHSM_MODULE}"
tokens = ["dev-01", "dev-02", "dev-03", "dev-04"]
pin_source = "env:EST_HW_PIN"

[[devices]]
module = "{SOFTHSM_MODULE}"
tokens = ["dev-05", "no-such-token"]
pin_source = "file:wrong-pin"

[[devices]]
module = "{SOFTHSM_MODULE}"
tokens = ["dev-06"]
pin_source = "env:EST_HW_UNSET_PIN"
"""
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=devices)
    report = tmp_path / "report.jsonl"
    result = run("provision", str(plan), "--report", str(report), "--json", "--progress",
                 env=tray.env())  # fmt: skip
    assert result.code == 8, result.stderr
    assert "\x1b[Kprovisioning 7/7: 4 issued, 0 skipped, 3 failed, 0 running" in result.stderr
    summary = result.json()
    assert (summary["status"], summary["issued"], summary["failed"]) == ("failed", 4, 3)
    lines = {line["device"]: line for line in read_report(report)}
    assert len(lines) == 7
    for label in ("dev-01", "dev-02", "dev-03", "dev-04"):
        assert lines[label]["status"] == "issued"
    assert lines["dev-05"]["status"] == "failed"
    assert lines["dev-05"]["exit_code"] == 4
    assert "rejected the PIN" in lines["dev-05"]["error"]
    assert lines["no-such-token"]["status"] == "failed"
    assert lines["no-such-token"]["exit_code"] == 4
    assert "EST_HW_UNSET_PIN" in lines["dev-06"]["error"]
    assert lines["dev-06"]["exit_code"] == 2
    assert WRONG_PIN not in result.stdout + result.stderr + report.read_text()
    assert "est-hw: dev-05: failed:" in result.stderr
    assert not list_objects(tray.token("dev-05"))
    assert_one_key_and_certificate_each(tray, ("dev-01", "dev-02", "dev-03", "dev-04"))


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ('password = "s3cret-value"', "[server]"),
        ('pin = "s3cret-value"', "[[devices]]"),
        ('user_pin = "s3cret-value"', "[[devices]]"),
    ],
)
def test_a_plan_with_a_literal_secret_is_refused(
    run: Cli, tmp_path: Path, snippet: str, where: str
) -> None:
    in_server = where == "[server]"
    server_extra = 'username = "line7"\n' + (snippet if in_server else "")
    devices = ALL_TOKENS + ("" if in_server else snippet)
    plan = write_plan(tmp_path / "plan.toml", "https://est.example", Path("ca.pem"),
                      devices=devices, server_extra=server_extra)  # fmt: skip
    result = run("provision", str(plan), "--json")
    assert result.code == 2
    assert "secret" in result.stderr
    assert "s3cret-value" not in result.stderr + result.stdout
    assert result.json()["exit_code"] == 2


def test_pending_devices_exit_7_and_the_rerun_resumes_them(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    tray = make_tray(tray_dir, 3)
    server, ca_file = est_server(pending=2, retry_after=1)
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    report = tmp_path / "report.jsonl"
    first = run("provision", str(plan), "--jobs", "1", "--report", str(report), "--json",
                env=tray.env())  # fmt: skip
    assert first.code == 7, first.stderr
    assert (first.json()["status"], first.json()["pending"], first.json()["issued"]) == (
        "pending", 2, 1
    )  # fmt: skip
    pending = [line for line in read_report(report) if line["status"] == "pending"]
    assert [line["retry_after"] for line in pending] == [1, 1]
    time.sleep(1)
    second = run("provision", str(plan), "--report", str(report), "--json", env=tray.env())
    assert second.code == 0, second.stderr
    lines = {line["device"]: line for line in read_report(report)}
    for line in pending:
        assert lines[line["device"]]["status"] == "issued"
        assert lines[line["device"]]["resumed"] is True
    assert_one_key_and_certificate_each(tray, tray.labels)


def test_csv_values_feed_the_templates(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    tray = make_tray(tray_dir, 3, prefix="line")
    server, ca_file = est_server()
    (tmp_path / "assets.csv").write_text(
        "token_label,asset,site\nline-01,A-1001,Lyon\nline-02,A-1002,Graz\nline-03,A-1003,Oslo\n"
    )
    extra = """
[subject]
template = "CN=asset-{asset},L={site},O=Example\\\\, Inc."
san = ["dns:{asset}.devices.example", "uri:urn:asset:{asset}:{index:03d}"]
[values]
csv = "assets.csv"
match = "token_label"
"""
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS)
    text = plan.read_text().replace('[subject]\ntemplate = "CN=dev-{token_label}"\n', extra)
    plan.write_text(text)
    report = tmp_path / "report.jsonl"
    dry = run("provision", str(plan), "--dry-run", "--json", env=tray.env())
    assert dry.code == 0, dry.stderr
    rows = dry.json()["devices"]
    assert [row["key_label"] for row in rows] == [
        "asset-A-1001", "asset-A-1002", "asset-A-1003"
    ]  # fmt: skip
    assert [row["index"] for row in rows] == [1, 2, 3]  # numbers, as in the report
    assert all(isinstance(row["slot"], int) for row in rows)
    result = run("provision", str(plan), "--report", str(report), env=tray.env())
    assert result.code == 0, result.stderr
    lines = {line["token_label"]: line for line in read_report(report)}
    assert lines["line-02"]["subject"] == "CN=asset-A-1002,L=Graz,O=Example\\, Inc."
    assert lines["line-02"]["key_label"] == "asset-A-1002"
    show = run("show", "--token", "line-02", "--module", SOFTHSM_MODULE, "--json",
               env=tray.env())  # fmt: skip
    assert show.code == 0, show.stderr
    (key,) = show.json()["keys"]
    assert key["label"] == "asset-A-1002"
    assert key["certificate"]["subject"] == "CN=asset-A-1002,L=Graz,O=Example\\, Inc."
    issued = [r for r in server.requests if r.path.endswith("/simpleenroll")]
    assert len(issued) == 3
    sans = set()
    for record in issued:
        csr = x509.load_der_x509_csr(_unbase64(record.body))
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans |= {str(name.value) for name in ext.value}
    assert {"A-1002.devices.example", "urn:asset:A-1002:002"} <= sans


def _unbase64(body: bytes) -> bytes:
    import base64

    return base64.b64decode(b"".join(body.split()))


def test_csv_without_a_row_for_a_device_fails_only_that_device(
    run: Cli, tmp_path: Path, tray_dir: Path, est_server: StartServer
) -> None:
    tray = make_tray(tray_dir, 2)
    server, ca_file = est_server()
    (tmp_path / "assets.csv").write_text("token_label,asset\ndev-01,A-1\n")
    extra = '[values]\ncsv = "assets.csv"\nmatch = "token_label"\n'
    plan = write_plan(tmp_path / "plan.toml", server.url, ca_file, devices=ALL_TOKENS,
                      extra=extra)  # fmt: skip
    result = run("provision", str(plan), "--json", env=tray.env())
    assert result.code == 8
    assert (result.json()["issued"], result.json()["failed"]) == (1, 1)
    (failure,) = result.json()["failures"]
    assert failure["device"] == "dev-02"
    assert "no row with token_label='dev-02'" in failure["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[server]\nurl = 'https://x'\n", "no trust anchor"),
        ("[server]\nurl = 'https://x'\nca_file = 'ca.pem'\n[subject]\ntemplate = 'CN=x'\n",
         "at least one group"),
        ("[server]\nurl = 'https://x'\nca_file = 'ca.pem'\nurl_typo = 1\n", "unknown key"),
        ("[server]\nurl = 'https://x'\nca_file = 'ca.pem'\n[subject]\n"
         "template = 'CN={serial}'\n[[devices]]\nmodule = 'm.so'\ntokens = 'all'\n",
         "unknown variable {serial}"),
        ("[server]\nurl = 'https://x'\nca_file = 'ca.pem'\n[subject]\n"
         "template = 'CN={tcti}'\n[[devices]]\nmodule = 'm.so'\ntokens = 'all'\n",
         "unknown variable {tcti}"),
        ("[server]\nurl = 'https://x'\nca_file = 'ca.pem'\n[subject]\n"
         "template = 'CN={token_label.__class__}'\n[[devices]]\nmodule = 'm.so'\n"
         "tokens = 'all'\n", "plain {name}"),
        ("[server]\nurl = 'https://x'\nca_file = 'ca.pem'\n[key]\ntype = 'ec-p521'\n",
         "is not one of"),
        ("[server]\nurl = 'https://x'\nca_file = 'ca.pem'\n[subject]\ntemplate = 'CN=x'\n"
         "[[devices]]\nmodule = 'm.so'\ntokens = 'all'\npin_source = 'pin:1234'\n",
         "env:VAR or file:PATH"),
        ("not toml [", "not valid TOML"),
    ],
)  # fmt: skip
def test_plan_errors_name_the_problem(run: Cli, tmp_path: Path, body: str, message: str) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(body)
    result = run("provision", str(plan))
    assert result.code == 2
    assert message in result.stderr, result.stderr
    assert str(plan) in result.stderr


def test_dry_run_lists_devices_without_touching_them(
    run: Cli, tmp_path: Path, tray_dir: Path
) -> None:
    tray = make_tray(tray_dir, 3)
    plan = write_plan(tmp_path / "plan.toml", "https://est.invalid", tmp_path / "none.pem",
                      devices=ALL_TOKENS)  # fmt: skip
    result = run("provision", str(plan), "--dry-run", env=tray.env())
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"   {n} dev-0{n}: key 'dev-dev-0{n}' subject 'CN=dev-dev-0{n}' san []" for n in (1, 2, 3)
    ]


def test_provision_help_is_listed(run: Cli) -> None:
    result: CliResult = run("--help")
    assert "provision" in result.stdout


@pytest.mark.skipif(shutil.which("swtpm") is None, reason="needs swtpm")
def test_two_tpms_in_one_plan(run: Cli, tmp_path: Path, est_server: StartServer) -> None:
    from tests.tpm.conftest import start_swtpm

    tpms = [start_swtpm(tmp_path / f"swtpm-{n}") for n in (1, 2)]
    try:
        server, ca_file = est_server()
        tctis = ", ".join(f'"{tpm.tcti}"' for tpm in tpms)
        plan = tmp_path / "plan.toml"
        plan.write_text(f"""
[server]
url = "{server.url}"
ca_file = "{ca_file}"
[subject]
template = "CN=tpm-{{index}}"
san = ["dns:tpm-{{index}}.devices.example"]
[[devices]]
tctis = [{tctis}]
state_dir = "tpm-state"
""")  # fmt: skip
        report = tmp_path / "report.jsonl"
        env = {"TSS2_LOG": "all+none"}
        result = run("provision", str(plan), "--report", str(report), "--json", env=env)
        assert result.code == 0, result.stderr
        lines = {line["tcti"]: line for line in read_report(report)}
        assert {lines[tpm.tcti]["subject"] for tpm in tpms} == {"CN=tpm-1", "CN=tpm-2"}
        again = run("provision", str(plan), "--json", env=env)
        assert again.code == 0, again.stderr
        assert again.json()["skipped"] == 2
        for tpm in tpms:
            state = tmp_path / "tpm-state" / tpm.tcti.replace(":", "_").replace("=", "_")
            shown = run("show", "--tpm", "--tcti", tpm.tcti, "--state-dir", str(state),
                        "--json", env=env)  # fmt: skip
            assert shown.code == 0, shown.stderr
            (key,) = shown.json()["keys"]
            assert key["label"] == lines[tpm.tcti]["key_label"]
            assert key["certificate"]["matches_key"]
    finally:
        for tpm in tpms:
            tpm.stop()
