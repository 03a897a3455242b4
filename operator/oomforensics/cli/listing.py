"""`oomforensics list`: the investigations, or one investigation's snapshots by container run.

    oomforensics list [-n NS | -A]          every MemoryInvestigation: targets, snapshots, kills
    oomforensics list [-n NS] NAME          its snapshots grouped by pod incarnation and
                                            container run, from the manifests in the archive
    oomforensics list --archive URL [NS/NAME]
                                            the same from the archive alone (no cluster asked)

The custom resources are read with the user's own kube credentials (see cli/kube.py); with
--archive no kubeconfig is needed at all: the OOM kills come from the runs' `oom.json`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from oomforensics.analysis.units import format_bytes
from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.manifest import Manifest
from oomforensics.archive.store import Archive
from oomforensics.cli.download import read_manifests, run_in_one_line
from oomforensics.cli.errors import UsageError
from oomforensics.cli.fetch import add_storage_arguments, archive_kills, archive_others
from oomforensics.cli.kube import (
    Kube,
    connect,
    get_investigation,
    list_investigations,
    parse_options,
    parse_ref,
    resolve_storage,
)
from oomforensics.cli.selection import (
    by_run,
    ending_words,
    incarnation,
    kills_from_status,
    owns,
)
from oomforensics.triggers.end_of_run import EndOfRun


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "list",
        help="list investigations, or one investigation's snapshots by container run",
        description=(
            "Without NAME: the MemoryInvestigations of the namespace (or all, -A) with their "
            "targets, snapshots, OOM kills and the leading suspect. With NAME: its snapshots "
            "grouped by pod and container run (time, reason, % of limit, working set, heap in "
            "use), read from the manifests in its archive. Uses your kubeconfig, or with --archive "
            "only the archive."
        ),
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", metavar="NS", help="default: the current context's namespace"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="investigations in every namespace"
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="one investigation (or NS/NAME)")
    add_storage_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = parse_options(args.option)
    print(run_in_one_line(_list(args, options)))
    return 0


async def _list(args: argparse.Namespace, options: Mapping[str, str]) -> str:
    if args.archive is not None:
        return await _from_archive(args, options)
    kube = connect()
    try:
        if args.name is None:
            namespace = None if args.all_namespaces else (args.namespace or kube.namespace)
            items = await list_investigations(kube, namespace)
            if not items:
                where = f"in namespace {namespace}" if namespace else "in any namespace"
                return f"no MemoryInvestigations {where}"
            return render_table(items, all_namespaces=namespace is None)
        return await _one(kube, args, options)
    finally:
        await kube.aclose()


async def _one(kube: Kube, args: argparse.Namespace, options: Mapping[str, str]) -> str:
    ref = parse_ref(args.name, args.namespace or kube.namespace)
    body = await get_investigation(kube, ref)
    if args.archive is not None:
        archive = Archive.from_url(args.archive, options=dict(options) or None)
    else:
        source = await resolve_storage(kube, ref, body, options)
        archive = Archive.from_url(
            source.url, credentials=source.credentials, options=source.options or None
        )
    keys = await archive.list_snapshots(ref.namespace, ref.name)
    manifests = await read_manifests(archive, keys)
    status = body.get("status") or {}
    kills = kills_from_status(status, ref.namespace)
    others = kills_from_status(status, ref.namespace, "otherTerminations")
    return render_investigation(str(ref), status, archive.url, manifests, kills, others)


async def _from_archive(args: argparse.Namespace, options: Mapping[str, str]) -> str:
    """`list --archive URL [NS/NAME]`: what the archive holds, the cluster not asked."""
    archive = Archive.from_url(args.archive, options=dict(options) or None)
    if args.name is None:
        keys = await archive.list_snapshots(args.namespace)
        if not keys:
            return f"no snapshots in {archive.url}"
        return render_archive_table(archive.url, keys)
    ref = parse_ref(args.name, args.namespace)
    keys = await archive.list_snapshots(ref.namespace, ref.name)
    if not keys:
        raise UsageError(f"no snapshots of {ref} in {archive.url}")
    manifests = await read_manifests(archive, keys)
    kills = await archive_kills(archive, ref.name, list(by_run(keys)))
    others = await archive_others(archive, ref.name, list(by_run(keys)))
    return render_investigation(str(ref), {}, archive.url, manifests, kills, others)


# -- rendering (pure) --


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _ready(status: Mapping[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown")
    return "Unknown"


def columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def render_table(items: Sequence[Mapping[str, Any]], *, all_namespaces: bool) -> str:
    """One row per investigation, like `kubectl get mi` with the numbers that matter here."""
    header = ["NAME", "TARGETS", "SNAPSHOTS", "OOMKILLS", "SUSPECT", "HEAP GROWTH", "READY"]
    rows = [["NAMESPACE", *header] if all_namespaces else header]
    ordered = sorted(
        items,
        key=lambda i: (
            str((i.get("metadata") or {}).get("namespace")),
            str((i.get("metadata") or {}).get("name")),
        ),
    )
    for item in ordered:
        meta = item.get("metadata") or {}
        status = item.get("status") or {}
        summary = status.get("summary") or {}
        row = [
            _cell(meta.get("name")),
            _cell(status.get("targetCount")),
            _cell((status.get("snapshots") or {}).get("count")),
            _cell(status.get("oomKillCount")),
            _cell(summary.get("suspect")),
            _cell(summary.get("heapGrowth")),
            _ready(status),
        ]
        rows.append([_cell(meta.get("namespace")), *row] if all_namespaces else row)
    return columns(rows)


def _percent(manifest: Manifest) -> str:
    if not manifest.limit_bytes:
        return "-"
    return f"{100 * manifest.working_set_bytes / manifest.limit_bytes:.1f}%"


def render_archive_table(archive_url: str, keys: Sequence[SnapshotKey]) -> str:
    """One row per investigation found in an archive: its pods, runs and snapshots."""
    found: dict[tuple[str, str], list[SnapshotKey]] = {}
    for key in keys:
        found.setdefault((key.namespace, key.investigation), []).append(key)
    rows = [["NAMESPACE", "NAME", "PODS", "RUNS", "SNAPSHOTS", "LAST SNAPSHOT"]]
    for (namespace, name), members in sorted(found.items()):
        last = max(k.captured_at for k in members).astimezone(UTC)
        rows.append(
            [
                namespace,
                name,
                str(len({k.pod_uid for k in members})),
                str(len(by_run(members))),
                str(len(members)),
                f"{last:%Y-%m-%d %H:%M:%S}",
            ]
        )
    return f"archive {archive_url}\n" + columns(rows)


def render_investigation(
    name: str,
    status: Mapping[str, Any],
    archive_url: str,
    manifests: Sequence[Manifest],
    kills: Sequence[EndOfRun],
    others: Sequence[EndOfRun] = (),
) -> str:
    """The investigation's story so far and its snapshots, grouped by pod incarnation and
    container run (a pod recreated under the same name is listed apart, by uid). A run's
    line says how it ended: an OOM kill, or an end told apart from one (`others`), with the
    attribution's cause and confidence when the operator recorded one."""
    summary = status.get("summary") or {}
    lines = [
        f"investigation {name}",
        f"  archive    {archive_url}",
        f"  targets    {_cell(status.get('targetCount'))}",
        f"  snapshots  {len(manifests)}",
        f"  OOM kills  {len(kills)}",
    ]
    if others:
        lines.append(f"  other ends {len(others)} (not OOM kills)")
    if summary.get("suspect"):
        lines.append(
            f"  suspect    {summary['suspect']} (heap {_cell(summary.get('heapGrowth'))}, "
            f"{_cell(summary.get('classification'))})"
        )
    by_key = {m.key: m for m in manifests}
    pre_oom = {k.pre_oom_snapshot for k in kills if k.pre_oom_snapshot}
    runs = by_run(by_key)
    shown = None
    for run, keys in runs.items():
        if run.pod_uid != shown:
            shown = run.pod_uid
            incarnation_keys = [k for r, ks in runs.items() if r.pod_uid == shown for k in ks]
            lines += ["", incarnation(run, incarnation_keys)]
        end = next((k for k in [*kills, *others] if owns(k, keys[0])), None)
        ending = f", {ending_words(end)}" if end else ""
        lines.append(f"  container {run.container}, run {run.restart_count}{ending}")
        if end is not None and end.attribution is not None:
            lines.append(f"    {end.attribution.evidence}")
        rows = [["    TIME", "REASON", "% OF LIMIT", "WORKING SET", "HEAP IN USE", ""]]
        for key in keys:
            manifest = by_key[key]
            heap = manifest.heap_bytes
            rows.append(
                [
                    "    " + key.captured_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    key.reason,
                    _percent(manifest),
                    format_bytes(manifest.working_set_bytes),
                    format_bytes(heap) if heap is not None else "-",
                    "pre-OOM" if key.path() in pre_oom else "",
                ]
            )
        lines.append(columns(rows))
    if not manifests:
        lines += ["", "no snapshots yet"]
    return "\n".join(lines)
