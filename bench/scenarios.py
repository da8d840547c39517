"""What is measured: cold start, one enrollment by phase, the server alone, rates, TPM."""

from __future__ import annotations

import functools
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.env import SOFTHSM_MODULE, TokenDir, TokenFactory
from bench.minimal_client import ISSUE_ONLY, MinimalClient, Step
from bench.procs import ChildRun, child_env, run_child
from bench.stats import Summary, summarize, summarize_ms
from est_hw.testing.swtpm import Swtpm, start_swtpm

T = TypeVar("T")

PHASES = ("token_open", "keygen", "csr_sign", "tls_handshake", "http", "verify", "store")
#: The phases spent in the token (or TPM): opening it and logging in, generating the key,
#: signing the CSR, writing the certificate and chain.  They include a little Python
#: around the token calls (token_open also imports python-pkcs11 or tpm2-pytss).
#: "journal" is the pending-enrollment record's token writes.
TOKEN_PHASES = ("token_open", "keygen", "csr_sign", "store", "journal")
COUNTS = ("tls_handshakes", "http_requests", "token_signatures")
_LOG_LINE = re.compile(r"#(\d+) \S+ (GET|POST) /\.well-known/est/(?:[^/\s]+/)?(\w+) (\d{3})")


@dataclass
class Bench:
    """Everything a scenario needs: where, what to run, against which server."""

    work: Path
    repeats: int
    est_hw: str
    python: str
    server_url: str
    server_log: Path
    ca_file: Path  # the root only (as `--ca-out` writes it)
    chain_file: Path  # root + issuing CA: est-hw then needs no /cacerts
    client: MinimalClient
    tokens: TokenFactory
    _serial: int = 0

    def next_name(self) -> str:
        self._serial += 1
        return f"bench-{self._serial}"

    def log_size(self) -> int:
        try:
            return self.server_log.stat().st_size
        except FileNotFoundError:
            return 0

    def requests_since(self, offset: int) -> list[tuple[int, Step]]:
        """(connection, (method, operation)) of each request the server logged after
        ``offset`` bytes of its log."""
        with self.server_log.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        found = []
        for match in _LOG_LINE.finditer(text):
            found.append((int(match.group(1)), (match.group(2), match.group(3))))
        return found


# --- enrollment configurations --------------------------------------------------------


@dataclass(frozen=True)
class EnrollConfig:
    """How est-hw is asked to enroll."""

    name: str
    description: str
    minimal: bool  # full chain as anchors, no /csrattrs, no channel binding
    tpm: bool = False

    def argv(self, bench: Bench, name: str, token: TokenDir | None, tpm: Swtpm | None) -> list[str]:
        args = ["enroll", "--server", bench.server_url, "--subject", f"CN={name}"]
        args += ["--key-label", name, "--json", "--timings"]
        if self.minimal:
            args += ["--ca-file", str(bench.chain_file), "--no-csrattrs"]
            args += ["--channel-binding", "none"]
        else:
            args += ["--ca-file", str(bench.ca_file)]
        if tpm is not None:
            args += ["--tpm", "--tcti", tpm.tcti, "--state-dir", str(tpm.state / "est-hw")]
        elif token is not None:
            args += ["--module", SOFTHSM_MODULE, "--token", token.labels[0]]
        return args


DEFAULT = EnrollConfig(
    "pkcs11-default",
    "SoftHSM2, --ca-file root only, /csrattrs asked (the documented invocation)",
    minimal=False,
)
MINIMAL = EnrollConfig(
    "pkcs11-minimal",
    "SoftHSM2, --ca-file root+issuing CA, --no-csrattrs --channel-binding none",
    minimal=True,
)
TPM_DEFAULT = EnrollConfig(
    "tpm-default", "swtpm, --ca-file root only, /csrattrs asked", minimal=False, tpm=True
)


@dataclass
class EnrollRun:
    wall_ms: float
    maxrss_kib: int
    timings: dict[str, object]
    #: when the JSON answer came out (ms after start), so start-up and exit can be told apart
    output_ms: float | None = None

    @property
    def total_ms(self) -> float:
        return float(self.timings["total_ms"])  # type: ignore[arg-type]

    def phase(self, name: str) -> float:
        phases = self.timings.get("phases_ms", {})
        assert isinstance(phases, dict)
        return float(phases.get(name, 0.0))

    def count(self, name: str) -> int:
        counts = self.timings.get("counts", {})
        assert isinstance(counts, dict)
        return int(counts.get(name, 0))

    def token_ms(self) -> float:
        return sum(self.phase(name) for name in TOKEN_PHASES)


@dataclass
class EnrollSeries:
    """``repeats`` enrollments of one configuration, each in a fresh est-hw process on
    a fresh, empty token; plus the server-alone time of the same requests."""

    config: EnrollConfig
    runs: list[EnrollRun]
    steps: tuple[Step, ...]
    connections: int
    server_alone: Summary  # ms, the minimal client doing ``steps`` on one connection
    extra: dict[str, object] = field(default_factory=dict)

    def own_overhead(self) -> list[float]:
        """total - token phases - server time, per run (ms)."""
        server = self.server_alone.median
        return [run.total_ms - run.token_ms() - server for run in self.runs]

    def own_overhead_strict(self) -> list[float]:
        """total - keygen - csr_sign - server time (the issue's formula), per run (ms)."""
        server = self.server_alone.median
        return [
            run.total_ms - run.phase("keygen") - run.phase("csr_sign") - server for run in self.runs
        ]

    def _split_startup(self) -> dict[str, object]:
        """wall - total as "before the command" and "after the answer" (exit)."""
        timed = [r for r in self.runs if r.output_ms is not None]
        if not timed:
            return {}
        return {
            "before_command_ms": summarize(
                r.output_ms - r.total_ms for r in timed if r.output_ms is not None
            ).as_json(),
            "exit_ms": summarize(
                r.wall_ms - r.output_ms for r in timed if r.output_ms is not None
            ).as_json(),
        }

    def as_json(self) -> dict[str, object]:
        runs = self.runs
        counts = {name: sorted({run.count(name) for run in runs}) for name in COUNTS}
        return {
            "config": self.config.name,
            "description": self.config.description,
            "repeats": len(runs),
            "wall_ms": summarize(r.wall_ms for r in runs).as_json(),
            "total_ms": summarize(r.total_ms for r in runs).as_json(),
            "startup_ms": summarize(r.wall_ms - r.total_ms for r in runs).as_json(),
            **self._split_startup(),
            "phases_ms": {p: summarize(r.phase(p) for r in runs).as_json() for p in _phases(runs)},
            "token_ms": summarize(r.token_ms() for r in runs).as_json(),
            "server_alone_ms": self.server_alone.as_json(),
            "own_overhead_ms": summarize(self.own_overhead()).as_json(),
            "own_overhead_strict_ms": summarize(self.own_overhead_strict()).as_json(),
            "counts": counts,
            "server_saw": {
                "connections": self.connections,
                "requests": [f"{m} {op}" for m, op in self.steps],
            },
            "peak_rss_mib": summarize(r.maxrss_kib / 1024 for r in runs).as_json(1),
            **self.extra,
        }


def _phases(runs: Sequence[EnrollRun]) -> list[str]:
    """The phases the runs reported: the known ones in order, then any new ones."""
    seen: dict[str, None] = {}
    for run in runs:
        phases = run.timings.get("phases_ms", {})
        assert isinstance(phases, dict)
        seen.update(dict.fromkeys(phases))
    return [p for p in PHASES if p in seen] + [p for p in seen if p not in PHASES]


def _parse_enroll(child: ChildRun) -> EnrollRun:
    child.check()
    answer = json.loads(child.stdout)
    if answer.get("status") != "issued" or "timings" not in answer:
        raise RuntimeError(f"unexpected enroll answer: {answer}")
    output_ms = child.first_output_s * 1000 if child.first_output_s is not None else None
    return EnrollRun(child.wall_s * 1000, child.maxrss_kib, answer["timings"], output_ms)


def _enroll_env(token: TokenDir | None) -> dict[str, str]:
    # unbuffered, so that the answer leaves the process when it is printed, not at exit
    extra = token.env() if token else {"TSS2_LOG": "all+none"}
    return child_env({**extra, "PYTHONUNBUFFERED": "1"})


def _one_enroll(bench: Bench, config: EnrollConfig) -> EnrollRun:
    """One enrollment in a fresh est-hw process on a fresh token (or a fresh swtpm: a
    simulated TPM has room for only a dozen or so keys with their NV certificates)."""
    if not config.tpm:
        token = bench.tokens.new()
        argv = [bench.est_hw, *config.argv(bench, bench.next_name(), token, None)]
        return _parse_enroll(run_child(argv, _enroll_env(token)))
    swtpm = start_swtpm(bench.tokens.root / f"swtpm-{bench.next_name()}")
    try:
        argv = [bench.est_hw, *config.argv(bench, bench.next_name(), None, swtpm)]
        return _parse_enroll(run_child(argv, _enroll_env(None)))
    finally:
        swtpm.stop()


def _observe(bench: Bench, config: EnrollConfig) -> tuple[tuple[Step, ...], int]:
    """A warm-up enrollment; what the server saw of it: (method, operation) per request,
    and the number of TLS connections."""
    offset = bench.log_size()
    run = _one_enroll(bench, config)
    time.sleep(0.05)  # let the server's log line land
    seen = bench.requests_since(offset)
    if not seen:  # the server log format changed: fall back on est-hw's own count
        return (ISSUE_ONLY if run.count("http_requests") == 1 else ()), 0
    return tuple(step for _, step in seen), len({conn for conn, _ in seen})


def enroll_series(
    bench: Bench, configs: Sequence[EnrollConfig], probes: Mapping[str, Probe]
) -> tuple[list[EnrollSeries], dict[str, str], dict[str, list[dict[str, float]]]]:
    """One warm-up enrollment per configuration (which also shows what the server sees),
    then ``repeats`` rounds: each configuration once, then the minimal client doing the
    same requests twice.  Interleaving makes drift on a shared machine hit every
    configuration and its server-alone baseline alike.

    ``probes`` (the token alone, the imports alone) run once per round too, after one
    warm-up call each.  A configuration that fails (the TPM one, say) is dropped with its
    error; the others go on.  Returns the series, the errors by configuration name, and
    the probes' samples.
    """
    probed: dict[str, list[dict[str, float]]] = {name: [] for name in probes}
    for probe in probes.values():
        probe()
    failed: dict[str, str] = {}
    observed: dict[str, tuple[tuple[Step, ...], int]] = {}
    for config in configs:
        try:
            observed[config.name] = _observe(bench, config)
        except RuntimeError as exc:
            failed[config.name] = str(exc)[:1000]
    active = [config for config in configs if config.name not in failed]
    runs: dict[str, list[EnrollRun]] = {config.name: [] for config in active}
    alone: dict[str, list[float]] = {config.name: [] for config in active}
    context = bench.client.context()
    for _ in range(bench.repeats):
        for config in active:
            if config.name in failed:
                continue
            try:
                runs[config.name].append(_one_enroll(bench, config))
            except RuntimeError as exc:
                failed[config.name] = str(exc)[:1000]
                continue
            for _ in range(2):
                steps = observed[config.name][0]
                alone[config.name].append(bench.client.enrollment(steps, context))
        for name, probe in probes.items():
            probed[name].append(probe())
    series = [
        EnrollSeries(
            config,
            runs[config.name],
            observed[config.name][0],
            observed[config.name][1],
            summarize_ms(alone[config.name]),
        )
        for config in active
        if config.name not in failed
    ]
    return series, failed, probed


# --- cold start -----------------------------------------------------------------------


def cold_start(bench: Bench) -> dict[str, object]:
    """Wall time of short-lived processes, interleaved so drift hits all alike."""
    commands = {
        "python -c pass": [bench.python, "-c", "pass"],
        "est-hw --help": [bench.est_hw, "--help"],
        "est-hw enroll --help": [bench.est_hw, "enroll", "--help"],
    }
    env = child_env()
    walls: dict[str, list[float]] = {name: [] for name in commands}
    rss: dict[str, list[float]] = {name: [] for name in commands}
    rounds = max(bench.repeats, 5)
    for index in range(rounds + 1):
        for name, argv in commands.items():
            child = run_child(argv, env).check()
            if index:
                walls[name].append(child.wall_s)
                rss[name].append(child.maxrss_kib / 1024)
    results: dict[str, object] = {}
    baseline = statistics.median(walls["python -c pass"])
    for name in commands:
        summary = summarize_ms(walls[name])
        results[name] = {
            "wall_ms": summary.as_json(),
            "vs_python_c_pass": round(statistics.median(walls[name]) / baseline, 2),
            "peak_rss_mib": summarize(rss[name]).as_json(1),
        }
    return results


# --- import time ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Import:
    level: int
    module: str
    self_us: int
    cumulative_us: int


_MARK = "BENCH-MARK "


def _parse_importtime(stderr: str) -> tuple[list[_Import], dict[str, int]]:
    """The ``-X importtime`` lines, in the order printed (an import after its children),
    and where the runner's marks fell: mark -> number of imports before it."""
    entries: list[_Import] = []
    marks: dict[str, int] = {}
    for line in stderr.splitlines():
        if line.startswith(_MARK):
            marks[line[len(_MARK) :].strip()] = len(entries)
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            own, cumulative = int(parts[0].split(":")[1]), int(parts[1])
        except ValueError:
            continue  # the header line
        raw = parts[2][1:]
        level = (len(raw) - len(raw.lstrip(" "))) // 2
        entries.append(_Import(level, raw.strip(), own, cumulative))
    return entries, marks


#: Runs the CLI, writing a mark on stderr when --timings' recording starts and ends, so
#: that the imports inside the measured window can be told from the others.
_MARKED_RUNNER = f"""
import contextlib, sys
import est_hw.metrics
from est_hw.cli.main import main
_recording = est_hw.metrics.recording
@contextlib.contextmanager
def _marked():
    print("{_MARK}start", file=sys.stderr, flush=True)
    with _recording() as recorded:
        yield recorded
    print("{_MARK}end", file=sys.stderr, flush=True)
est_hw.metrics.recording = _marked
sys.argv[0] = "est-hw"
main()
"""


def _package(module: str) -> str:
    """What an import is charged to: est_hw's subpackage, a distribution, or "stdlib"."""
    parts = module.split(".")
    if parts[0] == "est_hw":
        return ".".join(parts[:2])
    if parts[0] in sys.stdlib_module_names:
        return "stdlib"
    return parts[0]


def _by_package(entries: Sequence[_Import], limit: int) -> list[dict[str, object]]:
    """Self time summed per package, heaviest first."""
    totals: dict[str, int] = {}
    for entry in entries:
        package = _package(entry.module)
        totals[package] = totals.get(package, 0) + entry.self_us
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:limit]
    return [{"package": name, "self_ms": round(us / 1000, 1)} for name, us in ranked]


def _libraries_imported_by_est_hw(entries: Sequence[_Import]) -> list[str]:
    """The modules outside est_hw that an est_hw module imports itself, in import order,
    without those of the token_open phase (token time): the libraries est-hw builds on.

    In ``-X importtime`` output an import is printed after its children, so the module
    that imported an entry is the next entry one level up.
    """
    found: list[str] = []
    for position, entry in enumerate(entries):
        if entry.module.startswith("est_hw") or _TOKEN_OPEN_IMPORTS.match(entry.module):
            continue
        importer = next(
            (later for later in entries[position + 1 :] if later.level == entry.level - 1),
            None,
        )
        if (
            importer is not None
            and importer.module.startswith("est_hw")
            and not _TOKEN_OPEN_IMPORTS.match(importer.module)
            and entry.module not in found
        ):
            found.append(entry.module)
    return found


def import_profile(bench: Bench) -> dict[str, object]:
    """``python -X importtime`` of ``est-hw --help`` and of one enrollment (minimal config).

    --help: everything is start-up.  enroll: what is imported between the start and the
    end of --timings' recording is inside its total ("lazy"), the rest is start-up or exit.
    Self times are summed per package (the profiler inflates them somewhat).
    """
    token = bench.tokens.new()
    env = child_env(token.env())
    profiles: dict[str, object] = {}
    for label, args in (
        ("est-hw --help", ["--help"]),
        ("est-hw enroll", MINIMAL.argv(bench, bench.next_name(), token, None)),
    ):
        argv = [bench.python, "-X", "importtime", "-c", _MARKED_RUNNER, *args]
        entries, marks = _parse_importtime(run_child(argv, env).check().stderr)
        begin = marks.get("start", len(entries))
        end = marks.get("end", len(entries))
        inside = entries[begin:end]
        outside = entries[:begin] + entries[end:]
        profiles[label] = {
            "lazy_modules": [e.module for e in inside if e.level == 0],
            "library_modules": _libraries_imported_by_est_hw(inside),
            "startup_imports_ms": round(sum(e.self_us for e in outside) / 1000, 1),
            "lazy_imports_ms": round(sum(e.self_us for e in inside) / 1000, 1),
            "startup_by_package": _by_package(outside, 10),
            "lazy_by_package": _by_package(inside, 14),
        }
    return profiles


# --- rates ----------------------------------------------------------------------------


def server_rates(bench: Bench, batches: int, batch_size: int) -> dict[str, dict[str, float]]:
    """Certificates per second the server issues to the minimal client (handshake +
    POST /simpleenroll per certificate), with 1, 2 and 4 client threads."""
    rates: dict[str, dict[str, float]] = {}
    for threads in (1, 2, 4):
        bench.client.rate(ISSUE_ONLY, 4, threads)  # warm-up
        samples = [bench.client.rate(ISSUE_ONLY, batch_size, threads) for _ in range(batches)]
        rates[f"{threads}_thread"] = summarize(samples).as_json()
    return rates


def _enroll_each_token(bench: Bench, token_dir: TokenDir) -> list[float]:
    """One worker of :func:`parallel_enroll_rate`: enroll its tokens one after another;
    the peak RSS (MiB) of each enrollment."""
    rss = []
    for label in token_dir.labels:
        token = TokenDir(token_dir.conf, (label,))
        argv = [bench.est_hw, *MINIMAL.argv(bench, bench.next_name(), token, None)]
        run = _parse_enroll(run_child(argv, _enroll_env(token)))
        rss.append(run.maxrss_kib / 1024)
    return rss


def parallel_enroll_rate(bench: Bench, batches: int, per_worker: int) -> dict[str, object]:
    """2 est-hw processes at a time, each enrolling ``per_worker`` fresh tokens one after
    the other (its own token dir); enrollments per second of the whole batch."""
    samples: list[float] = []
    rss: list[float] = []
    for _ in range(batches):
        dirs = [bench.tokens.new(per_worker) for _ in range(2)]
        start = time.perf_counter()
        done = in_parallel([functools.partial(_enroll_each_token, bench, d) for d in dirs])
        samples.append(2 * per_worker / (time.perf_counter() - start))
        rss += [mib for worker in done for mib in worker]
    return {
        "processes": 2,
        "enrollments_per_batch": 2 * per_worker,
        "per_s": summarize(samples).as_json(),
        "peak_rss_mib": summarize(rss).as_json(1),
    }


def warm_series(bench: Bench, server_ms: float) -> dict[str, object]:
    """``repeats`` + 1 enrollments in one process (bench/warm_enroll.py), each on its own
    fresh token of one token dir; the first pays the imports and is dropped."""
    token_dir = bench.tokens.new(bench.repeats + 1, prefix="warm")
    runs = [
        MINIMAL.argv(bench, bench.next_name(), TokenDir(token_dir.conf, (label,)), None)
        for label in token_dir.labels
    ]
    script = str(Path(__file__).with_name("warm_enroll.py"))
    child = run_child([bench.python, script, json.dumps(runs)], child_env(token_dir.env()))
    child.check()
    lines = [json.loads(line) for line in child.stdout.splitlines() if line.strip()]
    enrolls = [
        EnrollRun(line["wall_ms"], 0, line["timings"]) for line in lines if "wall_ms" in line
    ]
    maxrss = next(line["maxrss_kib"] for line in lines if "maxrss_kib" in line)
    first, rest = enrolls[0], enrolls[1:]
    overhead = [run.total_ms - run.token_ms() - server_ms for run in rest]
    return {
        "description": "pkcs11-minimal, N enrollments in one est-hw process (first dropped)",
        "repeats": len(rest),
        "first_total_ms": round(first.total_ms, 2),
        "total_ms": summarize(r.total_ms for r in rest).as_json(),
        "phases_ms": {p: summarize(r.phase(p) for r in rest).as_json() for p in _phases(rest)},
        "token_ms": summarize(r.token_ms() for r in rest).as_json(),
        "own_overhead_ms": summarize(overhead).as_json(),
        "per_s_projection": round(1000 / statistics.median(r.wall_ms for r in rest), 2),
        "peak_rss_mib_after_all": round(maxrss / 1024, 1),
    }


# --- the token alone, the imports alone ---------------------------------------------------


#: A measurement taken once per round of :func:`enroll_series`: name -> ms.
Probe = Callable[[], dict[str, float]]


def token_alone_probe(bench: Bench) -> Probe:
    """bench/token_alone.py on a fresh token: what SoftHSM2 itself costs for the token
    steps of one enrollment (ms per step)."""
    script = str(Path(__file__).with_name("token_alone.py"))

    def probe() -> dict[str, float]:
        token = bench.tokens.new(prefix="alone")
        argv = [bench.python, script, SOFTHSM_MODULE, token.labels[0]]
        child = run_child(argv, child_env(token.env())).check()
        return {step: float(ms) for step, ms in json.loads(child.stdout).items()}

    return probe


def in_parallel(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Run every task at once, one thread each; their results in order (the first error
    of a task is raised once all have ended)."""
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(task) for task in tasks]
    return [future.result() for future in futures]


def token_parallel_rates(
    bench: Bench, jobs: Sequence[int], per_process: int, batches: int
) -> dict[str, dict[str, float]]:
    """Devices per second the token alone manages with J processes at once
    (bench/token_alone.py, python-pkcs11 only, ``per_process`` tokens each, one after
    another), all tokens in one token dir as ``est-hw provision`` finds them: the
    ceiling of provisioning on this token at that concurrency."""
    script = str(Path(__file__).with_name("token_alone.py"))
    rates: dict[str, dict[str, float]] = {}
    for count in jobs:
        samples: list[float] = []
        for _ in range(batches):
            token_dir = bench.tokens.new(count * per_process, prefix="parallel")
            labels = list(token_dir.labels)
            argvs = [[bench.python, script, SOFTHSM_MODULE, *labels[i::count]]
                     for i in range(count)]  # fmt: skip
            env = child_env(token_dir.env())
            runs = in_parallel([functools.partial(run_child, argv, env) for argv in argvs])
            done = [json.loads(run.check().stdout) for run in runs]
            samples.append(sum(d["devices"] * 1000 / d["ms"] for d in done))
        rates[f"{count}_process"] = summarize(samples).as_json()
    return rates


def summarize_token_alone(samples: Sequence[dict[str, float]]) -> dict[str, object]:
    steps = {step: summarize(s[step] for s in samples).as_json() for step in samples[0]}
    totals = [sum(s[step] for step in ("open", "keygen", "sign", "store")) for s in samples]
    per_device = [t + s["journal"] for t, s in zip(totals, samples, strict=True)]
    return {
        "description": "python-pkcs11 only: open+login, EC P-256 keygen, 1 signature, "
        "3 certificate objects; journal = 2 data objects created, 2 destroyed",
        "steps_ms": steps,
        "open_keygen_sign_store_ms": summarize(totals).as_json(),
        "per_device_ms": summarize(per_device).as_json(),
        "per_s_sequential": round(1000 / statistics.median(per_device), 2),
    }


#: Lazy imports that happen inside the token_open phase (already counted as token time).
_TOKEN_OPEN_IMPORTS = re.compile(
    r"^(est_hw\.keys\.(pkcs11|tpm)|est_hw\.cli\.secrets|pkcs11|tpm2_pytss)"
)
_IMPORT_TIMER = (
    "import importlib, json, sys, time\n"
    "import est_hw.cli.main\n"
    "times = {}\n"
    "for name in sys.argv[1:]:\n"
    "    start = time.perf_counter()\n"
    "    importlib.import_module(name)\n"
    "    times[name] = (time.perf_counter() - start) * 1000\n"
    "print(json.dumps(times))\n"
)


#: Imports library modules in a fresh process the way est-hw does: est_hw.cli.main first
#: (start-up, outside the window, as in :data:`_IMPORT_TIMER`; it imports none of these
#: libraries), tlslite-ng's package registered without running its __init__
#: (est_hw.tls.tlslite_package), then the modules in order, timed.
_LIBRARY_TIMER = (
    "import importlib, importlib.util, json, sys, time\n"
    "import est_hw.cli.main\n"
    "start = time.perf_counter()\n"
    "spec = importlib.util.find_spec('tlslite')\n"
    "sys.modules['tlslite'] = importlib.util.module_from_spec(spec)\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "print(json.dumps((time.perf_counter() - start) * 1000))\n"
)


def library_import_probe(bench: Bench, modules: Sequence[str]) -> Probe:
    """The libraries est-hw's enrollment imports inside the command (cryptography,
    httpx, tlslite-ng, ... without python-pkcs11, which is token time), imported in a
    fresh process after est-hw's start-up but without est-hw's own modules of the
    command: ms in all.  No client written on these
    libraries can import them faster; what est-hw's own modules add is the difference
    to :func:`lazy_import_probe`."""

    def probe() -> dict[str, float]:
        child = run_child([bench.python, "-c", _LIBRARY_TIMER, *modules], child_env()).check()
        return {"total": float(json.loads(child.stdout))}

    return probe


def lazy_import_probe(bench: Bench, modules: Sequence[str]) -> Probe:
    """The modules an enrollment imports inside the command, imported in that order in a
    fresh process after ``est_hw.cli.main`` (no profiler): ms in all, and ms of those
    imported while the token is opened (already inside the token_open phase)."""

    def probe() -> dict[str, float]:
        child = run_child([bench.python, "-c", _IMPORT_TIMER, *modules], child_env()).check()
        times: dict[str, float] = json.loads(child.stdout)
        in_token_open = sum(ms for name, ms in times.items() if _TOKEN_OPEN_IMPORTS.match(name))
        return {"total": sum(times.values()), "in_token_open": in_token_open}

    return probe


def summarize_lazy_imports(
    modules: Sequence[str],
    samples: Sequence[dict[str, float]],
    libraries: Sequence[str],
    library_samples: Sequence[dict[str, float]],
) -> dict[str, object]:
    return {
        "modules": list(modules),
        "library_modules": list(libraries),
        "libraries_alone_ms": summarize(s["total"] for s in library_samples).as_json(),
        "ms": summarize(s["total"] for s in samples).as_json(),
        "in_token_open_ms": summarize(s["in_token_open"] for s in samples).as_json(),
        "outside_token_ms": summarize(s["total"] - s["in_token_open"] for s in samples).as_json(),
    }
