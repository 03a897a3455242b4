"""Benchmark the `oomforensics` command as a user runs it: whole processes, start-up included.

In one run, interleaved, medians over --repeat runs:

1. `oomforensics diff --json BASE NEW` on the generated 100,000-sample pair
   (benchmarks/genprofile.py, as bench_analysis.py uses) against
   `go tool pprof -top -diff_base BASE NEW` on the same files;
2. `oomforensics --version`;
3. `oomforensics diff` of two small real profiles (2 KB, from the shared corpus when present).

Before timing, the command's functions are checked against pprof's full table at pprof's
default sample index. Wall and CPU times (user + system, from os.wait4) are taken by a small
launcher around fork and wait; the load average before and after each run is recorded:
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
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_analysis import (
    RESULTS,
    Row,
    go_binary,
    machine,
    mismatches,
    parse_top,
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


# Forks the command from a small interpreter (so the child's figures are its own) and reports
# its wall time and the CPU time (user + system) os.wait4 gives for it. On a shared machine the
# wall time includes waiting for a core; the CPU time does not.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.perf_counter() - start} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    stdout: str


def run_measured(command: Sequence[str], what: str) -> Run:
    with tempfile.TemporaryDirectory() as folder:
        figures = Path(folder) / "figures"
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(figures)]
        result = subprocess.run([*launcher, *command], capture_output=True, check=False)
        if result.returncode != 0 or not figures.exists():
            raise SystemExit(f"{what} failed ({result.returncode}): {result.stderr.decode()}")
        wall, cpu = figures.read_text().split()
    return Run(float(wall), float(cpu), result.stdout.decode("utf-8", "surrogateescape"))


# The time of each phase of `diff --json`, in a fresh interpreter (the command's own steps):
# where the whole process's time goes. Wall time (time.perf_counter): the command decodes the
# new profile in a forked child while it decodes the base, and the child's CPU time is not
# this process's; the CPU time of this process (time.process_time) is given beside it.
_PHASES = """
import json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as cli/diff.py starts numpy
wall, cpu = time.perf_counter, time.process_time
marks = [("start", wall(), cpu())]
from pathlib import Path
from oomforensics.cli.diff import json_text, load_snapshots
marks.append(("import", wall(), cpu()))
snapshots = load_snapshots([Path(p) for p in sys.argv[1:3]])
marks.append(("read and decode both profiles", wall(), cpu()))
import oomforensics.analysis.comparison as comparison
marks.append(("import the analysis", wall(), cpu()))
table = []
diff_profiles = comparison.diff_profiles
def timed(*args, **kwargs):
    begun = wall()
    try:
        return diff_profiles(*args, **kwargs)
    finally:
        table.append(wall() - begun)
comparison.diff_profiles = timed  # the table inside compare_series, timed in place
result = comparison.compare_series(snapshots, None)
marks.append(("compare_series", wall(), cpu()))
text = json_text(comparison.comparison_json(result, function_rows=False), result.heap.functions, {})
marks.append(("JSON", wall(), cpu()))
phases = {
    name: [w - w0, c - c0] for (_, w0, c0), (name, w, c) in zip(marks, marks[1:])
}
phases["of which the pprof table (diff_profiles)"] = [sum(table), None]
print(json.dumps(phases))
"""


def phases(pair: ProfilePair) -> dict[str, list[float | None]]:
    """Per phase: [wall seconds, CPU seconds of the command's own process (None: not taken)]."""
    run = run_measured([sys.executable, "-c", _PHASES, str(pair.base), str(pair.new)], "phases")
    result: dict[str, list[float | None]] = json.loads(run.stdout)
    return result


@dataclass
class Timings:
    diff_s: list[float] = field(default_factory=list)
    pprof_s: list[float] = field(default_factory=list)
    version_s: list[float] = field(default_factory=list)
    small_s: list[float] = field(default_factory=list)
    diff_cpu_s: list[float] = field(default_factory=list)
    pprof_cpu_s: list[float] = field(default_factory=list)
    version_cpu_s: list[float] = field(default_factory=list)
    small_cpu_s: list[float] = field(default_factory=list)
    load: list[tuple[float, float, float]] = field(default_factory=list)
    phases: dict[str, list[float | None]] = field(default_factory=dict)

    def ratio(self) -> float:
        return statistics.median(self.diff_s) / statistics.median(self.pprof_s)


def diff_command(base: Path, new: Path, *options: str) -> list[str]:
    return [str(SCRIPT), "diff", *options, str(base), str(new)]


def pprof_command(pair: ProfilePair, *options: str) -> list[str]:
    pprof = [go_binary(), "tool", "pprof", "-top", *options]
    return [*pprof, "-diff_base", str(pair.base), str(pair.new)]


def check(pair: ProfilePair) -> tuple[int, list[str]]:
    """Our functions against pprof's full table, both at pprof's default sample index."""
    ours = json.loads(run_measured(diff_command(pair.base, pair.new, "--json"), "our diff").stdout)
    full = ["-unit=B", "-nodefraction=0", "-nodecount=1000000"]
    theirs = parse_top(run_measured(pprof_command(pair, *full), "go tool pprof").stdout)
    rows = [Row(f["name"], f["flat"], f["cum"]) for f in ours["functions"]]
    return len(rows), mismatches(rows, theirs)


def small_pair() -> tuple[Path, Path] | None:
    paths = tuple(CORPUS / name for name in SMALL)
    return (paths[0], paths[1]) if all(p.is_file() for p in paths) else None


def measure(pair: ProfilePair, repeat: int) -> Timings:
    t = Timings()
    small = small_pair()
    t.load.append(os.getloadavg())
    t.phases = phases(pair)
    for i in range(repeat):
        ours = run_measured(diff_command(pair.base, pair.new, "--json"), "our diff")
        theirs = run_measured(pprof_command(pair), "go tool pprof")
        version = run_measured([str(SCRIPT), "--version"], "--version")
        t.diff_s.append(ours.wall_s)
        t.pprof_s.append(theirs.wall_s)
        t.version_s.append(version.wall_s)
        t.diff_cpu_s.append(ours.cpu_s)
        t.pprof_cpu_s.append(theirs.cpu_s)
        t.version_cpu_s.append(version.cpu_s)
        if small is not None:
            tiny = run_measured(diff_command(*small), "small diff")
            t.small_s.append(tiny.wall_s)
            t.small_cpu_s.append(tiny.cpu_s)
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
        ("`oomforensics diff --json BASE NEW` (100k-sample pair)", t.diff_s, t.diff_cpu_s),
        ("`go tool pprof -top -diff_base BASE NEW`", t.pprof_s, t.pprof_cpu_s),
        ("`oomforensics --version`", t.version_s, t.version_cpu_s),
    ]
    if t.small_s:
        small = "`oomforensics diff` of two 2 KB corpus heap profiles"
        rows.append((small, t.small_s, t.small_cpu_s))
    table = [
        "| process | wall, median | wall, min .. max | CPU (user + sys), median |",
        "| --- | ---: | ---: | ---: |",
    ]
    table += [
        f"| {name} | {med(v):.3f} s | {spread(v)} s | {med(cpu):.3f} s |" for name, v, cpu in rows
    ]
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
            f"Ratio diff / pprof: {t.ratio():.3f} in wall time, "
            f"{med(t.diff_cpu_s) / med(t.pprof_cpu_s):.3f} in CPU time.",
            "",
            *verdict(t),
            "",
            "Where the diff's time goes (one fresh interpreter before the timed runs; wall "
            "time, and in brackets the CPU time of the command's own process, without its "
            "child's): "
            + ", ".join(_phase(name, figures) for name, figures in t.phases.items())
            + ".",
            "",
            f"Correctness against `go tool pprof -top -unit=B -nodefraction=0 "
            f"-nodecount=1000000`: {correctness}.",
            f"<!-- /bench:{SECTION} -->",
        ]
    )


def _phase(name: str, figures: list[float | None]) -> str:
    wall, cpu = figures
    return f"{name} {wall:.3f} s" + (f" ({cpu:.3f} s)" if cpu is not None else "")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    return parser.parse_args(argv)


def compile_package() -> None:
    """Bytecode for every module of the package, as an installed package has: with
    PYTHONDONTWRITEBYTECODE set (as on these machines) an editable install would compile the
    modules changed since their last bytecode at every start (25 ms for eight of them)."""
    package = HERE.parent / "operator" / "oomforensics"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pair = ensure_pair(ProfileParams())
    print(f"Pair: {pair.base.parent}")
    print("Checking our diff against go tool pprof's full table ...")
    functions, problems = check(pair)
    print(f"  {functions:,} functions: " + ("equal" if not problems else "MISMATCH"))
    for line in problems:
        print(f"  {line}")
    compile_package()
    print(f"Timing {args.repeat} runs ...")
    timings = measure(pair, args.repeat)
    print("\n".join(verdict(timings)))
    if not args.no_write:
        update_results(RESULTS, SECTION, section(pair, functions, problems, timings, args.repeat))
        print(f"Updated {RESULTS}")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
