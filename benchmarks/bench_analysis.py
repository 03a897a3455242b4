"""Benchmark our heap-profile analysis against `go tool pprof` on a large generated pair.

In one run:

1. correctness at scale: the functions of our diff equal, in order, the rows of
   `go tool pprof -top -unit=B -sample_index=inuse_space -nodefraction=0 -nodecount=1000000
   -diff_base BASE NEW`;
2. ours, in process: read and parse both files, then `compare()` (which runs the diff),
   timed with time.perf_counter;
3. ours, in a fresh interpreter per repeat: wall time and peak RSS;
4. `go tool pprof -top -diff_base BASE NEW`: wall time and peak RSS.

Peak RSS is the ru_maxrss that os.wait4 returns for that one child (the kernel's
getrusage(RUSAGE_CHILDREN) figure, per child rather than a maximum over all children; for
`go tool pprof` it covers the go launcher and the pprof process it waits for). The child is
forked from a small launcher interpreter, not from this process, whose resident set it would
otherwise inherit in its ru_maxrss; the launcher also times it.
Medians over --repeat runs, interleaved. The figures replace the section between
`<!-- bench:analysis -->` and `<!-- /bench:analysis -->` in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_analysis.py [--repeat N] [--cprofile [N]] [--no-write]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from genprofile import ProfilePair, ProfileParams, ensure_pair
from google.protobuf import __version__ as protobuf_version
from google.protobuf.internal import api_implementation

from oomforensics.analysis.comparison import Comparison, compare
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.pprof.profile import parse_profile

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTION = "analysis"
SAMPLE_INDEX = "inuse_space"  # pprof's default for a Go heap profile (its last sample type)
TARGET_RATIO = 0.25
TARGET_SECONDS = 1.0

_ROW = re.compile(  # one row of `go tool pprof -top -unit=B`, as tests/support/gopprof.py reads it
    r"^\s*(?P<flat>-?\d+)B?\s+\S+%\s+\S+%\s+(?P<cum>-?\d+)B?\s+\S+%\s+(?P<name>.+?)"
    r"(?: \((?:inline|partial-inline)\))?$"
)


class Row(NamedTuple):
    name: str
    flat: int
    cum: int


@dataclass(frozen=True)
class ProcessRun:
    wall_s: float
    max_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Measurements:
    parse_s: list[float] = field(default_factory=list)
    compare_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    child_wall_s: list[float] = field(default_factory=list)
    child_rss: list[int] = field(default_factory=list)
    pprof_wall_s: list[float] = field(default_factory=list)
    pprof_rss: list[int] = field(default_factory=list)
    baseline_rss: int = 0


@dataclass(frozen=True)
class Check:
    functions: int
    mismatches: tuple[str, ...]
    pprof_full_wall_s: float

    @property
    def ok(self) -> bool:
        return not self.mismatches


# --- ours -----------------------------------------------------------------------------------


def analyse(base: Path, new: Path) -> tuple[Comparison, float, float]:
    """Our pipeline end to end: (comparison, parse seconds, compare seconds)."""
    start = time.perf_counter()
    base_snapshot = Snapshot(source=str(base), profile=parse_profile(base.read_bytes()))
    new_snapshot = Snapshot(source=str(new), profile=parse_profile(new.read_bytes()))
    parsed = time.perf_counter()
    comparison = compare(base_snapshot, new_snapshot, SAMPLE_INDEX)
    done = time.perf_counter()
    return comparison, parsed - start, done - parsed


def child_main(base: Path, new: Path) -> int:
    """Run in a fresh interpreter: analyse once and report the in-process times as JSON."""
    _, parse_s, compare_s = analyse(base, new)
    print(json.dumps({"parse_s": parse_s, "compare_s": compare_s}))
    return 0


def our_rows(comparison: Comparison) -> list[Row]:
    return [Row(f.name, f.flat, f.cum) for f in comparison.heap.functions]


# --- processes and pprof --------------------------------------------------------------------


# Forks the command from a small interpreter and reports wall time and that child's ru_maxrss.
# A child forked (or vforked) straight from this process would inherit our resident set in
# its ru_maxrss: the kernel keeps the pre-exec high-water mark.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.perf_counter() - start} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: Sequence[str]) -> ProcessRun:
    """Run a command; its wall time and peak RSS (os.wait4's ru_maxrss, via _LAUNCHER)."""
    with tempfile.TemporaryDirectory() as folder:
        figures = Path(folder) / "figures"
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(figures)]
        result = subprocess.run([*launcher, *command], capture_output=True, check=False)
        wall, max_rss_kib = figures.read_text().split() if figures.exists() else ("nan", "0")
    return ProcessRun(
        wall_s=float(wall),
        max_rss_bytes=int(max_rss_kib) * 1024,  # Linux reports KiB
        returncode=result.returncode,
        stdout=result.stdout.decode("utf-8", "replace"),
        stderr=result.stderr.decode("utf-8", "replace"),
    )


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise SystemExit("go not found on PATH: run `make setup` (installs Debian's golang-go)")
    return go


def pprof_command(pair: ProfilePair, full_table: bool) -> list[str]:
    options = ["-top"]
    if full_table:
        options += ["-unit=B", f"-sample_index={SAMPLE_INDEX}"]
        options += ["-nodefraction=0", "-nodecount=1000000"]
    return [go_binary(), "tool", "pprof", *options, "-diff_base", str(pair.base), str(pair.new)]


def checked(run: ProcessRun, what: str) -> ProcessRun:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed ({run.returncode}):\n{run.stderr.strip()}")
    return run


def parse_top(output: str) -> list[Row]:
    lines = output.splitlines()
    start = next((i for i, x in enumerate(lines) if x.split()[:2] == ["flat", "flat%"]), None)
    if start is None:
        raise SystemExit(f"no top table in pprof output:\n{output[:2000]}")
    rows = []
    for line in lines[start + 1 :]:
        match = _ROW.match(line)
        if match is None:
            raise SystemExit(f"unexpected pprof line: {line!r}")
        rows.append(Row(match["name"], int(match["flat"]), int(match["cum"])))
    return rows


# --- correctness ----------------------------------------------------------------------------


def check_against_pprof(pair: ProfilePair) -> Check:
    comparison, _, _ = analyse(pair.base, pair.new)
    ours = our_rows(comparison)
    run = checked(run_measured(pprof_command(pair, full_table=True)), "go tool pprof")
    return Check(len(ours), tuple(mismatches(ours, parse_top(run.stdout))), run.wall_s)


def mismatches(ours: list[Row], theirs: list[Row], limit: int = 8) -> list[str]:
    """A readable summary of how our table differs from pprof's; empty when equal."""
    if ours == theirs:
        return []
    report = [f"ours has {len(ours)} functions, pprof {len(theirs)} rows"]
    mine, its = {r.name: r for r in ours}, {r.name: r for r in theirs}
    only_ours = [name for name in mine if name not in its]
    only_pprof = [name for name in its if name not in mine]
    differ = [(mine[n], its[n]) for n in mine if n in its and mine[n] != its[n]]
    for label, names in (("only in ours", only_ours), ("only in pprof", only_pprof)):
        if names:
            report.append(f"{len(names)} {label}: " + ", ".join(names[:limit]))
    if differ:
        report.append(f"{len(differ)} with other values (ours vs pprof flat/cum):")
        report += [f"  {a.name}: {a.flat}/{a.cum} vs {b.flat}/{b.cum}" for a, b in differ[:limit]]
    if not (only_ours or only_pprof or differ):
        first = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
        report.append(f"same rows, other order from row {first}: {ours[first]} vs {theirs[first]}")
    return report


# --- measurement ----------------------------------------------------------------------------


def measure(pair: ProfilePair, repeat: int, progress: Callable[[str], None]) -> Measurements:
    result = Measurements()
    baseline = [sys.executable, "-c", "import oomforensics.analysis.comparison"]
    result.baseline_rss = checked(run_measured(baseline), "import baseline").max_rss_bytes
    child = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(pair.base),
        str(pair.new),
    ]
    for i in range(repeat):
        gc.collect()
        _, parse_s, compare_s = analyse(pair.base, pair.new)
        result.parse_s.append(parse_s)
        result.compare_s.append(compare_s)
        result.total_s.append(parse_s + compare_s)
        ours = checked(run_measured(child), "our analysis in a child process")
        result.child_wall_s.append(ours.wall_s)
        result.child_rss.append(ours.max_rss_bytes)
        theirs = checked(run_measured(pprof_command(pair, full_table=False)), "go tool pprof")
        result.pprof_wall_s.append(theirs.wall_s)
        result.pprof_rss.append(theirs.max_rss_bytes)
        progress(
            f"  run {i + 1}/{repeat}: ours {parse_s + compare_s:.2f} s in process, "
            f"{ours.wall_s:.2f} s / {_mib(ours.max_rss_bytes)} as a process; "
            f"pprof {theirs.wall_s:.2f} s / {_mib(theirs.max_rss_bytes)}"
        )
    return result


def hotspots(pair: ProfilePair, top: int) -> str:
    """cProfile of parse + compare, sorted by tottime, plus the cyclic GC's share."""
    pauses: list[float] = []
    started: list[float] = []

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        else:
            pauses.append(time.perf_counter() - started.pop())

    gc.callbacks.append(on_gc)
    try:
        _, parse_s, compare_s = analyse(pair.base, pair.new)
    finally:
        gc.callbacks.remove(on_gc)
    profiler = cProfile.Profile()
    profiler.runcall(analyse, pair.base, pair.new)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    gc_line = (
        f"Without the profiler: parse {parse_s:.2f} s, compare {compare_s:.2f} s; "
        f"cyclic GC ran {len(pauses)} times for {sum(pauses):.2f} s of that.\n"
    )
    return gc_line + text.getvalue()


# --- reporting ------------------------------------------------------------------------------


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )


def cores() -> str:
    return f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)"


def machine_line() -> str:
    """The machine in one line, for benchmarks that do not run Go."""
    return (
        f"{cpu_model()}, {cores()} cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def machine() -> dict[str, str]:
    go = subprocess.run([go_binary(), "version"], capture_output=True, text=True, check=True)
    return {
        "cpu": cpu_model(),
        "cores": cores(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_version()} (protobuf {protobuf_version}, "
        f"{api_implementation.Type()} backend)",
        "go": go.stdout.strip().removeprefix("go version "),
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def timing_table(m: Measurements) -> list[str]:
    med = statistics.median
    pprof_s, pprof_rss = med(m.pprof_wall_s), med(m.pprof_rss)
    rows = [
        ("measure", "ours", "go tool pprof", "ours / pprof"),
        ("---", "---:", "---:", "---:"),
        (
            "**wall, in process (parse both + compare)**",
            _s(med(m.total_s)),
            _s(pprof_s),
            f"**{med(m.total_s) / pprof_s:.2f}**",
        ),
        ("&nbsp;&nbsp;parse both files", _s(med(m.parse_s)), "", ""),
        ("&nbsp;&nbsp;compare (diff included)", _s(med(m.compare_s)), "", ""),
        (
            "wall, whole process (interpreter start and imports included)",
            _s(med(m.child_wall_s)),
            _s(pprof_s),
            f"{med(m.child_wall_s) / pprof_s:.2f}",
        ),
        (
            "peak RSS, whole process",
            _mib(med(m.child_rss)),
            _mib(pprof_rss),
            f"{med(m.child_rss) / pprof_rss:.2f}",
        ),
        ("&nbsp;&nbsp;of which interpreter and imports", _mib(m.baseline_rss), "", ""),
    ]
    return ["| " + " | ".join(row) + " |" for row in rows]


def profile_table(stats: dict[str, dict[str, float]]) -> list[str]:
    labels = {
        "samples": "samples",
        "distinct_stacks": "distinct stacks",
        "locations": "locations",
        "functions": "functions",
        "mean_locations_per_sample": "mean locations per sample",
        "mean_frames_per_sample": "mean frames per sample (inlined expanded)",
        "max_locations_per_sample": "max locations per sample",
        "inlined_location_share": "locations with inlined frames",
        "gzip_bytes": "gzipped size (bytes)",
    }
    lines = ["| | base | new |", "| --- | ---: | ---: |"]
    for key, label in labels.items():
        base, new = stats["base"][key], stats["new"][key]
        lines.append(f"| {label} | {base:,} | {new:,} |")
    return lines


def spread(m: Measurements) -> str:
    return (
        f"Spread (min-max of {len(m.total_s)} runs): ours in process "
        f"{min(m.total_s):.2f}-{max(m.total_s):.2f} s, as a process "
        f"{min(m.child_wall_s):.2f}-{max(m.child_wall_s):.2f} s; pprof "
        f"{min(m.pprof_wall_s):.2f}-{max(m.pprof_wall_s):.2f} s."
    )


def verdict(m: Measurements) -> str:
    ours, pprof = statistics.median(m.total_s), statistics.median(m.pprof_wall_s)
    ratio_ok = ours <= TARGET_RATIO * pprof
    time_ok = ours < TARGET_SECONDS
    return (
        f"Targets (in process): at most {TARGET_RATIO:g} of pprof's time: "
        f"{'met' if ratio_ok else 'NOT met'} ({ours / pprof:.2f}); "
        f"under {TARGET_SECONDS:g} s: {'met' if time_ok else 'NOT met'} ({ours:.2f} s)."
    )


def section(pair: ProfilePair, check: Check, m: Measurements, repeat: int) -> str:
    info = machine()
    params = pair.stats["params"]
    correctness = (
        f"equal: all {check.functions:,} functions of our diff match pprof's rows "
        "(name, flat, cum, order)"
        if check.ok
        else "**MISMATCH**: " + "; ".join(check.mismatches)
    )
    lines = [
        f"<!-- bench:{SECTION} -->",
        "## Analysis vs go tool pprof",
        "",
        f"`.venv/bin/python benchmarks/bench_analysis.py --repeat {repeat}`, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}; "
        f"Python {info['python']}; {info['go']}.",
        "",
        "Profiles: a Go heap profile pair from `benchmarks/genprofile.py` "
        f"({', '.join(f'{k}={v}' for k, v in params.items())}), "
        f"diffed on {SAMPLE_INDEX} with -diff_base:",
        "",
        *profile_table(pair.stats),
        "",
        f"Medians of {repeat} interleaved runs. pprof: `go tool pprof -top -diff_base BASE NEW` "
        "(its default 80-row table); ours: read + `parse_profile` of both files, then "
        "`compare()`.",
        "",
        *timing_table(m),
        "",
        spread(m),
        "",
        verdict(m),
        "",
        f"Correctness against `go tool pprof -top -unit=B -sample_index={SAMPLE_INDEX} "
        f"-nodefraction=0 -nodecount=1000000` (took {check.pprof_full_wall_s:.2f} s): "
        f"{correctness}.",
        "",
        "Peak RSS: ru_maxrss from os.wait4 for that one child process, forked from a small "
        "launcher interpreter (for `go tool pprof`, the max of the go launcher and the pprof "
        "process it waits for). Process wall times are taken by that launcher around fork and "
        "wait; in-process times with time.perf_counter.",
        f"<!-- /bench:{SECTION} -->",
    ]
    return "\n".join(lines)


RESULTS_HEADER = """# Benchmark results

Each benchmark rewrites only its own section, between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`; add a new benchmark's section the same way.
"""


def update_results(path: Path, name: str, text: str) -> None:
    current = path.read_text() if path.exists() else RESULTS_HEADER
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n")


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = ProfileParams()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--samples", type=int, default=defaults.samples)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--cprofile", type=int, nargs="?", const=10, default=0, metavar="N",
        help="also print the N (default 10) hottest functions of parse + compare by tottime",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(*args.child)
    say = print
    say("Generating or loading the profile pair ...")
    pair = ensure_pair(ProfileParams(samples=args.samples, seed=args.seed))
    say(f"  {pair.base}\n  {pair.new}")
    say("Checking our diff against go tool pprof's full table ...")
    check = check_against_pprof(pair)
    say(f"  {check.functions:,} functions: " + ("equal" if check.ok else "MISMATCH"))
    for line in check.mismatches:
        say(f"  {line}")
    say(f"Timing {args.repeat} runs ...")
    measurements = measure(pair, args.repeat, say)
    say("")
    say("\n".join(timing_table(measurements)).replace("&nbsp;", " ").replace("**", ""))
    say(spread(measurements))
    say(verdict(measurements))
    if not args.no_write:
        update_results(RESULTS, SECTION, section(pair, check, measurements, args.repeat))
        say(f"Updated {RESULTS}")
    if args.cprofile:
        say("")
        say(hotspots(pair, args.cprofile))
    return 0 if check.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
