"""Benchmark the `oomforensics` command as a user runs it: whole processes, start-up included.

In one run, interleaved, medians over --repeat runs:

1. `oomforensics diff --json BASE NEW` on the generated 100,000-sample pair
   (benchmarks/genprofile.py, as bench_analysis.py uses) against
   `go tool pprof -top -diff_base BASE NEW` on the same files;
2. `oomforensics --version`;
3. `oomforensics diff` of two small real profiles (2 KB, from the shared corpus when present).

Before timing, the command's functions are checked against pprof's full table at pprof's
default sample index. Wall times are taken by a small launcher around fork and wait
(bench_analysis.run_measured), the machine's load average before and after is recorded:
other work on these shared machines shows in the figures. Targets: the diff at most a tenth
of pprof's time and under one second; --version under 0.3 s. The figures replace the section
between `<!-- bench:cli -->` and `<!-- /bench:cli -->` in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_cli.py [--repeat N] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_analysis import (
    RESULTS,
    Row,
    checked,
    go_binary,
    machine,
    mismatches,
    parse_top,
    run_measured,
    update_results,
)
from genprofile import ProfilePair, ProfileParams, ensure_pair

HERE = Path(__file__).resolve().parent
SECTION = "cli"
SCRIPT = Path(sys.executable).parent / "oomforensics"
CORPUS = HERE.parent.parent / "shared" / "pprof-corpus"
SMALL = ("ddtrace.heap.before.pprof", "ddtrace.heap.after.pprof")
TARGET_RATIO = 0.1
TARGET_SECONDS = 1.0
TARGET_VERSION_SECONDS = 0.3


@dataclass
class Timings:
    diff_s: list[float] = field(default_factory=list)
    pprof_s: list[float] = field(default_factory=list)
    version_s: list[float] = field(default_factory=list)
    small_s: list[float] = field(default_factory=list)
    load: list[tuple[float, float, float]] = field(default_factory=list)

    def ratio(self) -> float:
        return statistics.median(self.diff_s) / statistics.median(self.pprof_s)


def diff_command(base: Path, new: Path, *options: str) -> list[str]:
    return [str(SCRIPT), "diff", *options, str(base), str(new)]


def pprof_command(pair: ProfilePair, *options: str) -> list[str]:
    pprof = [go_binary(), "tool", "pprof", "-top", *options]
    return [*pprof, "-diff_base", str(pair.base), str(pair.new)]


def check(pair: ProfilePair) -> tuple[int, list[str]]:
    """Our functions against pprof's full table, both at pprof's default sample index."""
    ours_run = checked(run_measured(diff_command(pair.base, pair.new, "--json")), "our diff")
    ours = json.loads(ours_run.stdout)
    full = ["-unit=B", "-nodefraction=0", "-nodecount=1000000"]
    theirs = parse_top(checked(run_measured(pprof_command(pair, *full)), "pprof").stdout)
    rows = [Row(f["name"], f["flat"], f["cum"]) for f in ours["functions"]]
    return len(rows), mismatches(rows, theirs)


def small_pair() -> tuple[Path, Path] | None:
    paths = tuple(CORPUS / name for name in SMALL)
    return (paths[0], paths[1]) if all(p.is_file() for p in paths) else None


def measure(pair: ProfilePair, repeat: int) -> Timings:
    t = Timings()
    small = small_pair()
    t.load.append(os.getloadavg())
    for i in range(repeat):
        ours = checked(run_measured(diff_command(pair.base, pair.new, "--json")), "our diff")
        theirs = checked(run_measured(pprof_command(pair)), "go tool pprof")
        version = checked(run_measured([str(SCRIPT), "--version"]), "--version")
        t.diff_s.append(ours.wall_s)
        t.pprof_s.append(theirs.wall_s)
        t.version_s.append(version.wall_s)
        if small is not None:
            t.small_s.append(checked(run_measured(diff_command(*small)), "small diff").wall_s)
        t.load.append(os.getloadavg())
        print(
            f"  run {i + 1}/{repeat}: diff --json {ours.wall_s:.2f} s, "
            f"pprof {theirs.wall_s:.2f} s, "
            f"--version {version.wall_s:.3f} s, load {t.load[-1][0]:.2f}"
        )
    return t


def verdict(t: Timings) -> list[str]:
    diff, version = statistics.median(t.diff_s), statistics.median(t.version_s)
    met = {True: "met", False: "NOT met"}
    return [
        f"- diff at most {TARGET_RATIO:g} of pprof's time: {met[t.ratio() <= TARGET_RATIO]} "
        f"({t.ratio():.3f})",
        f"- diff under {TARGET_SECONDS:g} s: {met[diff < TARGET_SECONDS]} ({diff:.2f} s)",
        f"- --version under {TARGET_VERSION_SECONDS:g} s: "
        f"{met[version < TARGET_VERSION_SECONDS]} ({version:.3f} s)",
    ]


def section(pair: ProfilePair, functions: int, problems: list[str], t: Timings, repeat: int) -> str:
    info = machine()
    med = statistics.median

    def spread(values: list[float]) -> str:
        return f"{min(values):.3f} .. {max(values):.3f}"

    loads = [f"{a:.2f}" for a, _, _ in t.load]
    rows = [
        ("`oomforensics diff --json BASE NEW` (100k-sample pair)", t.diff_s),
        ("`go tool pprof -top -diff_base BASE NEW`", t.pprof_s),
        ("`oomforensics --version`", t.version_s),
    ]
    if t.small_s:
        rows.append(("`oomforensics diff` of two 2 KB corpus heap profiles", t.small_s))
    table = ["| process | median | min .. max |", "| --- | ---: | ---: |"]
    table += [f"| {name} | {med(v):.3f} s | {spread(v)} s |" for name, v in rows]
    correctness = (
        f"equal: all {functions:,} functions match pprof's rows (name, flat, cum, order)"
        if not problems
        else "**MISMATCH**: " + "; ".join(problems)
    )
    return "\n".join(
        [
            f"<!-- bench:{SECTION} -->",
            "## The CLI as a whole process vs go tool pprof",
            "",
            f"`.venv/bin/python benchmarks/bench_cli.py --repeat {repeat}`, "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}; "
            f"Python {info['python']}; {info['go']}. Load average (1 min) before and after "
            f"each run: {', '.join(loads)} (the machine is shared: other work shows here).",
            "",
            f"Profiles: the generated pair of bench_analysis ({pair.base.parent.name}); "
            "pprof's default sample index (inuse_space). Wall times of whole processes, "
            f"start-up included; medians of {repeat} interleaved runs.",
            "",
            *table,
            "",
            f"Ratio diff / pprof: {t.ratio():.3f}.",
            "",
            *verdict(t),
            "",
            f"Correctness against `go tool pprof -top -unit=B -nodefraction=0 "
            f"-nodecount=1000000`: {correctness}.",
            f"<!-- /bench:{SECTION} -->",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pair = ensure_pair(ProfileParams())
    print(f"Pair: {pair.base.parent}")
    print("Checking our diff against go tool pprof's full table ...")
    functions, problems = check(pair)
    print(f"  {functions:,} functions: " + ("equal" if not problems else "MISMATCH"))
    for line in problems:
        print(f"  {line}")
    print(f"Timing {args.repeat} runs ...")
    timings = measure(pair, args.repeat)
    print("\n".join(verdict(timings)))
    if not args.no_write:
        update_results(RESULTS, SECTION, section(pair, functions, problems, timings, args.repeat))
        print(f"Updated {RESULTS}")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
