"""Provisioning throughput: ``est-hw provision`` over 1, 10 and 50 tokens at several --jobs.

For each (tokens, jobs): a fresh SoftHSM2 token dir with that many empty tokens, a plan
that enrolls them all (``tokens = "all"``, the full chain as anchors, no /csrattrs), one
timed ``est-hw provision PLAN --jobs J --json`` process; certificates per second (over
the whole process, start-up included, so with ``--jobs`` > 1 the start of the worker
processes too) and its peak RSS, against what the server alone issues to the minimal
client with as many threads (target: at least 90 %).  The peak RSS is that of the largest
single process (est-hw or one of its workers, ``wait4``), not their sum.

When the token dirs are on a tmpfs, ``disk_cases`` repeats a small batch with its token
dir on disk, where SoftHSM2 fsyncs every object it writes: with worker processes the
fsyncs of different tokens overlap.

When this est-hw has no ``provision`` command the benchmark says so instead of measuring
anything else in its place.  The plan format is docs/provisioning.md's; if the command
refuses the plan, the error is reported and the rest of the benchmark goes on.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench.env import SOFTHSM_MODULE, TokenDir, TokenFactory, token_storage
from bench.procs import ChildRun, child_env, run_child
from bench.scenarios import Bench
from bench.stats import summarize

TOKEN_COUNTS = (1, 10, 50)
QUICK_TOKEN_COUNTS = (1, 10)
JOBS = (1, 2, 4)
#: the batch repeated with its token dir on disk (when the others are on a tmpfs)
DISK_TOKENS = 10
DISK_JOBS = (1, 4)
#: issue target: provisioning throughput >= this share of what the server alone issues
TARGET_SHARE = 0.90
NOT_YET = "not yet measurable (no provision command)"


def provision_available(bench: Bench) -> bool:
    """Whether this est-hw has a ``provision`` command."""
    child = run_child([bench.est_hw, "provision", "--help"], child_env())
    return child.returncode == 0


def write_plan(bench: Bench, token_dir: TokenDir, prefix: str) -> str:
    """A plan enrolling every token of ``token_dir`` (docs/provisioning.md)."""
    plan = token_dir.conf.parent / "plan.toml"
    plan.write_text(
        "[server]\n"
        f'url = "{bench.server_url}"\n'
        f'ca_file = "{bench.chain_file}"\n'
        "\n[key]\n"
        'type = "ec-p256"\n'
        "csrattrs = false\n"
        "\n[subject]\n"
        f'template = "CN={prefix}-{{token_label}}"\n'
        "\n[[devices]]\n"
        f'module = "{SOFTHSM_MODULE}"\n'
        'tokens = "all"\n'
    )
    return str(plan)


def provision_argv(bench: Bench, token_dir: TokenDir, jobs: int, prefix: str) -> list[str]:
    """The ``est-hw provision`` command line for every token of ``token_dir``."""
    plan = write_plan(bench, token_dir, prefix)
    return [bench.est_hw, "provision", plan, "--jobs", str(jobs), "--json", "--no-progress"]


def provision_benchmark(
    bench: Bench, server_rate_per_jobs: dict[int, float], token_rate: float, *, quick: bool
) -> dict[str, Any]:
    """Throughput and peak memory for each (tokens, jobs), or why it cannot be measured."""
    counts = QUICK_TOKEN_COUNTS if quick else TOKEN_COUNTS
    plan = {
        "tokens": list(counts),
        "jobs": list(JOBS),
        "target_share": TARGET_SHARE,
        "token_alone_per_s_sequential": token_rate,
    }
    if not provision_available(bench):
        return {"status": NOT_YET, "plan": plan}
    cases: list[dict[str, Any]] = []
    try:
        for count in counts:
            for jobs in JOBS:
                case = _case(bench, count, jobs, server_rate_per_jobs, quick=quick)
                case["share_of_token_alone_sequential"] = round(
                    case["per_s"]["median"] / token_rate, 3
                )
                cases.append(case)
    except RuntimeError as exc:
        return {"status": f"provision failed: {str(exc)[:600]}", "plan": plan, "cases": cases}
    answer: dict[str, Any] = {"status": "measured", "plan": plan, "cases": cases}
    if _on_tmpfs(bench.tokens.root):
        try:
            answer["disk_cases"] = _disk_cases(bench, server_rate_per_jobs, quick=quick)
        except RuntimeError as exc:
            answer["disk_cases"] = f"provision failed: {str(exc)[:600]}"
    return answer


def _on_tmpfs(path: Path) -> bool:
    """Whether ``path`` lies on a tmpfs (the longest mount point of /proc/mounts above it)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return False
    resolved = str(path.resolve())
    above = [(point, fs) for point, fs in mounts
             if resolved == point or resolved.startswith(point.rstrip("/") + "/")]  # fmt: skip
    return bool(above) and max(above, key=lambda mount: len(mount[0]))[1] == "tmpfs"


def _disk_cases(
    bench: Bench, server_rate_per_jobs: dict[int, float], *, quick: bool
) -> list[dict[str, Any]]:
    """:data:`DISK_TOKENS` tokens at each of :data:`DISK_JOBS`, token dirs on disk."""
    root, storage = token_storage(on_disk=True)
    tmpfs_tokens = bench.tokens
    bench.tokens = TokenFactory(root)
    try:
        return [
            {**_case(bench, DISK_TOKENS, jobs, server_rate_per_jobs, quick=quick),
             "storage": storage}
            for jobs in DISK_JOBS
        ]  # fmt: skip
    finally:
        bench.tokens = tmpfs_tokens
        shutil.rmtree(root, ignore_errors=True)


def _check_all_issued(child: ChildRun, count: int) -> dict[str, Any]:
    child.check()
    answer: dict[str, Any] = json.loads(child.stdout)
    if answer.get("issued") != count:
        raise RuntimeError(f"provision issued {answer.get('issued')} of {count}: {answer}")
    return answer


def _case(
    bench: Bench, count: int, jobs: int, server_rate_per_jobs: dict[int, float], *, quick: bool
) -> dict[str, Any]:
    repeats = 1 if quick else 3
    rates: list[float] = []
    own_rates: list[float] = []
    rss: list[float] = []
    for _ in range(repeats):
        prefix = f"prov{count}x{jobs}"
        token_dir = bench.tokens.new(count, prefix=prefix)
        argv = provision_argv(bench, token_dir, jobs, bench.next_name())
        child = run_child(argv, child_env(token_dir.env()), timeout=600)
        answer = _check_all_issued(child, count)
        rates.append(count / child.wall_s)
        if answer.get("devices_per_second"):
            own_rates.append(float(answer["devices_per_second"]))
        rss.append(child.maxrss_kib / 1024)
    rate = summarize(rates)
    server = server_rate_per_jobs.get(jobs) or server_rate_per_jobs[max(server_rate_per_jobs)]
    share = rate.median / server
    return {
        "tokens": count,
        "jobs": jobs,
        "repeats": repeats,
        "per_s": rate.as_json(),
        "per_s_reported": summarize(own_rates).as_json() if own_rates else None,
        "server_alone_per_s": round(server, 2),
        "share_of_server": round(share, 4),
        "met": share >= TARGET_SHARE,
        "peak_rss_mib": summarize(rss).as_json(1),
    }
