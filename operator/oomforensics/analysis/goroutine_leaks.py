"""The goroutine-leak finding: goroutines whose owner's count keeps rising, or that Go's
goroutine leak profile proves leaked (bars in thresholds.py)."""

from __future__ import annotations

from collections.abc import Sequence

from oomforensics.analysis.connections import READ_LOOP, SERVE, WRITE_LOOP, blocked_on
from oomforensics.analysis.facts import Facts, difference
from oomforensics.analysis.frames import is_application
from oomforensics.analysis.model import Finding, FindingKind
from oomforensics.analysis.series import SeriesEvidence, goroutine_owner
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import Suspect
from oomforensics.analysis.thresholds import Thresholds
from oomforensics.analysis.units import format_bytes
from oomforensics.analysis.wording import rate_words, shape_words
from oomforensics.pprof.goroutines import GoroutineGroup

# With an HTTP finding, net/http's own connection goroutines are what it explains.
_CONNECTION_OWNERS = frozenset({READ_LOOP, WRITE_LOOP, SERVE})


def goroutine_leak_finding(
    facts: Facts,
    evidence: SeriesEvidence,
    new: Snapshot,
    thresholds: Thresholds,
    http: bool,
) -> tuple[Finding, list[Suspect]] | None:
    if facts.goroutines_base is None or facts.goroutines_new is None:
        return None
    delta = facts.goroutines_new - facts.goroutines_base
    proven = dict(evidence.proven_leaks or ())
    grown = [
        t
        for t in evidence.goroutines
        if t.leaking
        and t.growth >= thresholds.goroutine_min
        and not (http and t.name in _CONNECTION_OWNERS)
    ]
    if evidence.count == 2:
        bar = max(thresholds.goroutine_min, int(thresholds.goroutine_ratio * facts.goroutines_base))
        if delta < bar:
            grown = []
    proven_grown = [name for name, count in proven.items() if count >= thresholds.connection_min]
    if not grown and not proven_grown:
        return None
    names = [t.name for t in grown] + [n for n in proven_grown if n not in {t.name for t in grown}]
    groups = _largest_groups(new, names)
    stacks = difference(facts.base.stacks, facts.new.stacks)
    parts = []
    for name in names[:3]:
        track = evidence.goroutine_track(name)
        group = groups.get(name)
        words = f"{name} ({shape_words(track)})" if track is not None else name
        if group is not None:
            words += f", blocked on {blocked_on(group)}"
        if name in proven:
            words += f"; Go's goroutine leak profile proves {proven[name]} of them leaked"
        parts.append(words)
    message = (
        f"Goroutines went from {facts.goroutines_base} to {facts.goroutines_new} "
        f"({delta:+d}{rate_words(facts, delta, unit='goroutines')}). Still growing: "
        + "; ".join(parts)
        + (f". Their stacks hold {format_bytes(stacks)} more." if stacks else ".")
    )
    others = {n: c for n, c in proven.items() if n not in names}
    if others:
        message += (
            " Go's goroutine leak profile also proves leaked: "
            + ", ".join(f"{n} ({c})" for n, c in others.items())
            + " (a goroutine stuck holding what the others wait for looks like this)."
        )
    suspects = [_goroutine_suspect(name, evidence, groups.get(name)) for name in names[:3]]
    return (
        Finding(
            FindingKind.GOROUTINE_LEAK,
            message,
            {
                "base": facts.goroutines_base,
                "new": facts.goroutines_new,
                "threshold": thresholds.goroutine_min,
                "growth": [
                    {"function": t.name, "count": t.growth, "shape": t.shape.value}
                    for t in grown[:10]
                ],
                "stackBytes": stacks,
                "provenLeaked": [{"function": n, "count": c} for n, c in proven.items()],
                "shape": grown[0].shape.value if grown else None,
            },
        ),
        suspects,
    )


def _largest_groups(snapshot: Snapshot, names: Sequence[str]) -> dict[str, GoroutineGroup]:
    wanted = set(names)
    best: dict[str, GoroutineGroup] = {}
    dumps = [d for d in (snapshot.goroutines, snapshot.goroutine_leaks) if d is not None]
    for dump in dumps:
        for group in dump.groups:
            owner = goroutine_owner(group)
            if owner in wanted and (owner not in best or group.count > best[owner].count):
                best[owner] = group
    return best


def _goroutine_suspect(
    name: str, evidence: SeriesEvidence, group: GoroutineGroup | None
) -> Suspect:
    track = evidence.goroutine_track(name)
    path: tuple[str, ...] = (name,)
    if group is not None and name in group.functions:
        path = group.functions[: group.functions.index(name) + 1]
    return Suspect(
        function=name,
        bytes=0,
        objects=0,
        path=path,
        mechanism=None if is_application(name) else f"goroutines of {name}",
        shape=track.shape.value if track is not None else None,
        goroutines=track.growth if track is not None else None,
    )
