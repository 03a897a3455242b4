"""`oomforensics report (NS/NAME | SNAPSHOT_DIR...) -o report.html`: one self-contained HTML page.

NS/NAME (not an existing path) is an investigation in the cluster: its snapshots are fetched
first, as `oomforensics fetch NS/NAME` does (verified, resumable), into the cache.

Each argument is a snapshot directory (heap.pb.gz, and optionally heap.txt, goroutine.txt,
manifest.json) or any directory holding them at any depth: a run folder, a pod, a whole
fetched investigation. Snapshots are grouped by container run (from their manifests, else
from the archive-shaped folders they sit in); the run folder's `oom.json` or `exit.json` says
how the run ended.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oomforensics import __version__
from oomforensics.analysis.snapshot import HEAP_PROFILE, Snapshot
from oomforensics.analysis.units import format_bytes
from oomforensics.archive.store import ArchiveError
from oomforensics.cli.download import Progress, run_in_one_line
from oomforensics.cli.errors import UsageError
from oomforensics.cli.files import load_snapshot
from oomforensics.cli.selection import Filters
from oomforensics.cli.watch import CACHE
from oomforensics.report import (
    DEFAULT_MIN_SHARE,
    DEFAULT_THRESHOLDS,
    Report,
    RunEvidence,
    RunIdentity,
    build_report,
    render_report,
    run_identity,
)
from oomforensics.triggers.end_of_run import RUN_RECORDS

MAX_RUN_RECORD = 1024 * 1024
FETCHED = CACHE / "fetched"  # investigations fetched for a report, in the archive layout


@dataclass(frozen=True, slots=True)
class WrittenReport:
    path: Path
    size: int  # bytes of HTML
    report: Report

    @property
    def runs(self) -> int:
        return len(self.report.runs)

    @property
    def snapshots(self) -> int:
        return self.report.snapshot_count


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report",
        help="write one self-contained HTML report: timeline, accounting, suspects, flame graph",
        description=(
            "Write an HTML report of snapshot directories: per container run, the working set "
            "against the limit over time with every snapshot and the OOM kill, the memory "
            "accounting, the top growth with call paths, the findings and verdict, and a diff "
            "flame graph of the baseline against the latest snapshot. Give snapshot "
            "directories or folders that hold them (a fetched run, pod or investigation)."
        ),
    )
    parser.add_argument(
        "snapshots",
        type=Path,
        nargs="+",
        metavar="NS/NAME|SNAPSHOT_DIR",
        help="an investigation in the cluster (fetched first), or snapshot directories",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="default report.html"
    )
    parser.add_argument(
        "--thresholds",
        type=_thresholds,
        default=DEFAULT_THRESHOLDS,
        metavar="P,P,...",
        help="capture thresholds to draw, %% of the limit (default 80,90,95; thresholds named "
        "by snapshot reasons are drawn too)",
    )
    parser.add_argument(
        "--min-frame",
        type=_share,
        default=DEFAULT_MIN_SHARE * 100,
        metavar="PERCENT",
        help="leave flame graph frames narrower than this %% of the change out (default 0.5)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    folders = [fetched(path) if is_investigation(path) else path for path in args.snapshots]
    written = write_report(
        folders, args.output, thresholds=args.thresholds, min_share=args.min_frame / 100
    )
    print(
        f"wrote {written.path} ({format_bytes(written.size)}): {written.snapshots} snapshots "
        f"in {written.runs} container run{'s' if written.runs != 1 else ''}"
    )
    return 0


def write_report(
    snapshot_dirs: Sequence[Path],
    out: Path,
    *,
    thresholds: Sequence[int] = DEFAULT_THRESHOLDS,
    min_share: float = DEFAULT_MIN_SHARE,
) -> WrittenReport:
    """Read the snapshots under `snapshot_dirs`, write the report to `out`, say what it holds.

    Raises UsageError when a path holds no snapshot, ProfileError for an unreadable one.
    """
    runs = collect_runs(find_snapshot_dirs(snapshot_dirs))
    try:
        report = build_report(
            runs, thresholds=thresholds, min_share=min_share, tool_version=__version__
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = render_report(report).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    partial.replace(out)
    return WrittenReport(out, len(data), report)


def is_investigation(path: Path) -> bool:
    """NS/NAME that is not a path here: two plain names."""
    parts = str(path).split("/")
    plain = len(parts) == 2 and all(p and not p.startswith(".") for p in parts)
    return plain and not path.exists()


def fetched(target: Path) -> Path:
    """Fetch an investigation's snapshots (and run records) into the cache; its folder."""
    # Imported here: fetching loads kopf and the kubernetes client (over a second), which a
    # report of local folders does not need.
    from oomforensics.cli.fetch import Request, fetch

    out = FETCHED
    request = Request(None, str(target), None, {}, Filters(), out)
    stats, _ = run_in_one_line(fetch(request, Progress()))
    print(stats.summary(out), file=sys.stderr)
    if stats.failures:
        raise ArchiveError(f"{stats.failures[0]}; the archive copy is damaged")
    namespace, name = str(target).split("/")
    return out / namespace / name


def find_snapshot_dirs(paths: Sequence[Path]) -> list[Path]:
    """Snapshot directories: the paths themselves, or every one found below them, in order."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        if not path.is_dir():
            raise UsageError(f"{path}: not a directory (give snapshot directories)")
        if (path / HEAP_PROFILE).is_file():
            found.setdefault(path, None)
            continue
        below = []
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            if HEAP_PROFILE in files:
                below.append(Path(folder))
                dirs.clear()  # a snapshot directory holds no other snapshots
        if not below:
            raise UsageError(f"{path}: no snapshot directory (with {HEAP_PROFILE}) in it")
        for folder_path in below:
            found.setdefault(folder_path, None)
    return list(found)


def collect_runs(snapshot_dirs: Sequence[Path]) -> list[RunEvidence]:
    """Load the snapshots and group them by container run, with their run folder's records."""
    groups: dict[RunIdentity | Path, tuple[Path, list[Snapshot]]] = {}
    for folder in snapshot_dirs:
        snapshot = load_snapshot(folder)
        identity = run_identity(snapshot, str(folder.parent))
        key: RunIdentity | Path = identity if identity.run >= 0 else folder.parent
        groups.setdefault(key, (folder.parent, []))[1].append(snapshot)
    runs = []
    for key, (parent, snapshots) in groups.items():
        identity = key if isinstance(key, RunIdentity) else run_identity(snapshots[0], str(key))
        runs.append(
            RunEvidence(
                identity=identity,
                snapshots=snapshots,
                run_files=_run_files(parent),
                folder=str(parent),
            )
        )
    return runs


def _run_files(folder: Path) -> dict[str, bytes]:
    files = {}
    for name in RUN_RECORDS:
        path = folder / name
        if path.is_file() and path.stat().st_size <= MAX_RUN_RECORD:
            files[name] = path.read_bytes()
    return files


def _thresholds(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of whole percentages") from None
    if not values or any(not 0 < v <= 100 for v in values):
        raise argparse.ArgumentTypeError("percentages must be in 1..100")
    return values


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a percentage, e.g. 0.5") from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError("must be in [0, 100)")
    return value
