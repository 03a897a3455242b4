"""Benchmark: the operator SIGKILLed at random moments, 50 times, while pods leak and get
OOM-killed; then started again. Runs tests/e2e/test_operator_sigkill.py with
OOMF_SIGKILL_TRIALS (the test cluster, real pods, S3 on moto) and writes what it printed
and whether every invariant held to the `<!-- bench:sigkill -->` section of RESULTS.md.

    .venv/bin/python benchmarks/bench_sigkill.py [--trials 50] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench_analysis import update_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
TEST = "tests/e2e/test_operator_sigkill.py"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    env = dict(os.environ, OOMF_SIGKILL_TRIALS=str(args.trials))
    started = time.monotonic()
    print(f"bench_sigkill: {args.trials} SIGKILLs of the operator (a few minutes)", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST,
         "-o", "timeout=3600"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    summary = next((line for line in done.stdout.splitlines() if " kills at " in line), None)
    verdict = "every invariant held" if done.returncode == 0 else "FAILED"
    print(done.stdout[-3000:])
    section = render(args.trials, summary, verdict, done, elapsed)
    if not args.no_write:
        update_results(RESULTS, "sigkill", section)
        print(f"wrote the sigkill section of {RESULTS}")
    return done.returncode


def render(
    trials: int,
    summary: str | None,
    verdict: str,
    done: subprocess.CompletedProcess[str],
    elapsed: float,
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    failure = ""
    if done.returncode != 0:
        errors = [line for line in done.stdout.splitlines() if line.startswith("E ")][:10]
        failure = "\n\nFirst assertion lines:\n\n```\n" + "\n".join(errors) + "\n```"
    return (
        "<!-- bench:sigkill -->\n## Operator SIGKILLed at random moments\n\n"
        f"`.venv/bin/python benchmarks/bench_sigkill.py --trials {trials}`, {now}, "
        f"{elapsed:.0f} s in all; load average {os.getloadavg()[0]:.2f} at the end.\n\n"
        "Three pods of the leaky fixture (`-mode mapcache`, 96 MiB limit, OOM-killed and "
        "restarted every ~15 s) under one MemoryInvestigation (1 s sampling); the operator "
        "(`oomforensics run`, a separate process) is started and SIGKILLed after a random "
        "1-8 s, again and again, then started once more. Checked: every snapshot announced "
        "by a SnapshotCaptured Event is in the S3 archive and verifies; no baseline or "
        "threshold captured twice in a container run; the status converges (snapshot count "
        "equals the archive's, every OOM kill listed exactly once, those while the operator "
        "was down included, Ready and Capturing True, written by the last operator).\n\n"
        f"**Result: {verdict}** ({trials} kills).\n\n"
        f"{summary or '(no summary line printed)'}\n"
        + failure
        + "\n<!-- /bench:sigkill -->"
    )


if __name__ == "__main__":
    sys.exit(main())
