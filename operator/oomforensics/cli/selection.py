"""Which snapshots `fetch` takes and which pair it suggests comparing (pure: no I/O).

A container run's first snapshot is its baseline; its last before an OOM kill is the pre-OOM
snapshot the operator recorded (status.oomKills[].preOomSnapshot, or `oom.json` in the run's
folder of the archive). Comparing the two is the question after a kill: what grew.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomforensics.archive.layout import (
    InvalidSnapshotKey,
    SnapshotKey,
    check_segment,
    parse_run_segment,
)
from oomforensics.cli.errors import UsageError
from oomforensics.triggers.attribution import Attribution
from oomforensics.triggers.end_of_run import Ending, EndOfRun
from oomforensics.triggers.model import ContainerRun


def owns(kill: EndOfRun, key: SnapshotKey) -> bool:
    """The snapshot is of the killed run (a run without a known uid: any incarnation)."""
    run = kill.run
    if run.pod_uid and run.pod_uid != key.pod_uid:
        return False
    return (run.pod, run.container, run.restart_count) == (key.pod, key.container, key.run)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where to look in the archive: namespace and investigation, optionally narrower."""

    namespace: str
    investigation: str
    pod: str | None = None
    pod_uid: str | None = None
    container: str | None = None
    run: int | None = None

    def __str__(self) -> str:
        parts = [self.namespace, self.investigation, self.pod, self.pod_uid, self.container]
        text = "/".join(p for p in parts if p is not None)
        return text if self.run is None else f"{text}/run-{self.run}"


def parse_archive_path(text: str) -> Scope:
    """`--path NS/NAME[/POD[/UID[/CONTAINER[/run-N]]]]`, relative to the archive URL."""
    parts = [p for p in text.strip("/").split("/") if p]
    if not 2 <= len(parts) <= 6:
        raise UsageError(
            f"--path {text!r}: expected NAMESPACE/INVESTIGATION[/POD[/POD-UID[/CONTAINER"
            "[/run-N]]]] relative to the archive URL"
        )
    try:
        for part in parts:
            check_segment(part, "path segment")
        run = parse_run_segment(parts[5]) if len(parts) == 6 else None
    except InvalidSnapshotKey as exc:
        raise UsageError(f"--path {text!r}: {exc}") from None
    padded: list[str | None] = [*parts[:5], None, None, None]
    return Scope(parts[0], parts[1], padded[2], padded[3], padded[4], run)


@dataclass(frozen=True, slots=True)
class Filters:
    pod: str | None = None
    container: str | None = None
    run: int | None = None
    oom: int | None = None  # index into the OOM kills (0 first, -1 last)
    last: int | None = None  # the newest K of each run (plus its baseline)


def pick_kill(kills: Sequence[EndOfRun], index: int, where: str) -> EndOfRun:
    if not kills:
        raise UsageError(f"{where}: no OOM kill recorded, so --oom {index} names nothing")
    if not -len(kills) <= index < len(kills):
        raise UsageError(
            f"{where}: --oom {index}: there are {len(kills)} OOM kill(s), "
            f"use 0..{len(kills) - 1} (or -1 for the last)"
        )
    return kills[index]


def by_run(keys: Iterable[SnapshotKey]) -> dict[ContainerRun, list[SnapshotKey]]:
    """Snapshots grouped by container run, each oldest first; runs by pod name, then each
    name's incarnations in the order they were first seen, then container and run."""
    ordered = sorted(keys, key=SnapshotKey.sort_key)
    first_seen: dict[str, datetime] = {}
    for key in ordered:
        first_seen.setdefault(key.pod_uid, key.captured_at)
    runs: dict[ContainerRun, list[SnapshotKey]] = {}
    for key in sorted(
        ordered, key=lambda k: (k.pod, first_seen[k.pod_uid], k.pod_uid, k.container, k.run)
    ):
        runs.setdefault(key.container_run, []).append(key)
    return runs


def incarnation(run: ContainerRun, keys: Sequence[SnapshotKey]) -> str:
    """`pod db-0 (uid 6f1c2a9e, first snapshot 2026-11-26 03:12:00 UTC)`: which pod of that
    name, for people; its first snapshot stands for its start (the baseline is taken then)."""
    first = min((k.captured_at for k in keys), default=None)
    since = f", first snapshot {first.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if first else ""
    return f"pod {run.pod} (uid {run.uid_prefix}{since})"


def select(
    keys: Sequence[SnapshotKey], filters: Filters, kill: EndOfRun | None = None
) -> list[SnapshotKey]:
    """The snapshots to fetch, oldest first; a run's baseline is always kept with it."""
    chosen = [
        k
        for k in keys
        if (filters.pod is None or k.pod == filters.pod)
        and (filters.container is None or k.container == filters.container)
        and (filters.run is None or k.run == filters.run)
        and (kill is None or owns(kill, k))
    ]
    out: list[SnapshotKey] = []
    for run_keys in by_run(chosen).values():
        if kill is not None and kill.pre_oom_snapshot:
            paths = [k.path() for k in run_keys]
            if kill.pre_oom_snapshot in paths:  # nothing of that run after its last snapshot
                run_keys = run_keys[: paths.index(kill.pre_oom_snapshot) + 1]
        if filters.last is not None and len(run_keys) > filters.last + 1:
            run_keys = [run_keys[0], *run_keys[-filters.last :]]
        out.extend(run_keys)
    return sorted(out, key=SnapshotKey.sort_key)


@dataclass(frozen=True, slots=True)
class Pair:
    """The comparison to suggest for one run: its baseline against `new`."""

    run: ContainerRun
    base: SnapshotKey
    new: SnapshotKey
    pre_oom: bool  # new is the run's pre-OOM snapshot (else its latest)


def pairs(selected: Sequence[SnapshotKey], kills: Sequence[EndOfRun]) -> list[Pair]:
    """Baseline -> pre-OOM (or latest) for each run with two snapshots or more."""
    out = []
    for run, run_keys in by_run(selected).items():
        if len(run_keys) < 2:
            continue
        pre = {k.pre_oom_snapshot for k in kills if k.pre_oom_snapshot}
        chosen = next((k for k in reversed(run_keys) if k.path() in pre), None)
        new = chosen if chosen is not None and chosen != run_keys[0] else run_keys[-1]
        out.append(Pair(run, run_keys[0], new, pre_oom=chosen is not None and new == chosen))
    return out


def kills_from_status(
    status: Mapping[str, Any], namespace: str, field: str = "oomKills"
) -> list[EndOfRun]:
    """status.oomKills[] as run records (the status holds the figures a person reads);
    `field="otherTerminations"`: the ends told apart from OOM kills."""
    kills = []
    for doc in status.get(field) or []:
        if not isinstance(doc, Mapping):
            continue
        pod, container, run = doc.get("pod"), doc.get("container"), doc.get("run")
        if not isinstance(pod, str) or not isinstance(container, str):
            continue
        if isinstance(run, bool) or not isinstance(run, int) or run < 0:
            continue
        try:
            moment = datetime.fromisoformat(str(doc.get("time") or "").replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.fromtimestamp(0, UTC)
        pre = doc.get("preOomSnapshot")
        try:  # a status written before kills were told apart has no attribution
            told = Attribution.from_json(doc) if "ending" in doc else None
        except ValueError:
            told = None
        exit_code = doc.get("exitCode")
        kills.append(
            EndOfRun(
                run=ContainerRun(namespace, pod, str(doc.get("uid") or ""), container, run),
                ending=told.ending if told is not None else Ending.OOM_KILLED,
                time=moment,
                exit_code=exit_code if isinstance(exit_code, int) else None,
                evidence=told.evidence if told is not None else "",
                pre_oom_snapshot=pre if isinstance(pre, str) and pre else None,
                attribution=told,
            )
        )
    return kills


def ending_words(end: EndOfRun) -> str:
    """How a run ended, for a line of `list` or `fetch`: 'OOM-killed 2026-11-26 03:05:00
    (ContainerLimit, confidence high)', 'Killed 2026-... (Outside, confidence high), not an
    OOM kill'."""
    when = f"{end.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    what = "OOM-killed" if end.oom_killed else end.ending.value
    told = end.attribution
    how = f" ({told.cause.value}, confidence {told.confidence.value})" if told else ""
    return f"{what} {when}{how}" + ("" if end.oom_killed else ", not an OOM kill")
