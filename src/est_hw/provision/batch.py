"""Provisioning many devices at once: the plan's devices, enrolled concurrently.

:func:`expand_devices` turns the plan's device groups into devices (listing the tokens of a
PKCS#11 module for ``tokens = "all"``); :func:`run_batch` enrolls them and yields one
:class:`DeviceOutcome` per device as each finishes.  Each device runs the ordinary flow,
:func:`est_hw.provision.enroll`, on its own backend session, so resuming (the journal on
the token), crash safety and verification are exactly those of ``est-hw enroll``.  A
device that already holds the planned key with a valid certificate is skipped; a device
that fails is reported and the others go on.

Concurrency: est-hw's own job thread works on the devices from the start, and with more
than one job, worker *processes* join it (:func:`run_batch` says when). python-pkcs11
initialises a module with ``C_Initialize(NULL)``, so calls into one module are serialised
within a process (:func:`est_hw.keys.pkcs11_tokens.module_lock`); threads could overlap
only the network work, while each worker process initialises the module itself and runs
its token operations truly in parallel with the others. Workers are started with ``spawn``
(PKCS#11 forbids using a module initialised before ``fork``), die with the ``est-hw``
process (``PR_SET_PDEATHSIG``), and ignore Ctrl-C, which the parent handles by letting the
running devices finish.

Connections: each worker, and the own job, keeps one
:class:`~est_hw.est.client.EstClient` and reuses its TLS connection for every device it
enrolls, since all devices present the same HTTP credentials and no TLS client certificate.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import datetime
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cryptography import x509

from est_hw import faults, metrics
from est_hw.errors import EnrollmentPendingError, EstHwError, UsageError
from est_hw.est.client import EstClient
from est_hw.keys.base import KeyBackend, KeyType, Secret
from est_hw.keys.pkcs11_tokens import TokenInfo, list_tokens
from est_hw.keys.tpm_tcti import state_dir_name
from est_hw.provision.enroll import EnrollRequest, enroll
from est_hw.provision.identity import existing_enrollment
from est_hw.provision.plan import DeviceGroup, DeviceNames, Plan
from est_hw.provision.trust import ServerSession
from est_hw.tls.settings import ClientIdentity, TlsSettings
from est_hw.x509.csr import CsrContent
from est_hw.x509.names import parse_san, parse_subject, serial_hex

Status = Literal["issued", "skipped", "failed", "pending"]


@dataclass(frozen=True)
class Device:
    """One device of a plan: a PKCS#11 token (by slot) or a TPM (by TCTI).

    :param index: position in the plan, from 1 (the ``{index}`` variable).
    :param slot: the ``CK_SLOT_ID``; None when the listed token is not present.
    """

    index: int
    group: DeviceGroup
    slot: int | None = None
    token_label: str | None = None
    token_serial: str | None = None
    tcti: str | None = None

    @property
    def name(self) -> str:
        """How reports and messages name the device."""
        if self.tcti is not None:
            return self.tcti
        if self.token_label is not None:
            return self.token_label
        return f"slot {self.slot}"

    def variables(self) -> dict[str, str]:
        """The template variables of this device (docs/provisioning.md)."""
        values = {"index": str(self.index)}
        if self.group.kind == "tpm":
            values["tcti"] = self.tcti or ""
            return values
        if self.token_label is not None:
            values["token_label"] = self.token_label
        if self.token_serial is not None:
            values["token_serial"] = self.token_serial
        if self.slot is not None:
            values["slot"] = str(self.slot)
        return values


@dataclass(frozen=True)
class DeviceSecrets:
    """The resolved secrets of one device group (the CLI reads them)."""

    pin: Secret | None = None
    owner_auth: Secret | None = None
    key_auth: Secret | None = None


@dataclass(frozen=True)
class DeviceOutcome:
    """What provisioning one device did.

    :param timings: :meth:`est_hw.metrics.Metrics.as_json` of this device alone.
    :param exit_code: the exit code of the error (0 when issued or skipped).
    :param started_at: when work on the device began (None when it never did, or when
        the worker process running it died).
    :param worker: the id of the process that provisioned the device (None when it died).
    :param attempts: 2 when a worker process died while the device was in progress and
        the device was then run again, alone (see :func:`run_batch`).
    """

    device: Device
    status: Status
    names: DeviceNames | None = None
    serial_number: str | None = None
    not_after: datetime.datetime | None = None
    resumed: bool = False
    retry_after: int | None = None
    error: str | None = None
    exit_code: int = 0
    timings: Mapping[str, Any] = field(default_factory=dict)
    finished_at: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )
    started_at: datetime.datetime | None = None
    worker: int | None = field(default_factory=os.getpid)
    attempts: int = 1


def expand_devices(plan: Plan) -> tuple[Device, ...]:
    """The devices of every group, numbered from 1 in plan order.

    ``tokens = "all"`` takes the initialised tokens of the module, ordered by label and
    serial number; listed tokens are taken in the order given (a label or slot that is
    not present still becomes a device, which then fails to open).

    :raises TokenError: a module cannot be loaded or listed.
    :raises UsageError: one device is named twice.
    """
    devices: list[Device] = []
    seen: dict[tuple[str, object], int] = {}
    for group in plan.groups:
        found: list[Device] = []
        if group.kind == "tpm":
            found = [Device(0, group, tcti=tcti) for tcti in group.tctis]
        else:
            assert group.module is not None
            present = sorted(
                (info for info in list_tokens(group.module) if info.initialized),
                key=lambda info: (info.label, info.serial),
            )
            chosen: list[TokenInfo | str | int] = (
                list(present)
                if group.tokens == "all"
                else [_listed_token(present, wanted) for wanted in group.tokens]
            )
            for info in chosen:
                if isinstance(info, str | int):
                    label = info if isinstance(info, str) else None
                    slot = info if isinstance(info, int) else None
                    found.append(Device(0, group, slot=slot, token_label=label))
                else:
                    found.append(
                        Device(0, group, info.slot, token_label=info.label,
                               token_serial=info.serial)
                    )  # fmt: skip
        for device in found:
            key = _identity(device)
            if key in seen:
                raise UsageError(
                    f"plan {plan.path}: device {device.name} is in [[devices]] #{seen[key]} "
                    f"and #{group.number}"
                )
            seen[key] = group.number
            devices.append(dataclasses.replace(device, index=len(devices) + 1))
    return tuple(devices)


def _listed_token(present: list[TokenInfo], wanted: str | int) -> TokenInfo | str | int:
    """The token a ``tokens`` entry names (label or slot id), else the entry itself."""
    matches = [
        info
        for info in present
        if (info.label == wanted if isinstance(wanted, str) else info.slot == wanted)
    ]
    return matches[0] if len(matches) == 1 else wanted


def _identity(device: Device) -> tuple[str, object]:
    if device.tcti is not None:
        return ("tpm", device.tcti)
    module = device.group.module or ""
    if device.slot is not None:
        return (module, device.slot)
    return (module, device.token_label)


#: About what starting one worker process costs: it imports est-hw, 0.35 s of CPU on the
#: 2-core machine of docs/provisioning.md.  With ``workers="auto"`` one worker starts for
#: every two of these that the devices left would keep est-hw's own job busy.
WORKER_START_S = 0.35

WorkerStart = Literal["auto", "now"]


def run_batch(
    plan: Plan,
    devices: tuple[Device, ...],
    server: ServerSession,
    secrets: Mapping[int, DeviceSecrets | EstHwError],
    *,
    jobs: int = 4,
    workers: WorkerStart = "auto",
) -> Generator[DeviceOutcome, None, None]:
    """Provision ``devices``, ``jobs`` at a time; yield each outcome as it is known.

    est-hw's own job (a thread of this process) starts on the first device at once.  With
    ``jobs`` > 1, up to ``jobs - 1`` worker processes join it (see the module docstring):
    all at once with ``workers="now"``; with ``"auto"``, after a device of the own job,
    one worker for every ``2 * WORKER_START_S`` that the devices left would take the own
    job at the pace so far (at most ``jobs - 1``), so that a tray of fast tokens is not
    slowed by starting processes, and slow tokens (RSA on a smart card) get all their
    workers after the first device.

    A worker that dies (killed, or crashed inside a PKCS#11 module) takes the other
    workers down with it (:class:`_WorkerPool`).  The devices then in progress on the
    workers are run again, each alone on the new workers (resuming from their journal
    records), so that a device that crashes its worker is found out: it fails on its
    second death, and the devices that only shared the pool with it are provisioned.
    Each device gets one second attempt; the other devices go on meanwhile.

    :param secrets: by group number, the group's secrets, or the error that resolving
        them raised (its devices then fail with it, in est-hw's own job).

    Closing the iterator early (e.g. on Ctrl-C) starts no further device and waits for
    the running ones, which stay resumable.  Iterate it on a thread that outlives it: the
    workers die with the thread that started them.
    """
    if jobs < 1:
        raise UsageError("jobs must be at least 1")
    jobs = max(1, min(jobs, len(devices)))
    dispatch = _Dispatch(plan, devices, server, secrets, jobs=jobs, workers=workers)
    try:
        dispatch.fill()
        while running := dispatch.running():
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = dispatch.collect(future)
                dispatch.fill()
                if outcome is not None:
                    yield outcome
    finally:
        dispatch.close()


class _Dispatch:
    """Where each device of :func:`run_batch` runs: est-hw's own job, or a worker."""

    def __init__(
        self,
        plan: Plan,
        devices: tuple[Device, ...],
        server: ServerSession,
        secrets: Mapping[int, DeviceSecrets | EstHwError],
        *,
        jobs: int,
        workers: WorkerStart,
    ) -> None:
        self.plan, self.server, self.secrets, self.jobs = plan, server, secrets, jobs
        self.pooled = _PooledSession.of(server)
        self.own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="est-hw-provision")
        self.sendable = {n: s for n, s in secrets.items() if isinstance(s, DeviceSecrets)}
        self.pool: _WorkerPool | None = None
        if jobs > 1 and workers == "now":
            self.pool = _WorkerPool(jobs - 1, plan, server, self.sendable)
        self.queue = collections.deque(devices)
        self.on_pool: dict[Future[DeviceOutcome], Device] = {}
        self.mine: Future[DeviceOutcome] | None = None
        self.own_seconds: list[float] = []
        self.again = _SecondAttempts(plan)

    def running(self) -> set[Future[DeviceOutcome]]:
        """The devices in progress (none: the run is over)."""
        return {*self.on_pool, *([self.mine] if self.mine is not None else [])}

    def fill(self) -> None:
        """Start devices on the own job and the free workers.

        Never more submitted than running, so a cancelled run leaves nothing queued.
        """
        if self.mine is None and self.queue:
            device = self.queue.popleft()
            self.mine = self.own.submit(
                provision_device, self.plan, device, self.pooled, self.secrets
            )
        pool, on_pool = self.pool, self.on_pool
        while pool is not None and len(on_pool) < pool.jobs and not self.again.hold(on_pool):
            next_up = self.again.devices or self.queue
            if not next_up or isinstance(self.secrets.get(next_up[0].group.number), EstHwError):
                break  # its group's secrets failed: the own job reports it, no worker
            future = pool.submit(next_up[0])
            if future is None:  # the workers broke: new ones once the running are done
                break
            on_pool[future] = next_up.popleft()

    def collect(self, future: Future[DeviceOutcome]) -> DeviceOutcome | None:
        """The outcome of a finished device; None when it is to be tried again."""
        outcome: DeviceOutcome | None
        if future is self.mine:
            self.mine = None
            outcome = future.result()
            self.own_seconds.append(_seconds(outcome))
            wanted = _workers_wanted(self.jobs, len(self.queue), self.own_seconds)
            if self.pool is None and wanted > 0:
                self.pool = _WorkerPool(wanted, self.plan, self.server, self.sendable)
        else:
            assert self.pool is not None
            device = self.on_pool.pop(future)
            outcome = self.again.settle(device, self.pool.outcome(future, device))
        if self.pool is not None and self.pool.broken and not self.on_pool:
            self.pool.restart()
        return outcome

    def close(self) -> None:
        """Start nothing more, wait for the running devices, stop the workers."""
        self.own.shutdown(wait=True, cancel_futures=True)
        self.pooled.close_all()
        if self.pool is not None:
            self.pool.close()


@dataclass
class _SecondAttempts:
    """The devices a worker's death stopped: one more attempt each, alone on the workers.

    Alone, so that a device that crashes its worker again fails by itself (and is named),
    rather than stopping the devices beside it a second time.
    """

    plan: Plan
    devices: collections.deque[Device] = field(default_factory=collections.deque)
    indexes: set[int] = field(default_factory=set)

    def hold(self, on_pool: Mapping[Future[DeviceOutcome], Device]) -> bool:
        """Must the workers take no device now (a second attempt runs or waits for them)?"""
        if any(device.index in self.indexes for device in on_pool.values()):
            return True
        return bool(self.devices) and bool(on_pool)

    def settle(self, device: Device, outcome: DeviceOutcome | None) -> DeviceOutcome | None:
        """The outcome to report for a device back from the workers; None (nothing to
        report yet) when its worker died on the first attempt, which queues the second."""
        if outcome is None and device.index not in self.indexes:
            self.indexes.add(device.index)
            self.devices.append(device)
            return None
        if outcome is None:
            return failed_outcome(self.plan, device, WORKER_DIED, attempts=2)
        if device.index in self.indexes:
            return dataclasses.replace(outcome, attempts=2)
        return outcome


def _workers_wanted(jobs: int, devices_left: int, own_seconds: list[float]) -> int:
    """``workers="auto"``: how many workers pay for their start, given the own job's pace
    (one per ``2 * WORKER_START_S`` of work left, at most ``jobs - 1``).

    The pace is the last device's time: the first one also opens the connection and
    warms everything up, so a fast first device decides nothing yet; a slow one (longer
    than starting a worker) is reason enough.
    """
    if len(own_seconds) < 2 and own_seconds[-1] < WORKER_START_S:
        return 0
    left = devices_left * own_seconds[-1]
    return min(jobs - 1, int(left / (2 * WORKER_START_S)))


def _seconds(outcome: DeviceOutcome) -> float:
    """How long provisioning the device took."""
    if outcome.started_at is None:
        return 0.0
    return (outcome.finished_at - outcome.started_at).total_seconds()


def provision_device(
    plan: Plan,
    device: Device,
    server: ServerSession,
    secrets: Mapping[int, DeviceSecrets | EstHwError],
) -> DeviceOutcome:
    """Provision one device; every error becomes a ``failed`` (or ``pending``) outcome."""
    started = datetime.datetime.now(datetime.UTC)
    outcome = _provision_device(plan, device, server, secrets)
    return dataclasses.replace(outcome, started_at=started)


def _provision_device(
    plan: Plan,
    device: Device,
    server: ServerSession,
    secrets: Mapping[int, DeviceSecrets | EstHwError],
) -> DeviceOutcome:
    names: DeviceNames | None = None
    with metrics.recording() as recorded:
        try:
            names = plan.names_for(device.variables())
            group_secrets = secrets.get(device.group.number) or DeviceSecrets()
            if isinstance(group_secrets, EstHwError):  # shared by the group: not re-raised
                return DeviceOutcome(device, "failed", names, error=str(group_secrets),
                                     exit_code=group_secrets.exit_code,
                                     timings=recorded.as_json())  # fmt: skip
            with open_device(device, group_secrets) as backend:
                return _enroll_device(plan, device, backend, server, names=names, recorded=recorded)
        except EnrollmentPendingError as exc:
            return DeviceOutcome(device, "pending", names, retry_after=exc.retry_after,
                                 error=str(exc), exit_code=exc.exit_code,
                                 timings=recorded.as_json())  # fmt: skip
        except EstHwError as exc:
            return DeviceOutcome(device, "failed", names, error=str(exc) or type(exc).__name__,
                                 exit_code=exc.exit_code, timings=recorded.as_json())  # fmt: skip
        except Exception as exc:  # a bug must not stop the other devices
            return DeviceOutcome(device, "failed", names,
                                 error=f"internal error: {type(exc).__name__}: {exc}",
                                 exit_code=1, timings=recorded.as_json())  # fmt: skip


def _enroll_device(
    plan: Plan,
    device: Device,
    backend: KeyBackend,
    server: ServerSession,
    *,
    names: DeviceNames,
    recorded: metrics.Metrics,
) -> DeviceOutcome:
    done = existing_enrollment(backend, names.key_label)
    if done is not None:
        return DeviceOutcome(device, "skipped", names,
                             serial_number=serial_hex(done.serial_number),
                             not_after=done.not_valid_after_utc,
                             timings=recorded.as_json())  # fmt: skip
    content = CsrContent(
        subject=parse_subject(names.subject) if names.subject else x509.Name([]),
        sans=tuple(parse_san(text) for text in names.sans),
    )
    request = EnrollRequest(
        KeyType(plan.key.key_type or "ec-p256"),
        names.key_label,
        content,
        key_type_explicit=plan.key.key_type is not None,
        use_csrattrs=plan.key.csrattrs,
    )
    result = enroll(backend, server, request)
    certificate = result.certificate
    return DeviceOutcome(
        device,
        "issued",
        names,
        serial_number=serial_hex(certificate.serial_number),
        not_after=certificate.not_valid_after_utc,
        resumed=result.resumed,
        timings=recorded.as_json(),
    )


@contextlib.contextmanager
def open_device(device: Device, secrets: DeviceSecrets) -> Iterator[KeyBackend]:
    """Open (and log in to) the device's key store for the duration of the block."""
    with metrics.phase("token_open"):
        backend = _open(device, secrets)
    with backend:
        yield backend


def _open(device: Device, secrets: DeviceSecrets) -> KeyBackend:
    group = device.group
    if group.kind == "tpm":
        assert device.tcti is not None
        if group.state_dir is None:
            raise UsageError(f"[[devices]] #{group.number}: no state_dir for the TPM")
        from est_hw.keys.tpm_tcti import TpmSelector

        try:
            from est_hw.keys.tpm import open_tpm
        except ImportError as exc:
            raise UsageError(f"TPM devices need the tpm extra: {exc}") from None
        return open_tpm(
            TpmSelector(
                tcti=device.tcti,
                state_dir=tpm_state_dir(group.state_dir, device.tcti),
                owner_auth=secrets.owner_auth,
                key_auth=secrets.key_auth,
            )
        )
    from est_hw.keys.pkcs11 import TokenSelector, open_pkcs11

    assert group.module is not None
    if secrets.pin is None:
        raise UsageError(f"no PIN for the tokens of [[devices]] #{group.number}")
    selector = TokenSelector(
        module=group.module,
        slot=device.slot,
        token_label=device.token_label if device.slot is None else None,
    )
    return open_pkcs11(selector, secrets.pin)


def tpm_state_dir(base: Path, tcti: str) -> Path:
    """The state directory of one TPM: ``base/<tcti>``, named as ``est-hw --tpm`` names
    its default (``/var/lib/est-hw/tpm/<tcti>``), so later renewals find the keys."""
    return base / state_dir_name(tcti)


# --- connection reuse -------------------------------------------------------------------------


class _KeptClient(EstClient):
    """An :class:`EstClient` that outlives the ``with`` blocks of the flows using it."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


@dataclass(frozen=True)
class _PooledSession(ServerSession):
    """A :class:`ServerSession` whose clients without a TLS identity are per thread.

    Every device of a plan sends the same HTTP credentials, so the connection of one
    enrollment serves the next one on the same thread; a client with a TLS client
    identity (a per-device key) is always a fresh one.
    """

    local: threading.local = field(default_factory=threading.local, compare=False)
    kept: list[EstClient] = field(default_factory=list, compare=False)
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    @classmethod
    def of(cls, server: ServerSession) -> _PooledSession:
        return cls(server.endpoint, server.trust, server.cacerts, server.credentials,
                   server.timeout)  # fmt: skip

    def client(self, identity: ClientIdentity | None = None) -> EstClient:
        if identity is not None:
            return super().client(identity)
        client: EstClient | None = getattr(self.local, "client", None)
        if client is None:
            client = _KeptClient(
                self.endpoint,
                TlsSettings(trust=self.trust),
                credentials=self.credentials,
                timeout=self.timeout,
            )
            self.local.client = client
            with self.lock:
                self.kept.append(client)
        return client

    def close_all(self) -> None:
        with self.lock:
            for client in self.kept:
                client.close()
            self.kept.clear()


# --- worker processes -------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WORKER_DIED = (
    "a worker process died twice while this device was in progress, the second time with "
    "this device alone (killed, or a crash in the token's library); it stays resumable: "
    "run the plan again"
)


def failed_outcome(plan: Plan, device: Device, error: str, *, attempts: int = 1) -> DeviceOutcome:
    """A device that failed outside its own flow (its worker died, or its outcome was lost)."""
    try:
        names: DeviceNames | None = plan.names_for(device.variables())
    except EstHwError:
        names = None
    return DeviceOutcome(
        device, "failed", names, error=error, exit_code=1, worker=None, attempts=attempts
    )


@dataclass(frozen=True)
class _WorkerState:
    """What a worker process holds for its lifetime (set by :func:`_worker_start`)."""

    plan: Plan
    server: _PooledSession
    secrets: Mapping[int, DeviceSecrets]


#: In a worker process, under "state": its state, or why it could not start.
_worker: dict[str, _WorkerState | str] = {}


class _WorkerPool:
    """The worker processes of one run; a new set replaces them when one has died.

    When a worker dies, :class:`ProcessPoolExecutor` marks the pool broken and stops the
    other workers: every device in progress is stopped (each is resumable, as after a
    killed run) and :meth:`outcome` says None for it.  The devices go on on a new pool;
    :func:`run_batch` gives each stopped device one more attempt, alone, so each broken
    pool costs at least one attempt and a run always ends.
    """

    def __init__(
        self, jobs: int, plan: Plan, server: ServerSession, secrets: Mapping[int, DeviceSecrets]
    ) -> None:
        self.jobs = jobs
        self.plan = plan
        # ServerSession pickles with its certificates as DER; secrets go over the pipe.
        self.initargs = (os.getpid(), plan, server, secrets)
        self.executor: ProcessPoolExecutor | None = None
        self.broken = False

    def submit(self, device: Device) -> Future[DeviceOutcome] | None:
        """Start ``device`` on a worker (starting the workers first); None once broken.

        :raises EstHwError: a worker process cannot be started (e.g. out of processes).
        """
        if self.broken:
            return None
        try:
            with _sigint_blocked():
                if self.executor is None:
                    self.executor = ProcessPoolExecutor(
                        self.jobs,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=_worker_start,
                        initargs=self.initargs,
                    )
                return self.executor.submit(_provision_in_worker, device)
        except BrokenProcessPool:
            self.broken = True
            return None
        except OSError as exc:
            raise EstHwError(f"cannot start a worker process: {exc}") from None

    def outcome(self, future: Future[DeviceOutcome], device: Device) -> DeviceOutcome | None:
        """The outcome a worker sent back; None when a worker died with the device."""
        try:
            return future.result()
        except BrokenProcessPool:
            self.broken = True
            return None
        except Exception as exc:  # e.g. an outcome that could not be sent back
            error = f"internal error: {type(exc).__name__}: {exc}"
            return failed_outcome(self.plan, device, error)

    def restart(self) -> None:
        """Drop the broken pool: the next :meth:`submit` starts new workers."""
        self._shutdown()
        self.broken = False

    def close(self) -> None:
        """Wait for the running devices (none is started any more) and stop the workers."""
        self._shutdown()

    def _shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Keep Ctrl-C away from workers while they are spawned.

    The terminal sends Ctrl-C to the whole process group, workers included.  While a
    worker starts, SIGINT is ignored (a disposition that survives ``exec``, and a Python
    started with SIGINT ignored keeps it so, raising no KeyboardInterrupt in the middle
    of its imports) and blocked in this thread; :func:`_worker_start` keeps ignoring it,
    as est-hw itself decides what a Ctrl-C stops.  Blocked signals are not discarded, so
    a SIGINT that arrives meanwhile reaches est-hw when its handler and mask are back.
    """
    previous_mask = None
    if hasattr(signal, "pthread_sigmask"):
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        if previous_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _worker_start(
    parent: int, plan: Plan, server: ServerSession, secrets: Mapping[int, DeviceSecrets]
) -> None:
    """Set up a worker process (the pool's initializer); never raises, since a failing
    initializer would break the pool with a traceback: a failure is kept in
    :data:`_worker` and fails the devices sent here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        _die_with(parent)
    except OSError as exc:
        _worker["state"] = f"the worker process cannot be tied to est-hw's lifetime ({exc})"
        return
    faults.kill_parent_too(parent)
    pooled = _PooledSession.of(server)
    atexit.register(pooled.close_all)
    _worker["state"] = _WorkerState(plan, pooled, secrets)


def _die_with(parent: int) -> None:
    """Make the kernel SIGKILL this process when ``parent`` (est-hw) dies, on Linux.

    Otherwise a killed ``est-hw provision`` would leave workers that keep enrolling while
    a rerun starts on the same tokens.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent:  # est-hw died before the line above took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _provision_in_worker(device: Device) -> DeviceOutcome:
    """Provision ``device`` in a worker process, with the worker's plan, client and secrets."""
    state = _worker.get("state", "the worker process was not set up")
    if not isinstance(state, _WorkerState):
        error = state
        return DeviceOutcome(device, "failed", error=error, exit_code=1)
    faults.working_on(device.name)
    return provision_device(state.plan, device, state.server, state.secrets)
