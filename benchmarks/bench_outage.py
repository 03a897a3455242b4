"""Benchmark: an S3 outage of several minutes while a pod leaks into its OOM kill, with the
operator capturing throughout. Runs tests/e2e/test_operator_storage_outage.py with
OOMF_OUTAGE_SECONDS and writes the outcome to the `<!-- bench:outage -->` section of
RESULTS.md.

    .venv/bin/python benchmarks/bench_outage.py [--seconds 180] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Sequence

from bench_analysis import update_results
from scenario_bench import ROOT, ScenarioRun, run_test

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    print(f"bench_outage: S3 down for {args.seconds:g} s around an OOM kill", flush=True)
    done = run_test(
        "tests/e2e/test_operator_storage_outage.py", {"OOMF_OUTAGE_SECONDS": f"{args.seconds:g}"}
    )
    if not args.no_write:
        update_results(RESULTS, "outage", render(args.seconds, done))
        print(f"wrote the outage section of {RESULTS}")
    return done.returncode


def render(seconds: float, done: ScenarioRun) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!-- bench:outage -->\n## S3 outage across an OOM kill\n\n"
        f"`.venv/bin/python benchmarks/bench_outage.py --seconds {seconds:g}`, {now}, "
        f"{done.elapsed:.0f} s in all; load average {os.getloadavg()[0]:.2f} at the end.\n\n"
        "One pod of the leaky fixture (`-mode mapcache`, 128 MiB limit) under a "
        "MemoryInvestigation (1 s sampling), S3 on moto as the archive. After the baseline is "
        f"stored, S3 is stopped for {seconds:g} s; the leak reaches the limit and the kernel "
        "kills it during the outage. Checked: StorageReady turns False (StorageUnavailable), "
        "captures go to the local spool, and once S3 is back the spool drains: every snapshot "
        "announced is in the archive exactly once and verifies, the pre-OOM one included, and "
        "the status count equals the archive's.\n\n"
        f"**Result: {done.verdict}.**\n\n"
        f"{done.line('outage of') or '(no summary line printed)'}\n"
        + done.failure()
        + "\n<!-- /bench:outage -->"
    )


if __name__ == "__main__":
    sys.exit(main())
