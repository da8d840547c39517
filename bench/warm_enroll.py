"""Run several ``est-hw enroll`` commands in ONE process (the CLI's own entry point).

Usage: ``python bench/warm_enroll.py ARGV_JSON``, where ARGV_JSON is a JSON list of
argument lists (each without the leading ``est-hw``).  Prints one JSON line per
enrollment: ``{"wall_ms": ..., "timings": {...}}``, then ``{"maxrss_kib": ...}``.

After the first enrollment every module is imported, the PKCS#11 library is loaded and
the code is warm: what the later ones cost is what a batch command (``est-hw provision``)
would pay per token.  This is a projection for that command, not a measurement of it.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import time


def main(argv: list[str]) -> int:
    runs: list[list[str]] = json.loads(argv[1])
    from est_hw.cli.main import cli

    for args in runs:
        captured = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(captured):
            cli.main(args, prog_name="est-hw", standalone_mode=False)
        wall_ms = (time.perf_counter() - start) * 1000
        answer = json.loads(captured.getvalue())
        if answer.get("status") != "issued":
            raise SystemExit(f"enroll did not issue: {answer}")
        print(json.dumps({"wall_ms": round(wall_ms, 2), "timings": answer["timings"]}))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"maxrss_kib": maxrss}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
