"""Which snapshots `fetch` takes and which pair it suggests comparing (pure: no I/O).

A container run's first snapshot is its baseline; its last before an OOM kill is the pre-OOM
snapshot the operator recorded (status.oomKills[].preOomSnapshot, or `oom.json` in the run's
folder of the archive). Comparing the two is the question after a kill: what grew.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oomforensics.archive.layout import (
    ContainerRun,
    InvalidSnapshotKey,
    SnapshotKey,
    check_segment,
)
from oomforensics.cli.errors import UsageError

OOM_RECORD = "oom.json"


@dataclass(frozen=True, slots=True)
class OomKill:
    """One OOM kill: which container run died, when, and its last snapshot before."""

    pod: str
    container: str
    run: int
    time: str
    pre_oom_snapshot: str | None  # the snapshot's path relative to the archive URL

    @classmethod
    def from_json(cls, doc: object) -> OomKill | None:
        """status.oomKills[] or oom.json (the same shape); None if it is not one."""
        if not isinstance(doc, Mapping):
            return None
        pod, container, run = doc.get("pod"), doc.get("container"), doc.get("run")
        if not isinstance(pod, str) or not isinstance(container, str):
            return None
        if isinstance(run, bool) or not isinstance(run, int) or run < 0:
            return None
        pre = doc.get("preOomSnapshot")
        return cls(pod, container, run, str(doc.get("time") or ""), pre or None)

    @classmethod
    def from_bytes(cls, data: bytes) -> OomKill | None:
        try:
            return cls.from_json(json.loads(data))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def owns(self, key: SnapshotKey) -> bool:
        return (key.pod, key.container, key.run) == (self.pod, self.container, self.run)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where to look in the archive: namespace and investigation, optionally narrower."""

    namespace: str
    investigation: str
    pod: str | None = None
    container: str | None = None
    run: int | None = None

    def __str__(self) -> str:
        parts = [self.namespace, self.investigation, self.pod, self.container]
        text = "/".join(p for p in parts if p is not None)
        return text if self.run is None else f"{text}/run-{self.run}"


def parse_archive_path(text: str) -> Scope:
    """`--path NS/NAME[/POD[/CONTAINER[/run-N]]]`, relative to the archive URL."""
    parts = [p for p in text.strip("/").split("/") if p]
    if not 2 <= len(parts) <= 5:
        raise UsageError(
            f"--path {text!r}: expected NAMESPACE/INVESTIGATION[/POD[/CONTAINER[/run-N]]] "
            "relative to the archive URL"
        )
    try:
        for part in parts:
            check_segment(part, "path segment")
    except InvalidSnapshotKey as exc:
        raise UsageError(f"--path {text!r}: {exc}") from None
    run: int | None = None
    if len(parts) == 5:
        number = parts[4].removeprefix("run-")
        if not parts[4].startswith("run-") or not number.isdigit():
            raise UsageError(f"--path {text!r}: the fifth segment must be run-N, e.g. run-0")
        run = int(number)
    padded: list[str | None] = [*parts[:4], None, None]
    return Scope(parts[0], parts[1], padded[2], padded[3], run)


@dataclass(frozen=True, slots=True)
class Filters:
    pod: str | None = None
    container: str | None = None
    run: int | None = None
    oom: int | None = None  # index into the OOM kills (0 first, -1 last)
    last: int | None = None  # the newest K of each run (plus its baseline)


def pick_kill(kills: Sequence[OomKill], index: int, where: str) -> OomKill:
    if not kills:
        raise UsageError(f"{where}: no OOM kill recorded, so --oom {index} names nothing")
    if not -len(kills) <= index < len(kills):
        raise UsageError(
            f"{where}: --oom {index}: there are {len(kills)} OOM kill(s), "
            f"use 0..{len(kills) - 1} (or -1 for the last)"
        )
    return kills[index]


def by_run(keys: Iterable[SnapshotKey]) -> dict[ContainerRun, list[SnapshotKey]]:
    """Snapshots grouped by container run, runs in order, each oldest first."""
    runs: dict[ContainerRun, list[SnapshotKey]] = {}
    for key in sorted(keys, key=lambda k: (k.pod, k.container, k.run, *k.sort_key())):
        runs.setdefault(key.container_run, []).append(key)
    return runs


def select(
    keys: Sequence[SnapshotKey], filters: Filters, kill: OomKill | None = None
) -> list[SnapshotKey]:
    """The snapshots to fetch, oldest first; a run's baseline is always kept with it."""
    chosen = [
        k
        for k in keys
        if (filters.pod is None or k.pod == filters.pod)
        and (filters.container is None or k.container == filters.container)
        and (filters.run is None or k.run == filters.run)
        and (kill is None or kill.owns(k))
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


def pairs(selected: Sequence[SnapshotKey], kills: Sequence[OomKill]) -> list[Pair]:
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


def kills_from_status(status: Mapping[str, Any]) -> list[OomKill]:
    found = (OomKill.from_json(doc) for doc in status.get("oomKills") or [])
    return [k for k in found if k is not None]
