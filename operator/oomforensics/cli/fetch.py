"""`oomforensics fetch`: an investigation's snapshots from its archive to a local folder.

    oomforensics fetch NS/NAME [--pod P] [--container C] [--run N | --oom K] [--last K]
    oomforensics fetch --archive URL --path NS/NAME[/POD[/POD-UID[/CONTAINER[/run-N]]]] ...

With NS/NAME the archive and its credentials come from the MemoryInvestigation, read with
the user's own kube credentials (the Secret of spec.storage.secretRef too). With --archive the
cluster is not asked at all (the custom resource may be gone): the credentials come from the
environment, as obstore reads them (AWS_*, GOOGLE_*, AZURE_*).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oomforensics.archive.store import Archive, ArchiveError, SnapshotNotFound
from oomforensics.cli.download import (
    FetchStats,
    Progress,
    fetch_run_records,
    fetch_snapshots,
    local_folder,
    read_manifests,
    run_in_one_line,
)
from oomforensics.cli.errors import UsageError
from oomforensics.cli.kube import (
    StorageSource,
    connect,
    get_investigation,
    parse_options,
    parse_ref,
    resolve_storage,
)
from oomforensics.cli.selection import (
    Filters,
    Pair,
    Scope,
    by_run,
    ending_words,
    incarnation,
    kills_from_status,
    owns,
    pairs,
    parse_archive_path,
    pick_kill,
    select,
)
from oomforensics.triggers.end_of_run import EXIT_RECORD, OOM_RECORD, EndOfRun, InvalidEndOfRun
from oomforensics.triggers.model import ContainerRun

DEFAULT_OUT = Path("oomforensics-snapshots")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "fetch",
        help="download an investigation's snapshots, verified, into a local folder",
        description=(
            "Download snapshots into DIR in the archive's layout, check every file against "
            "the sha256 in its manifest, skip files already there and verified, and print the "
            "go tool pprof and oomforensics diff commands for the baseline and the pre-OOM "
            "(or latest) snapshot. NS/NAME reads the MemoryInvestigation with your kube "
            "credentials; --archive reads the archive alone, with credentials from the "
            "environment (AWS_*, GOOGLE_*, AZURE_*)."
        ),
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="NS/NAME",
        help="the MemoryInvestigation (a bare NAME: the current context's namespace)",
    )
    add_storage_arguments(parser)
    parser.add_argument(
        "--path",
        metavar="PREFIX",
        help="with --archive: NS/NAME[/POD[/POD-UID[/CONTAINER[/run-N]]]] below the archive URL",
    )
    parser.add_argument(
        "--pod", metavar="P", help="only the snapshots of pods of this name (every incarnation)"
    )
    parser.add_argument("--container", metavar="C", help="only this container's snapshots")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--run",
        dest="run_number",
        type=non_negative,
        metavar="N",
        help="only container run N (its restartCount)",
    )
    which.add_argument(
        "--oom",
        type=int,
        metavar="K",
        help="the run of the K-th OOM kill (0 first, -1 last), up to its pre-OOM snapshot",
    )
    parser.add_argument(
        "--last",
        type=positive,
        metavar="K",
        help="only the K newest snapshots of each run (its baseline is always fetched too)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where to put them (default: ./{DEFAULT_OUT})",
    )
    parser.set_defaults(run=run)


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive",
        metavar="URL",
        help="read this archive (s3://, gs://, az://, file://) instead of asking the cluster",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="store option, e.g. endpoint=http://minio:9000 or region=eu-west-1 (repeatable)",
    )


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


@dataclass(frozen=True, slots=True)
class Request:
    """What to fetch, from the command line (checked, no I/O)."""

    scope: Scope | None  # archive mode: where; None: ask the cluster about `target`
    target: str | None
    archive: str | None
    options: dict[str, str]
    filters: Filters
    out: Path


def request_of(args: argparse.Namespace) -> Request:
    options = parse_options(args.option)
    if args.path is not None and args.archive is None:
        raise UsageError("--path names a folder of an archive: give --archive URL too")
    if args.archive is not None:
        if args.path is not None and args.target is not None:
            raise UsageError("give NS/NAME or --path, not both")
        path = args.path if args.path is not None else args.target
        if path is None:
            raise UsageError("--archive needs --path NS/NAME[/POD[/POD-UID[/CONTAINER[/run-N]]]]")
        if args.path is None:
            ref = parse_ref(path)  # NS/NAME, as without --archive
            path = f"{ref.namespace}/{ref.name}"
        scope: Scope | None = parse_archive_path(path)
    else:
        if args.target is None:
            raise UsageError("name the investigation (NS/NAME), or give --archive URL --path ...")
        parse_ref(args.target, "default")  # a malformed name fails before the cluster is asked
        scope = None
    filters = Filters(args.pod, args.container, args.run_number, args.oom, args.last)
    return Request(scope, args.target, args.archive, options, filters, args.out)


def run(args: argparse.Namespace) -> int:
    request = request_of(args)
    stats, lines = run_in_one_line(fetch(request, Progress()))
    print(stats.summary(request.out))
    if stats.failures:  # and no commands pointing at a snapshot that is not all there
        first = stats.failures[0]
        more = f" (and {len(stats.failures) - 1} more)" if len(stats.failures) > 1 else ""
        raise ArchiveError(f"{first}{more}; the file was not saved: the archive copy is damaged")
    for line in lines:
        print(line)
    return 0


@dataclass(frozen=True, slots=True)
class Located:
    """An investigation's archive and what is known about its OOM kills."""

    archive: Archive
    scope: Scope
    kills: list[EndOfRun] | None  # None: read them from the archive's oom.json files
    source: StorageSource | None
    others: list[EndOfRun] | None = None  # the other ends (status.otherTerminations)


async def locate(request: Request) -> Located:
    if request.scope is not None:
        assert request.archive is not None
        archive = Archive.from_url(request.archive, options=request.options or None)
        return Located(archive, request.scope, None, None)
    assert request.target is not None
    kube = connect()
    try:
        ref = parse_ref(request.target, kube.namespace)
        body = await get_investigation(kube, ref)
        source = await resolve_storage(kube, ref, body, request.options)
    finally:
        await kube.aclose()
    archive = Archive.from_url(
        source.url, credentials=source.credentials, options=source.options or None
    )
    status = body.get("status") or {}
    kills = kills_from_status(status, ref.namespace)
    others = kills_from_status(status, ref.namespace, "otherTerminations")
    return Located(archive, Scope(ref.namespace, ref.name), kills, source, others)


async def archive_kills(
    archive: Archive, investigation: str, runs: Sequence[ContainerRun]
) -> list[EndOfRun]:
    """The OOM kills recorded in the archive (`oom.json` next to a run's snapshots)."""
    return await _run_records(archive, investigation, runs, OOM_RECORD)


async def archive_others(
    archive: Archive, investigation: str, runs: Sequence[ContainerRun]
) -> list[EndOfRun]:
    """The other ends recorded in the archive (`exit.json`: a SIGKILL from outside, an
    eviction, a SIGTERM, a process's own exit)."""
    return await _run_records(archive, investigation, runs, EXIT_RECORD)


async def _run_records(
    archive: Archive, investigation: str, runs: Sequence[ContainerRun], name: str
) -> list[EndOfRun]:
    async def one(run: ContainerRun) -> EndOfRun | None:
        try:
            record = EndOfRun.from_bytes(await archive.read_run_file(investigation, run, name))
        except (SnapshotNotFound, InvalidEndOfRun):
            return None
        return record if record.oom_killed is (name == OOM_RECORD) else None

    found = await asyncio.gather(*(one(r) for r in runs))
    return sorted((k for k in found if k is not None), key=lambda k: k.time)


async def fetch(request: Request, progress: Progress) -> tuple[FetchStats, list[str]]:
    located = await locate(request)
    archive, scope = located.archive, located.scope
    keys = await archive.list_snapshots(
        scope.namespace,
        scope.investigation,
        scope.pod,
        scope.container,
        scope.run,
        pod_uid=scope.pod_uid,
    )
    where = f"{scope} in {archive.url}"
    if not keys:
        raise UsageError(f"no snapshots yet of {where}")
    kills, others = located.kills, located.others
    if kills is None:
        kills = await archive_kills(archive, scope.investigation, list(by_run(keys)))
    if others is None:
        others = await archive_others(archive, scope.investigation, list(by_run(keys)))
    kill = (
        pick_kill(kills, request.filters.oom, str(scope))
        if request.filters.oom is not None
        else None
    )
    selected = select(keys, request.filters, kill)
    if not selected:
        raise UsageError(f"no snapshots of {where} match {describe(request.filters)}")
    manifests = await read_manifests(archive, selected)
    stats = await fetch_snapshots(archive, manifests, request.out, progress)
    await fetch_run_records(archive, selected, request.out)
    return stats, suggestions(request.out, pairs(selected, kills), [*kills, *others])


def describe(filters: Filters) -> str:
    parts = [
        f"--{name} {value}"
        for name, value in (
            ("pod", filters.pod),
            ("container", filters.container),
            ("run", filters.run),
            ("oom", filters.oom),
        )
        if value is not None
    ]
    return " ".join(parts) or "the filters"


def suggestions(out: Path, found: Sequence[Pair], ends: Sequence[EndOfRun] = ()) -> list[str]:
    """The commands that compare each run's baseline with its pre-OOM (or latest) snapshot,
    with how the run ended when that is known (and how sure the operator is)."""
    lines: list[str] = []
    for pair in found:
        base, new = local_folder(out, pair.base), local_folder(out, pair.new)
        what = "pre-OOM" if pair.pre_oom else "latest"
        end = next((e for e in ends if owns(e, pair.base)), None)
        lines += [
            "",
            f"{incarnation(pair.run, [pair.base])}, container {pair.run.container} "
            f"run {pair.run.restart_count}: baseline vs {what}",
            *([f"  ended: {ending_words(end)}"] if end is not None else []),
            "  go tool pprof -diff_base "
            f"{shlex.quote(str(base / 'heap.pb.gz'))} {shlex.quote(str(new / 'heap.pb.gz'))}",
            f"  oomforensics diff {shlex.quote(str(base))} {shlex.quote(str(new))}",
        ]
    return lines
