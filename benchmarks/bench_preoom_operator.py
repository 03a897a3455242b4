"""Benchmark: pre-OOM snapshots with the operator in the loop (test cluster, kopf, S3 on moto).

Runs benchmarks/operator_preoom_scenario.py through pytest (it needs the test cluster's
fixtures) and writes, per leak speed, how many runs kept a snapshot at >= 80 % of the limit
as the OOM kill's pre-OOM snapshot, to the `<!-- bench:preoom-operator -->` section of
RESULTS.md. The operator samples at the CRD's default 15 s.

    .venv/bin/python benchmarks/bench_preoom_operator.py [--repeat 3] [--speeds 60,20,5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_analysis import update_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SCENARIO = "benchmarks/operator_preoom_scenario.py"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--speeds", default="60,20,5")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="oomf-bench-")) / "runs.jsonl"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        OOMF_PREOOM_SPEEDS=args.speeds,
        OOMF_PREOOM_REPEAT=str(args.repeat),
        OOMF_PREOOM_OUT=str(out),
    )
    load = os.getloadavg()[0]
    started = time.monotonic()
    print(f"bench_preoom_operator: {args.repeat} x speeds {args.speeds} s", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", SCENARIO],
        cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    section = render(args, rows, done.returncode, time.monotonic() - started, load)
    print(section)
    if not args.no_write and rows:
        update_results(RESULTS, "preoom-operator", section)
    return done.returncode


def kept(row: dict[str, Any]) -> bool:
    percent = row.get("percentOfLimit")
    return percent is not None and percent >= 80


def render(
    args: argparse.Namespace, rows: list[dict[str, Any]], code: int, elapsed: float, load: float
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "<!-- bench:preoom-operator -->",
        "## Pre-OOM snapshots with the operator in the loop",
        "",
        f"`.venv/bin/python benchmarks/bench_preoom_operator.py --repeat {args.repeat} "
        f"--speeds {args.speeds}`, {now}, {elapsed:.0f} s in all; load average {load:.2f} at "
        f"the start, {os.getloadavg()[0]:.2f} at the end"
        + ("" if code == 0 else f"; **the scenario exited with {code}**")
        + ".",
        "",
        "Each run: a pod of the leaky fixture (`-mode mapcache`, the leak begins at start, "
        "128 MiB limit) on the test cluster's kubelet (a real memory cgroup, a real kernel OOM "
        "kill), a MemoryInvestigation with the CRD's defaults (15 s sampling, thresholds "
        "80/90/95 %), the operator under kopf, snapshots to S3 on moto. Counted: the OOM "
        "kill's `preOomSnapshot` in the status was taken at >= 80 % of the limit.",
        "",
        "| speed (50->100 %) | runs | pre-OOM snapshot >= 80 % | its % of limit: median "
        "(min-max) | pod start -> kill recorded, median |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for speed in sorted({r["speed"] for r in rows}, reverse=True):
        group = [r for r in rows if r["speed"] == speed]
        percents = [r["percentOfLimit"] for r in group if r["percentOfLimit"] is not None]
        span = (
            f"{statistics.median(percents):.1f} % ({min(percents):.1f}-{max(percents):.1f} %)"
            if percents
            else "-"
        )
        good = sum(kept(r) for r in group)
        lines.append(
            f"| {speed:g} s | {len(group)} | {good}/{len(group)} | {span} | "
            f"{statistics.median(r['startToKillSeconds'] for r in group):.1f} s |"
        )
    lines += ["", "<details><summary>Every run</summary>", ""]
    lines += [
        f"- {r['name']}: `-rate {r['rate']}`, pre-OOM {r['preOomSnapshot'] or 'none'} "
        f"({r['percentOfLimit']} %)"
        for r in rows
    ]
    lines += ["", "</details>", "<!-- /bench:preoom-operator -->"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
