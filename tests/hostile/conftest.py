"""Fixtures of the hostile-server suite.

* the e2e fixtures ``cli`` and ``est_server`` (imported, not copied);
* ``hostile``: runs est-hw against a misbehaving test server and checks the outcome --
  the documented exit code, one error line, and a token left exactly as it was (or the
  pending state after a 202, or one key with its certificate after a success);
* :class:`Batch` (``batch_fixture``): the same for the cases of a whole test module, run
  two at a time ahead of the tests that check them.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from est_hw.testing.config import ServerConfig
from est_hw.testing.misbehaviour import Misbehaviour
from est_hw.testing.server import EstTestServer
from tests.conftest import (
    REPO,
    SO_PIN,
    SOFTHSM_MODULE,
    USER_PIN,
    SoftHsmToken,
)
from tests.e2e.conftest import EST_HW, Cli, CliResult, StartServer, cli, est_server
from tests.hostile.expectations import EXPECTED, SHORT_TIMEOUT, Expect
from tests.pkcs11_tool import list_objects, public_key_matches, read_object

__all__ = ["cli", "est_server"]  # the e2e fixtures, used here as they are

#: --timeout of runs that are not expected to stall (generous: the suite runs loaded)
TIMEOUT = "10"
#: how long after its --timeout a stalled run may take to end (process start, keygen...)
STALL_SLACK = 6.0
#: HTTP credentials of the runs that need them (throwaway test values)
USERNAME = "hostile-user"
PASSWORD = "hostile-password-4711"

Snapshot = list[tuple[str, dict[str, str]]]
_token_numbers = itertools.count(1)


def snapshot(token: SoftHsmToken) -> Snapshot:
    """Every object on the token as pkcs11-tool (not est-hw) lists it."""
    return [(o.kind, o.attrs) for o in list_objects(token)]


def assert_clean_failure(result: CliResult, expect: Expect) -> str:
    """The documented exit code, one ``est-hw: error:`` line holding the needle, no
    traceback, and the --json error object; returns the error line."""
    assert result.code == expect.code, (result.code, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]  # one line, no traceback, no warning
    line = lines[0]
    assert line.startswith("est-hw: error: "), line
    assert expect.needle in line, (expect.needle, line)
    assert len(line) < 600, line  # a hostile body is never echoed in full
    assert result.json()["exit_code"] == expect.code
    return line


def assert_pending(
    token: SoftHsmToken, before: Snapshot, result: CliResult, expect: Expect
) -> None:
    """Exit 7: Retry-After reported as the server said, and the token holds the resumable
    pending state (the key and its journal record) but no certificate."""
    assert_clean_failure(result, expect)
    out = result.json()
    assert out["status"] == "pending"
    if expect.retry_after is not None:
        assert out["retry_after"] == expect.retry_after
    added = [entry for entry in snapshot(token) if entry not in before]
    kinds = sorted(kind.split(";")[0].split(" ")[0] for kind, _ in added)
    assert kinds == ["Data", "Private", "Public"], added
    (record,) = [attrs for kind, attrs in added if kind.startswith("Data")]
    assert "est-hw/pending/" in record["label"]


def assert_enrolled(token: SoftHsmToken, result: CliResult) -> x509.Certificate:
    """Success: exactly one key, and beside it a certificate carrying that key."""
    assert result.code == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    out = result.json()
    assert out["status"] == "issued"
    objects = list_objects(token)
    keys = [o for o in objects if o.kind.startswith("Private Key Object")]
    assert [k.id for k in keys] == [out["key_id"]]
    leaves = [
        o for o in objects if o.kind.startswith("Certificate Object") and o.id == out["key_id"]
    ]
    assert len(leaves) == 1
    cert = x509.load_der_x509_certificate(read_object(token, "cert", out["key_id"]))
    assert public_key_matches(token, out["key_id"], cert.public_key())
    return cert


@dataclass
class Outcome:
    """One est-hw run against a hostile server."""

    result: CliResult
    server: EstTestServer
    ca_file: Path
    elapsed: float


@dataclass
class Started:
    """An est-hw process running against a hostile server; :meth:`finish` checks it."""

    mode: Misbehaviour | None
    expect: Expect
    command: str
    token: SoftHsmToken
    server: EstTestServer
    ca_file: Path
    before: Snapshot
    process: subprocess.Popen[str]
    started: float

    def finish(self) -> Outcome:
        """Wait for est-hw; check the exit code, the error line and the token (untouched
        on failure, pending state on exit 7, one key with its certificate after an
        enroll that must succeed)."""
        stdout, stderr = self.process.communicate(timeout=120)
        elapsed = time.monotonic() - self.started
        result = CliResult(self.process.returncode, stdout, stderr)
        expect = self.expect
        assert PASSWORD not in result.stdout + result.stderr
        if expect.code == 0 and self.command != "enroll":
            assert result.code == 0, result.stderr[-2000:]
            assert snapshot(self.token) == self.before
        elif expect.code == 0:
            assert_enrolled(self.token, result)
        elif expect.code == 7:
            assert_pending(self.token, self.before, result, expect)
        else:
            assert_clean_failure(result, expect)
            assert snapshot(self.token) == self.before
        if expect.stalls:  # ended by est-hw's own deadline, not by the server
            assert elapsed < float(SHORT_TIMEOUT) + STALL_SLACK, elapsed
        return Outcome(result, self.server, self.ca_file, elapsed)

    def kill(self) -> None:
        """Stop the process (by its own PID) if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@dataclass
class Hostile:
    """Runs est-hw against misbehaving servers and checks what it must do."""

    cli: Cli
    token: SoftHsmToken
    start_server: StartServer
    directory: Path

    def server(self, mode: Misbehaviour | None, **config: Any) -> tuple[EstTestServer, Path]:
        return self.start_server(misbehaviour=mode, **config)

    def new_token(self) -> SoftHsmToken:
        """Another fresh token, in a token directory of its own (for runs side by side)."""
        number = next(_token_numbers)
        return _private_token(self.directory / f"token-{number}", f"hostile-{number}")

    def enroll(
        self,
        server: EstTestServer,
        ca_file: Path,
        *args: str,
        timeout: str = TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> tuple[CliResult, float]:
        started = time.monotonic()
        result = self.cli(
            *_command_line("enroll", server, ca_file, self.token, timeout), *args, env=env
        )
        return result, time.monotonic() - started

    def start(
        self,
        mode: Misbehaviour | None,
        *args: str,
        expect: Expect | None = None,
        env: dict[str, str] | None = None,
        command: str = "enroll",
        token: SoftHsmToken | None = None,
        **config: Any,
    ) -> Started:
        """Start est-hw (``enroll`` unless ``command`` says otherwise) against a new
        server showing ``mode``, on ``token`` (default: the test's token)."""
        server, ca_file = self.server(mode, **config)
        return launch(
            self.cli.env, mode, server, ca_file, token or self.token, *args,
            expect=expect, env=env, command=command,
        )  # fmt: skip

    def run(self, mode: Misbehaviour | None, *args: str, **kwargs: Any) -> Outcome:
        """:meth:`start`, then :meth:`Started.finish`."""
        started = self.start(mode, *args, **kwargs)
        try:
            return started.finish()
        finally:
            started.kill()


def launch(
    cli_env: dict[str, str],
    mode: Misbehaviour | None,
    server: EstTestServer,
    ca_file: Path,
    token: SoftHsmToken,
    *args: str,
    expect: Expect | None = None,
    env: dict[str, str] | None = None,
    command: str = "enroll",
) -> Started:
    """Snapshot ``token``, then start est-hw against ``server`` (not waiting for it)."""
    if expect is None:
        assert mode is not None
        expect = EXPECTED[mode]
    before = snapshot(token)
    timeout = SHORT_TIMEOUT if expect.stalls else TIMEOUT
    if expect.credentials:
        args = ("--username", USERNAME, *args)
        env = {"EST_HW_PASSWORD": PASSWORD, **(env or {})}
    line = [EST_HW, *_command_line(command, server, ca_file, token, timeout), *args]
    process = subprocess.Popen(
        line,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**cli_env, "SOFTHSM2_CONF": str(token.conf), **(env or {})},
    )
    return Started(mode, expect, command, token, server, ca_file, before, process, time.monotonic())


def _command_line(
    command: str, server: EstTestServer, ca_file: Path, token: SoftHsmToken, timeout: str
) -> list[str]:
    line = [command, "--server", server.url, "--ca-file", str(ca_file), "--json"]
    line += ["--timeout", timeout]
    if command == "enroll":
        line += ["--token", token.label, "--subject", "CN=hostile-1"]
    return line


@pytest.fixture
def hostile(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> Hostile:
    """Run est-hw against hostile test servers on a fresh token."""
    return Hostile(cli, softhsm_token, est_server, tmp_path)


@dataclass(frozen=True)
class Case:
    """One run of a :class:`Batch`: est-hw ``command`` against a server showing ``mode``
    with ``config`` (ServerConfig fields), expected to do ``expect`` (default: as
    :data:`~tests.hostile.expectations.EXPECTED` says for ``mode``)."""

    mode: Misbehaviour | None
    expect: Expect | None = None
    command: str = "enroll"
    args: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)


def cases_of(modes: list[Misbehaviour]) -> dict[str, Case]:
    """One default case per misbehaviour, keyed by its name."""
    return {mode.value: Case(mode) for mode in modes}


class Batch:
    """The cases of one test module, run :attr:`WIDTH` at a time ahead of the tests that
    check them.

    Each case gets its own token (in a token directory of its own) and server.  A test
    asks for its case's outcome (:meth:`outcome`): that waits for the est-hw process and
    makes every check of :meth:`Started.finish` there, so each case is still its own test
    (with its own xfail mark).  est-hw spends most of its time starting up, so two runs
    side by side nearly halve the suite's time on two cores.
    """

    WIDTH = 2

    def __init__(self, cases: dict[str, Case], directory: Path) -> None:
        self._cases = cases
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("EST_HW_")}
        self._env.update(EST_HW_PIN=USER_PIN, EST_HW_PKCS11_MODULE=SOFTHSM_MODULE)
        self._directory = directory
        self._queue = list(cases)
        self._started: dict[str, Started | BaseException] = {}
        self._finished: set[str] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._schedule, name="hostile-batch", daemon=True)
        self._thread.start()

    def _running(self) -> int:
        return sum(
            1
            for key, started in self._started.items()
            if key not in self._finished
            and isinstance(started, Started)
            and started.process.poll() is None
        )

    def _schedule(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._queue or self._running() >= self.WIDTH):
                    self._cond.wait(0.02)
                if self._closed:
                    return
                key = self._queue.pop(0)
            try:
                started: Started | BaseException = self._start(key)
            except BaseException as exc:  # reported by outcome(), in the test of the case
                started = exc
            with self._cond:
                self._started[key] = started
                self._cond.notify_all()

    def _start(self, key: str) -> Started:
        case = self._cases[key]
        number = next(_token_numbers)
        token = _private_token(self._directory / f"case-{number}", f"batch-{number}")
        server = EstTestServer(ServerConfig(misbehaviour=case.mode, **case.config))
        server.start()
        try:
            ca_file = token.conf.parent / "ca.pem"
            ca_file.write_bytes(server.ca.anchor_pem())
            return launch(
                self._env, case.mode, server, ca_file, token, *case.args,
                expect=case.expect, command=case.command,
            )  # fmt: skip
        except BaseException:
            server.stop()
            raise

    def outcome(self, key: str) -> Outcome:
        """Wait for the run of case ``key`` (started now if it was not yet); check it."""
        with self._cond:
            if key in self._queue:  # asked for out of order (-k, a rerun): start it next
                self._queue.remove(key)
                self._queue.insert(0, key)
            while key not in self._started:
                if not self._thread.is_alive():
                    raise RuntimeError("the batch thread is gone")
                self._cond.wait(0.05)
            started = self._started[key]
        if not isinstance(started, Started):
            raise RuntimeError(f"case {key} did not start") from started
        try:
            return started.finish()
        finally:
            started.kill()
            with self._cond:
                self._finished.add(key)
            started.server.stop()

    def close(self) -> None:
        """Start nothing more; stop every process and server still there."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        for started in self._started.values():
            if isinstance(started, Started):
                started.kill()
                started.server.stop()


def _private_token(directory: Path, label: str) -> SoftHsmToken:
    """A fresh token in a token directory of its own, for est-hw processes only.

    SoftHSM2 fails ("GeneralError") when a process lists the tokens of a directory while
    another token is being made there, so every batch case gets its own directory; and
    nothing in this process opens these tokens, so the in-process PKCS#11 library (which
    ``init_softhsm_token`` reinitialises) is left alone.
    """
    (directory / "tokens").mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    template = (REPO / "softhsm" / "softhsm2.conf.in").read_text()
    conf.write_text(template.replace("@TOKENDIR@", str(directory / "tokens")))
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label,
         "--so-pin", SO_PIN, "--pin", USER_PIN],
        check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )  # fmt: skip
    return SoftHsmToken(label, USER_PIN, SO_PIN, SOFTHSM_MODULE, conf)


def batch_fixture(cases: dict[str, Case]) -> Any:
    """A module-scoped ``batch`` fixture running ``cases`` ahead (see :class:`Batch`)."""

    @pytest.fixture(scope="module")
    def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
        runner = Batch(cases, tmp_path_factory.mktemp("hostile-batch"))
        try:
            yield runner
        finally:
            runner.close()

    return batch
