"""``make bench``: run the test server, SoftHSM2 (and swtpm) and report medians.

    .venv/bin/python -m bench.run [--quick] [--repeats N] [--out FILE] [--no-tpm]

Writes a table on stdout and the whole result as JSON (bench/results/latest.json).
Progress goes to stderr.  See docs/performance.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a file: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, scenarios
from bench.env import REPO, TokenFactory, have_swtpm, machine_info, token_storage
from bench.minimal_client import MinimalClient, premade_csr, write_chain_file
from bench.procs import venv_python, venv_script
from bench.provision import provision_benchmark

T = TypeVar("T")
DEFAULT_OUT = REPO / "bench" / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 15")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 15)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    parser.add_argument("--no-tpm", action="store_true", help="skip the swtpm enrollment")
    parser.add_argument(
        "--disk-tokens",
        action="store_true",
        help="keep the SoftHSM2 tokens and swtpm state on disk, not on tmpfs (/dev/shm)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")
    return parser


class Progress:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def step(self, what: str, action: Callable[[], T]) -> T:
        began = time.perf_counter()
        print(f"bench: {what} ...", file=sys.stderr, flush=True)
        result = action()
        now = time.perf_counter()
        print(
            f"bench:   done in {now - began:.1f} s (total {now - self.start:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        return result


def measure(args: argparse.Namespace, work: Path, token_root: Path) -> dict[str, Any]:
    from est_hw.testing.process import start_server_process

    repeats = args.repeats or (5 if args.quick else 15)
    progress = Progress()
    server = progress.step(
        "starting the test EST server", lambda: start_server_process([], work / "server")
    )
    try:
        client = MinimalClient("127.0.0.1", server.port, server.ca_file, premade_csr())
        bench = scenarios.Bench(
            work=work,
            repeats=repeats,
            est_hw=venv_script("est-hw"),
            python=venv_python(),
            server_url=server.url,
            server_log=server.log_file,
            ca_file=server.ca_file,
            chain_file=write_chain_file(client, work / "chain.pem"),
            client=client,
            tokens=TokenFactory(token_root),
        )
        results: dict[str, Any] = {"repeats": repeats}
        results["cold_start"] = progress.step("cold start", lambda: scenarios.cold_start(bench))
        configs = [scenarios.DEFAULT, scenarios.MINIMAL]
        if args.no_tpm or not have_swtpm():
            results["tpm_skipped"] = "--no-tpm" if args.no_tpm else "no swtpm or tpm2-pytss"
        else:
            configs.append(scenarios.TPM_DEFAULT)
        results["imports"] = progress.step(
            "import profile", lambda: scenarios.import_profile(bench)
        )
        lazy = results["imports"]["est-hw enroll"]["lazy_modules"]
        libraries = results["imports"]["est-hw enroll"]["library_modules"]
        probes = {
            "lazy_imports": scenarios.lazy_import_probe(bench, lazy),
            "library_imports": scenarios.library_import_probe(bench, libraries),
            "token_alone": scenarios.token_alone_probe(bench),
        }
        series, failed, probed = progress.step(
            f"enroll {', '.join(c.name for c in configs)}, imports alone, token alone: "
            f"interleaved, x{repeats}",
            lambda: scenarios.enroll_series(bench, configs, probes),
        )
        results["lazy_imports"] = scenarios.summarize_lazy_imports(
            lazy, probed["lazy_imports"], libraries, probed["library_imports"]
        )
        results["token_alone"] = scenarios.summarize_token_alone(probed["token_alone"])
        for config in (scenarios.DEFAULT, scenarios.MINIMAL):
            if config.name in failed:  # the PKCS#11 ones are the point: stop here
                raise RuntimeError(f"enroll {config.name} failed: {failed[config.name]}")
        if failed:
            results["enroll_failed"] = failed
            print(f"bench: enrollments failed: {failed}", file=sys.stderr)
        enroll = {one.config.name: one.as_json() for one in series}
        minimal = next(one for one in series if one.config is scenarios.MINIMAL)
        minimal_server_ms = minimal.server_alone.median
        sequential = 1000 / statistics.median(run.wall_ms for run in minimal.runs)
        results["enroll"] = enroll
        results["warm"] = progress.step(
            "warm in-process enrollments", lambda: scenarios.warm_series(bench, minimal_server_ms)
        )
        batches, size = (3, 20) if repeats < 10 else (5, 40)
        server_rates = progress.step(
            "server-alone rate", lambda: scenarios.server_rates(bench, batches, size)
        )
        par_batches, per_worker = (1, 3) if repeats < 10 else (3, 4)
        parallel = progress.step(
            "2 parallel est-hw processes",
            lambda: scenarios.parallel_enroll_rate(bench, par_batches, per_worker),
        )
        token_rates = progress.step(
            "token-alone rate at 1, 2, 4 processes",
            lambda: scenarios.token_parallel_rates(bench, (1, 2, 4), 10, batches),
        )
        results["rates"] = {
            "server_alone_per_s": server_rates,
            "token_alone_per_s": token_rates,
            "est_hw_sequential_per_s": round(sequential, 2),
            "est_hw_2_processes": parallel,
        }
        per_jobs = {int(k.split("_")[0]): v["median"] for k, v in server_rates.items()}
        results["provision"] = progress.step(
            "provision",
            lambda: provision_benchmark(
                bench,
                per_jobs,
                results["token_alone"]["per_s_sequential"],
                quick=repeats < 10,
            ),
        )
    finally:
        server.stop()
    results["elapsed_s"] = round(time.perf_counter() - progress.start, 1)
    return results


def compile_est_hw() -> str:
    """Byte-compile est_hw where it is imported from, as pip does when it installs a wheel.

    An editable install (this checkout's .venv) has no .pyc files until Python writes
    them, and with PYTHONDONTWRITEBYTECODE set it never does: every command would then
    compile est_hw's sources again, about 100 ms that no installed est-hw pays.
    """
    import compileall

    import est_hw

    package = Path(est_hw.__file__).parent
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"bench: cannot byte-compile {package}")
    return f"est_hw byte-compiled in {package} before measuring (as a wheel install is)"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    given = " ".join(argv if argv is not None else sys.argv[1:])
    command = ".venv/bin/python -m bench.run" + (f" {given}" if given else "")
    if os.environ.get("MAKELEVEL"):
        command = f"make bench ({command})"
    bytecode = compile_est_hw()
    work = Path(tempfile.mkdtemp(prefix="est-hw-bench-"))
    token_root, storage = token_storage(args.disk_tokens)
    try:
        results = {
            "command": command,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "token_storage": storage,
            "bytecode": bytecode,
        }
        load_start = os.getloadavg()[0]
        results.update(measure(args, work, token_root))
        results["loadavg"] = {"start": load_start, "end": os.getloadavg()[0]}
    finally:
        if args.keep:
            print(f"bench: kept {work} and {token_root}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(token_root, ignore_errors=True)
    results["own_overhead_breakdown"] = report.breakdown(results)
    results["targets"] = report.targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.render(results))
    print(f"\nbench: results in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
