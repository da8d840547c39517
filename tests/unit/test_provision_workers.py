"""What ``provision --jobs N`` sends to its worker processes pickles, and secrets stay
hidden on the way; the crash points also kill the parent of a worker."""

from __future__ import annotations

import dataclasses
import datetime
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from est_hw import faults
from est_hw.est.auth import HttpCredentials
from est_hw.est.client import EstEndpoint
from est_hw.keys.base import Secret
from est_hw.provision.batch import Device, DeviceOutcome, DeviceSecrets
from est_hw.provision.plan import DeviceGroup, DeviceNames, load_plan
from est_hw.provision.trust import ServerSession
from est_hw.tls.trust import ServerTrust
from tests.pki import make_ca

PLAN = """
[server]
url = "https://est.example:8443"
ca_file = "ca.pem"
[subject]
template = "CN={asset}"
[values]
csv = "assets.csv"
match = "token_label"
[[devices]]
module = "/usr/lib/softhsm/libsofthsm2.so"
tokens = ["dev-01", 7]
"""


def test_a_plan_with_csv_values_round_trips(tmp_path: Path) -> None:
    (tmp_path / "assets.csv").write_text("token_label,asset\ndev-01,A-1\n")
    (tmp_path / "plan.toml").write_text(PLAN)
    plan = load_plan(tmp_path / "plan.toml")
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan
    assert copy.names_for({"index": "1", "token_label": "dev-01"}).subject == "CN=A-1"
    assert copy.values is not None
    with pytest.raises(TypeError):  # the rows stay read-only
        copy.values.rows["dev-01"]["asset"] = "B-2"


def test_a_server_session_round_trips_with_its_certificates_and_a_hidden_password() -> None:
    anchor, extra = make_ca("Anchor").cert, make_ca("Seen in cacerts").cert
    session = ServerSession(
        EstEndpoint.parse("https://est.example", "line7"),
        ServerTrust(anchors=(anchor,), use_system_store=True),
        (anchor, extra),
        HttpCredentials("line7", Secret("pass-xyzzy")),
        12.5,
    )
    copy = pickle.loads(pickle.dumps(session))
    assert type(copy) is ServerSession
    # certificates compare by their DER
    assert (copy.endpoint, copy.trust, copy.cacerts, copy.timeout) == (
        session.endpoint, session.trust, session.cacerts, session.timeout
    )  # fmt: skip
    assert copy.credentials is not None
    assert copy.credentials.username == "line7"
    assert copy.credentials.password.reveal() == "pass-xyzzy"
    assert "pass-xyzzy" not in repr(copy) + str(copy.credentials)


def test_device_secrets_and_outcomes_round_trip_with_secrets_redacted() -> None:
    secrets = {1: DeviceSecrets(pin=Secret("1234-pin")), 2: DeviceSecrets()}
    copy = pickle.loads(pickle.dumps(secrets))
    pin = copy[1].pin
    assert pin is not None and pin.reveal() == "1234-pin"
    assert repr(pin) == str(pin) == "Secret('***')"
    assert "1234-pin" not in repr(copy)

    group = DeviceGroup(number=1, kind="pkcs11", module="m.so", tokens="all")
    outcome = DeviceOutcome(
        Device(3, group, slot=7, token_label="dev-03", token_serial="8f3c"),
        "issued",
        DeviceNames("CN=dev-03", ("dns:dev-03.example",), "dev-03"),
        serial_number="1f",
        not_after=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
        timings={"total_ms": 41.6, "phases_ms": {"keygen": 12.8}, "counts": {}},
        started_at=datetime.datetime(2029, 1, 1, tzinfo=datetime.UTC),
    )
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    assert outcome.worker == os.getpid()


CRASH = """
import os, sys
from est_hw import faults
faults.kill_parent_too(os.getppid())
faults.point("before-keygen")
print("not killed", flush=True)
faults.point(sys.argv[1])
"""


def _run_under_a_shell(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as the child of a shell that prints once its child has returned."""
    path = tmp_path / "crash.py"
    path.write_text(script)
    shell = f'"{sys.executable}" "{path}" after-keygen; echo parent survived'
    return subprocess.run(
        ["/bin/sh", "-c", shell],
        check=False,
        env={**os.environ, faults.ENV: "after-keygen"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_crash_point_in_a_worker_kills_its_parent_first(tmp_path: Path) -> None:
    result = _run_under_a_shell(CRASH, tmp_path)
    assert result.returncode == -signal.SIGKILL
    assert result.stdout == "not killed\n"


def test_without_a_parent_to_kill_a_crash_point_kills_only_its_process(tmp_path: Path) -> None:
    result = _run_under_a_shell(CRASH.replace("faults.kill_parent_too(os.getppid())", ""), tmp_path)
    assert result.returncode == 0
    assert result.stdout == "not killed\nparent survived\n"


def test_auto_workers_start_only_when_they_pay() -> None:
    """--workers auto: a worker per 2 * WORKER_START_S of work left for est-hw's own job."""
    from est_hw.provision.batch import WORKER_START_S, _workers_wanted

    fast, slow = 0.02, 0.4  # s per device: SoftHSM EC on tmpfs; RSA-2048 keygen
    assert _workers_wanted(4, 9, [fast]) == 0  # a fast first device decides nothing
    assert _workers_wanted(4, 8, [fast, fast]) == 0  # 0.16 s left: alone is quicker
    assert _workers_wanted(4, 38, [0.05, fast]) == 1  # the first device is not the pace
    assert _workers_wanted(4, 200, [fast, fast]) == 3  # never more than jobs - 1
    assert _workers_wanted(4, 19, [slow]) == 3  # a slow first device is reason enough
    assert _workers_wanted(2, 19, [slow]) == 1
    assert _workers_wanted(4, 1, [slow]) == 0  # one device left: no worker for it
    left = 2 * WORKER_START_S
    assert _workers_wanted(8, 11, [fast, left / 10]) == 1


DEVICE_CRASH = """
import os
from est_hw import faults
faults.kill_parent_too(os.getppid())
faults.working_on("dev-01")
faults.point("after-keygen")
print("not killed on dev-01", flush=True)
faults.working_on("dev-02")
faults.point("after-keygen")
print("not killed on dev-02", flush=True)
"""


def test_a_device_crash_point_kills_only_the_worker_on_that_device(tmp_path: Path) -> None:
    """``<point>@worker:<device>``: a token library that crashes its worker process every
    time on one device; est-hw (the parent) lives on."""
    path = tmp_path / "crash.py"
    path.write_text(DEVICE_CRASH)
    result = subprocess.run(
        ["/bin/sh", "-c", f'"{sys.executable}" "{path}"; echo "parent survived $?"'],
        check=False,
        env={**os.environ, faults.ENV: "after-keygen@worker:dev-02"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout == f"not killed on dev-01\nparent survived {128 + signal.SIGKILL}\n"


def test_a_device_stopped_by_a_worker_death_gets_one_more_attempt_alone(tmp_path: Path) -> None:
    from concurrent.futures import Future

    from est_hw.provision.batch import WORKER_DIED, _SecondAttempts

    without_csv = PLAN.replace('[values]\ncsv = "assets.csv"\nmatch = "token_label"\n', "")
    (tmp_path / "plan.toml").write_text(without_csv.replace("CN={asset}", "CN={token_label}"))
    plan = load_plan(tmp_path / "plan.toml")
    group = DeviceGroup(number=1, kind="pkcs11", module="m.so", tokens="all")
    dev1, dev2, dev3 = (Device(n, group, token_label=f"dev-0{n}") for n in (1, 2, 3))
    again = _SecondAttempts(plan)

    assert again.settle(dev1, None) is None  # first death: queued for a second attempt
    assert again.settle(dev2, None) is None
    assert list(again.devices) == [dev1, dev2]
    assert again.hold({Future(): dev3})  # a second attempt waits for free workers ...
    assert not again.hold({})
    assert again.hold({Future(): again.devices.popleft()})  # ... and runs alone
    issued = DeviceOutcome(dev1, "issued")
    assert again.settle(dev1, issued) == dataclasses.replace(issued, attempts=2)
    failed = again.settle(dev2, None)  # second death: it fails
    assert failed is not None
    assert (failed.status, failed.error, failed.attempts, failed.worker) == (
        "failed", WORKER_DIED, 2, None
    )  # fmt: skip
    assert failed.names is not None and failed.names.subject == "CN=dev-02"
    other = DeviceOutcome(dev3, "issued")
    assert again.settle(dev3, other) is other  # never stopped: reported as it is
