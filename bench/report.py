"""Targets (pass/fail) and the human-readable table."""

from __future__ import annotations

from typing import Any

HELP_TARGET_MS = 150.0
OVERHEAD_TARGET_MS = 100.0
THROUGHPUT_TARGET_SHARE = 0.90


def _median(block: Any) -> float:
    return float(block["median"])


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against this run's medians, plus the round-trip check."""
    out: dict[str, Any] = {}
    help_ms = _median(results["cold_start"]["est-hw --help"]["wall_ms"])
    out["help_cold_start"] = {
        "target": f"est-hw --help < {HELP_TARGET_MS:.0f} ms",
        "value_ms": round(help_ms, 1),
        "met": help_ms < HELP_TARGET_MS,
    }
    default = results["enroll"]["pkcs11-default"]
    overhead = _median(default["own_overhead_ms"])
    out["enroll_own_overhead"] = {
        "target": f"own overhead of one enroll < {OVERHEAD_TARGET_MS:.0f} ms "
        "(--timings total - token phases - server-alone time; pkcs11-default, fresh process)",
        "value_ms": round(overhead, 1),
        "met": overhead < OVERHEAD_TARGET_MS,
        "minimal_config_ms": round(
            _median(results["enroll"]["pkcs11-minimal"]["own_overhead_ms"]), 1
        ),
        "warm_process_ms": round(_median(results["warm"]["own_overhead_ms"]), 1),
    }
    split = results.get("own_overhead_breakdown", {}).get("pkcs11-default")
    if split:
        out["enroll_own_overhead"]["library_imports_ms"] = split["library_imports_ms"]
        out["enroll_own_overhead"]["beyond_libraries_ms"] = split["beyond_libraries_ms"]
    rates = results["rates"]
    server1 = _median(rates["server_alone_per_s"]["1_thread"])
    server2 = _median(rates["server_alone_per_s"]["2_thread"])
    cold1 = rates["est_hw_sequential_per_s"]
    cold2 = _median(rates["est_hw_2_processes"]["per_s"])
    warm1 = results["warm"]["per_s_projection"]
    provision = results["provision"]
    cases = provision.get("cases") or []
    largest = max((case["tokens"] for case in cases), default=0)
    best = max(
        (case for case in cases if case["tokens"] == largest),
        key=lambda case: case["share_of_server"],
        default=None,
    )
    out["provision_throughput"] = {
        "target": f"provision throughput >= {THROUGHPUT_TARGET_SHARE:.0%} of the server alone",
        "met": best["met"] if best and provision["status"] == "measured" else None,
        "status": provision["status"],
        "best_at_largest_batch": best,
        "proxies": {
            "enroll_processes_sequential_share": round(cold1 / server1, 4),
            "enroll_2_processes_share": round(cold2 / server2, 4),
            "warm_in_process_sequential_share": round(warm1 / server1, 4),
        },
    }
    out["provision_vs_bottleneck"] = _provision_vs_bottleneck(results, largest)
    minimal = results["enroll"]["pkcs11-minimal"]["counts"]
    out["minimum_round_trips"] = {
        "target": "1 TLS handshake and 1 HTTP request when the chain is known and no "
        "csrattrs are needed",
        "handshakes": minimal["tls_handshakes"],
        "requests": minimal["http_requests"],
        "met": minimal["tls_handshakes"] == [1] and minimal["http_requests"] == [1],
    }
    return out


def _provision_vs_bottleneck(results: dict[str, Any], tokens: int) -> dict[str, Any]:
    """The largest batch against the slower of its two baselines at the same concurrency:
    the server alone (minimal client, J threads) and the token alone (python-pkcs11,
    J processes).  Whichever is slower bounds any client; est-hw is not the bottleneck
    when it reaches the target share of that bound."""
    rates = results["rates"]
    token_rates = rates.get("token_alone_per_s", {})
    rows = []
    for case in results["provision"].get("cases") or []:
        token = token_rates.get(f"{case['jobs']}_process")
        if case["tokens"] != tokens or token is None:
            continue
        server = case["server_alone_per_s"]
        bound = min(server, _median(token))
        per_s = case["per_s"]["median"]
        rows.append({
            "tokens": tokens, "jobs": case["jobs"], "per_s": round(per_s, 2),
            "server_alone_per_s": round(server, 1), "token_alone_per_s": round(_median(token), 1),
            "bottleneck": "token" if _median(token) < server else "server",
            "share_of_bound": round(per_s / bound, 4),
            "own_count_share_of_bound": round(case["per_s_reported"]["median"] / bound, 4)
            if case.get("per_s_reported") else None,
        })  # fmt: skip
    best = max(rows, key=lambda row: row["share_of_bound"], default=None)
    return {
        "target": f"provision throughput >= {THROUGHPUT_TARGET_SHARE:.0%} of the slower of "
        "the server alone and the token alone (same concurrency)",
        "met": best["share_of_bound"] >= THROUGHPUT_TARGET_SHARE if best else None,
        "rows": rows,
        "best": best,
    }


def breakdown(results: dict[str, Any]) -> dict[str, Any]:
    """Own overhead (medians) split into: imports done inside the command outside the
    token phases (measured without the profiler), themselves split into the libraries
    est-hw builds on (imported alone) and est-hw's own modules (the difference), and the
    rest (est-hw's own code: CSR, TLS and HTTP client, checks, output).  The journal's
    token writes are a token phase of --timings, so they are not in the own overhead."""
    imports = _median(results["lazy_imports"]["outside_token_ms"])
    libraries = _median(results["lazy_imports"]["libraries_alone_ms"])
    out: dict[str, Any] = {}
    rows = [(name, block, imports, libraries) for name, block in results["enroll"].items()]
    rows.append(("warm", results["warm"], 0.0, 0.0))
    for name, block, imported, library in rows:
        own = _median(block["own_overhead_ms"])
        out[name] = {
            "own_overhead_ms": round(own, 1),
            "lazy_imports_ms": round(imported, 1),
            "library_imports_ms": round(library, 1),
            "est_hw_imports_ms": round(imported - library, 1),
            "rest_ms": round(own - imported, 1),
            "beyond_libraries_ms": round(own - library, 1),
        }
    return out


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("MET" if met else "MISSED")


def _mmm(block: Any, digits: int = 1) -> str:
    return (
        f"{block['median']:>8.{digits}f}  ({block['min']:.{digits}f} - {block['max']:.{digits}f})"
    )


def render(results: dict[str, Any]) -> str:
    """The whole result as aligned text: median (min - max) per line."""
    lines: list[str] = []
    add = lines.append
    machine = results["machine"]
    add(f"est-hw benchmark  ({results['repeats']} repeats, medians; min - max in brackets)")
    add(
        f"machine: {machine['cpu_model']}, {machine['nproc']} cores, "
        f"{machine['mem_total_mib']} MiB, {machine['os']}, Python {machine['python']}"
    )
    add(f"SoftHSM2 tokens and swtpm state on: {results.get('token_storage', '?')}")
    add(f"bytecode: {results.get('bytecode', 'not compiled before measuring')}")
    load = results.get("loadavg", {})
    if load:
        add(f"load average (1 min) at start {load['start']:.2f}, at end {load['end']:.2f}")
        if load["start"] > 1.0:
            add("WARNING: the machine was busy when the benchmark started; numbers are noisy")
    add("")
    add("cold start (wall ms, fresh process)           median  (min - max)    x python -c pass")
    for name, block in results["cold_start"].items():
        add(f"  {name:<40} {_mmm(block['wall_ms'])}   x{block['vs_python_c_pass']}")
    for config, block in results["enroll"].items():
        lines += _enroll_lines(config, block)
    for config, error in results.get("enroll_failed", {}).items():
        lines += ["", f"enroll: {config} FAILED, left out: {error.splitlines()[-1]}"]
    if results.get("tpm_skipped"):
        lines += ["", f"enroll --tpm: skipped ({results['tpm_skipped']})"]
    lines += _rest_lines(results) + _analysis_lines(results) + _verdict_lines(results)
    return "\n".join(lines)


def _enroll_lines(config: str, block: Any) -> list[str]:
    lines: list[str] = []
    add = lines.append
    add("")
    add(f"enroll: {config}  -- {block['description']}")
    add(f"  {'wall (process start to exit)':<40} {_mmm(block['wall_ms'])}")
    add(f"  {'  start-up + exit (wall - total)':<40} {_mmm(block['startup_ms'])}")
    if "exit_ms" in block:
        add(f"  {'    before the command (start-up)':<40} {_mmm(block['before_command_ms'])}")
        add(f"  {'    after the answer (exit)':<40} {_mmm(block['exit_ms'])}")
    add(f"  {'--timings total':<40} {_mmm(block['total_ms'])}")
    for phase, summary in block["phases_ms"].items():
        add(f"  {'  ' + phase:<40} {_mmm(summary)}")
    add(f"  {'token phases (open+keygen+sign+store)':<40} {_mmm(block['token_ms'])}")
    add(f"  {'server alone (minimal client)':<40} {_mmm(block['server_alone_ms'])}")
    add(f"  {'OWN OVERHEAD (total-token-server)':<40} {_mmm(block['own_overhead_ms'])}")
    add(f"  {'  (total-keygen-csr_sign-server)':<40} {_mmm(block['own_overhead_strict_ms'])}")
    counts = ", ".join(f"{k} {'/'.join(map(str, v))}" for k, v in block["counts"].items())
    add(f"  counts: {counts}")
    saw = block["server_saw"]
    add(f"  server saw: {saw['connections']} connection(s): {', '.join(saw['requests'])}")
    add(f"  {'peak RSS (MiB)':<40} {_mmm(block['peak_rss_mib'])}")
    return lines


def _rest_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    add = lines.append
    warm = results["warm"]
    add("")
    add(f"warm: {warm['description']}")
    add(f"  {'first enrollment total (imports)':<40} {warm['first_total_ms']:>8.1f}")
    add(f"  {'--timings total':<40} {_mmm(warm['total_ms'])}")
    add(f"  {'token phases':<40} {_mmm(warm['token_ms'])}")
    add(f"  {'OWN OVERHEAD':<40} {_mmm(warm['own_overhead_ms'])}")
    add(f"  {'peak RSS after all (MiB)':<40} {warm['peak_rss_mib_after_all']:>8.1f}")
    rates = results["rates"]
    add("")
    add("rates (certificates / s)")
    for threads, block in rates["server_alone_per_s"].items():
        add(f"  {'server alone, minimal client, ' + threads.replace('_', ' '):<40} {_mmm(block)}")
    for procs, block in rates.get("token_alone_per_s", {}).items():
        add(f"  {'token alone, python-pkcs11, ' + procs.replace('_', ' '):<40} {_mmm(block)}")
    add(f"  {'est-hw enroll processes, sequential':<40} {rates['est_hw_sequential_per_s']:>8.1f}")
    par = rates["est_hw_2_processes"]
    add(f"  {'est-hw enroll, 2 processes, 2 token dirs':<40} {_mmm(par['per_s'])}")
    add(f"  {'warm in-process (projection)':<40} {warm['per_s_projection']:>8.1f}")
    return lines


def _analysis_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    add = lines.append
    imports = results.get("imports", {})
    if imports:
        add("")
        add("imports (python -X importtime, ms; inflated by the profiler)")
        for name, block in imports.items():
            add(
                f"  {name:<20} start-up {block['startup_imports_ms']:>6.1f}   "
                f"inside --timings' window {block['lazy_imports_ms']:>6.1f}"
            )
            which = "startup" if name.endswith("--help") else "lazy"
            tops = block[f"{which}_by_package"]
            add(f"    {which} by package (self ms):")
            for start in range(0, len(tops), 6):
                add(
                    "      "
                    + ", ".join(f"{t['package']} {t['self_ms']}" for t in tops[start : start + 6])
                )
    lazy = results.get("lazy_imports")
    if lazy:
        add(f"  {'enroll: imports inside the command, no profiler':<48} {_mmm(lazy['ms'])}")
        add(f"  {'  of them inside token_open (token time)':<48} {_mmm(lazy['in_token_open_ms'])}")
        add(f"  {'  outside the token phases':<48} {_mmm(lazy['outside_token_ms'])}")
        add(f"  {'libraries alone, no est_hw module':<48} {_mmm(lazy['libraries_alone_ms'])}")
    alone = results["token_alone"]
    add("")
    add(f"token alone: {alone['description']}")
    for step, block in alone["steps_ms"].items():
        add(f"  {step:<40} {_mmm(block)}")
    add(f"  {'open+keygen+sign+store':<40} {_mmm(alone['open_keygen_sign_store_ms'])}")
    add(f"  {'per device (+ journal)':<40} {_mmm(alone['per_device_ms'])}")
    add(f"  {'devices / s, one after another':<40} {alone['per_s_sequential']:>8.2f}")
    add("")
    add("own overhead, medians (ms): = library imports + est_hw imports + rest;  beyond libraries")
    for name, row in results["own_overhead_breakdown"].items():
        add(
            f"  {name:<16} {row['own_overhead_ms']:>7.1f} = {row['library_imports_ms']:>6.1f}"
            f" + {row['est_hw_imports_ms']:>6.1f} + {row['rest_ms']:>6.1f};"
            f"  {row['beyond_libraries_ms']:>6.1f}"
        )
    return lines


def _verdict_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    add = lines.append
    add("")
    add(f"provision: {results['provision']['status']}")
    for case in results["provision"].get("cases") or []:
        add(
            f"  {case['tokens']:>3} tokens --jobs {case['jobs']}: "
            f"{_mmm(case['per_s'], 2)} /s = {case['share_of_server']:.1%} of server alone "
            f"({case['server_alone_per_s']:.0f}/s), "
            f"x{case['share_of_token_alone_sequential']:.2f} token alone, "
            + (
                f"own count {case['per_s_reported']['median']:.1f}/s, "
                if case.get("per_s_reported")
                else ""
            )
            + f"peak RSS {case['peak_rss_mib']['max']:.0f} MiB"
        )
    add("")
    add("targets")
    for name, block in results["targets"].items():
        value = block.get("value_ms")
        shown = f"{value:.1f} ms" if value is not None else ""
        if name == "enroll_own_overhead" and "beyond_libraries_ms" in block:
            shown += (
                f" (importing the libraries alone: {block['library_imports_ms']:.1f} ms;"
                f" est-hw beyond them: {block['beyond_libraries_ms']:.1f} ms)"
            )
        if name == "minimum_round_trips":
            shown = f"handshakes {block['handshakes']}, requests {block['requests']}"
        if name == "provision_throughput":
            shown = block["status"]
            best = block["best_at_largest_batch"]
            if best:
                shown = (
                    f"{best['per_s']['median']:.2f}/s with {best['tokens']} tokens, "
                    f"--jobs {best['jobs']} = {best['share_of_server']:.1%} of the server "
                    f"alone ({best['server_alone_per_s']:.0f}/s)"
                )
        if name == "provision_vs_bottleneck":
            best = block["best"]
            shown = (
                f"{best['per_s']:.2f}/s with {best['tokens']} tokens, --jobs {best['jobs']} = "
                f"{best['share_of_bound']:.1%} of the {best['bottleneck']} alone "
                f"(server {best['server_alone_per_s']:.0f}/s, token "
                f"{best['token_alone_per_s']:.0f}/s)"
                if best
                else "not measured"
            )
        add(f"  {_verdict(block['met']):<7} {block['target']}: {shown}")
    return lines
