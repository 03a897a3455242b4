"""Benchmark: the operator SIGKILLed at random moments, 50 times, while pods leak and get
OOM-killed; then started again. Runs tests/e2e/test_operator_sigkill.py with
OOMF_SIGKILL_TRIALS (the real test cluster of hack/cluster, its kubelet's pods, S3 on moto)
and writes what it printed and whether every invariant held to the `<!-- bench:sigkill -->`
section of RESULTS.md.

    .venv/bin/python benchmarks/bench_sigkill.py [--trials 50] [--no-write]
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
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    print(f"bench_sigkill: {args.trials} SIGKILLs of the operator (a few minutes)", flush=True)
    done = run_test("tests/e2e/test_operator_sigkill.py", {"OOMF_SIGKILL_TRIALS": str(args.trials)})
    if not args.no_write:
        update_results(RESULTS, "sigkill", render(args.trials, done))
        print(f"wrote the sigkill section of {RESULTS}")
    return done.returncode


def render(trials: int, done: ScenarioRun) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!-- bench:sigkill -->\n## Operator SIGKILLed at random moments\n\n"
        f"`.venv/bin/python benchmarks/bench_sigkill.py --trials {trials}`, {now}, "
        f"{done.elapsed:.0f} s in all; load average {os.getloadavg()[0]:.2f} at the end.\n\n"
        "On the real test cluster (hack/cluster: kube-apiserver with RBAC, metrics-server, "
        "the kubelet and containerd): three pods of the leaky fixture (`-mode mapcache`, "
        "96 MiB limit), OOM-killed by the kernel about 15 s into each run and restarted by "
        "the kubelet (with its back-off, 10 s doubling), under one MemoryInvestigation (1 s "
        "sampling); the operator (`oomforensics run`, a separate process with a token of the "
        "chart's ServiceAccount and the chart's RBAC) is started and SIGKILLed after a random "
        "1-8 s, again and again, then started once more. Checked: every snapshot announced "
        "by a SnapshotCaptured Event is in the S3 archive and verifies; no baseline or "
        "threshold captured twice in a container run; the status converges (snapshot count "
        "equals the archive's, every OOM kill listed exactly once, those while the operator "
        "was down included, Ready and Capturing True, written by the last operator); no "
        "request refused by the authorizer.\n\n"
        f"**Result: {done.verdict}** ({trials} kills).\n\n"
        f"{done.line(' kills at ') or '(no summary line printed)'}\n"
        + done.failure()
        + "\n<!-- /bench:sigkill -->"
    )


if __name__ == "__main__":
    sys.exit(main())
