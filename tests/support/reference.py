"""The straightforward dict-of-tuples implementations that the vectorised analysis replaced,
kept verbatim as test oracles: every stack a tuple of names, every sum a Python int.

They take `Profile.stacks` (stack -> summed values) where the originals took a Profile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from oomforensics.analysis.connection_findings import CLIENT_FRAME, TRANSPORT_FRAMES
from oomforensics.analysis.connections import READ_LOOP, WRITE_LOOP
from oomforensics.analysis.facts import Facts
from oomforensics.analysis.frames import entry_frame, first_application_frame, mechanism
from oomforensics.analysis.model import Finding
from oomforensics.analysis.suspects import GrowthPath, Suspect
from oomforensics.analysis.units import format_bytes
from oomforensics.analysis.wording import rate_words
from oomforensics.pprof.diff import BaseMode

Stack = tuple[str, ...]
Stacks = Mapping[Stack, tuple[int, ...]]
StackGrowth = Mapping[Stack, tuple[int, int]]


def function_table(stacks: Stacks, index: int) -> dict[str, tuple[int, int]]:
    flat: defaultdict[str, int] = defaultdict(int)
    cum: defaultdict[str, int] = defaultdict(int)
    for stack, values in stacks.items():
        value = values[index]
        if value == 0 or not stack:
            continue
        flat[stack[0]] += value
        for name in set(stack):
            cum[name] += value
    return {name: (flat.get(name, 0), total) for name, total in cum.items()}


def report_total(base: Stacks, new: Stacks, index: int, mode: BaseMode) -> int:
    if mode is BaseMode.DIFF_BASE:
        total = sum(abs(v[index]) for v in base.values())
        if total:
            return total
    stacks = base.keys() | new.keys()
    return sum(abs(_value(new, s, index) - _value(base, s, index)) for s in stacks)


def _value(stacks: Stacks, stack: Stack, index: int) -> int:
    values = stacks.get(stack)
    return values[index] if values is not None else 0


def stack_growth(
    base: Stacks, new: Stacks, space: int, objects: int
) -> dict[Stack, tuple[int, int]]:
    growth: dict[Stack, tuple[int, int]] = {}
    for stack in base.keys() | new.keys():
        if not stack:
            continue
        after = new.get(stack)
        before = base.get(stack)
        delta_bytes = (after[space] if after else 0) - (before[space] if before else 0)
        delta_objects = (after[objects] if after else 0) - (before[objects] if before else 0)
        if delta_bytes or delta_objects:
            growth[stack] = (delta_bytes, delta_objects)
    return growth


def dominant_path(stacks: Iterable[tuple[Stack, int]], stop: str | None = None) -> tuple[str, ...]:
    candidates = [(stack, weight) for stack, weight in stacks if weight > 0 and stack]
    path: list[str] = []
    depth = 0
    while candidates:
        weights: defaultdict[str, int] = defaultdict(int)
        for stack, weight in candidates:
            weights[stack[depth]] += weight
        frame = max(weights, key=lambda f: (weights[f], f))
        path.append(frame)
        if frame == stop:
            break
        depth += 1
        candidates = [
            (stack, weight)
            for stack, weight in candidates
            if stack[depth - 1] == frame and len(stack) > depth
        ]
    return tuple(path)


def growth_paths(growth: StackGrowth, limit: int = 5) -> list[GrowthPath]:
    by_leaf: defaultdict[str, list[tuple[Stack, int]]] = defaultdict(list)
    for stack, (delta, _) in growth.items():
        by_leaf[stack[0]].append((stack, delta))
    totals = {leaf: sum(d for _, d in items) for leaf, items in by_leaf.items()}
    top = sorted((leaf for leaf in totals if totals[leaf] > 0), key=lambda f: (-totals[f], f))
    return [GrowthPath(leaf, totals[leaf], dominant_path(by_leaf[leaf])) for leaf in top[:limit]]


def find_suspects(growth: StackGrowth, limit: int = 5, min_share: float = 0.02) -> list[Suspect]:
    groups: defaultdict[str, list[tuple[Stack, int, int]]] = defaultdict(list)
    for stack, (delta_bytes, delta_objects) in growth.items():
        owner = first_application_frame(stack) or entry_frame(stack)
        groups[owner].append((stack, delta_bytes, delta_objects))
    total = sum(max(0, d) for d, _ in growth.values())
    ranked = sorted(
        (
            (owner, sum(b for _, b, _ in items), sum(o for _, _, o in items))
            for owner, items in groups.items()
        ),
        key=lambda g: (-g[1], g[0]),
    )
    suspects = []
    for owner, net_bytes, net_objects in ranked[:limit]:
        if net_bytes <= 0 or net_bytes < min_share * total:
            break
        path = dominant_path(((stack, b) for stack, b, _ in groups[owner]), stop=owner)
        application = first_application_frame(path) == owner
        suspects.append(
            Suspect(owner, net_bytes, net_objects, path, None if application else mechanism(owner))
        )
    return suspects


def unclosed_response_body(
    facts: Facts, growth: StackGrowth, new_stacks: Stacks, index: int
) -> tuple[Finding, Suspect | None] | None:
    """findings._unclosed_response_body for a snapshot whose goroutines leak."""
    changes = dict(facts.goroutine_growth)
    reads, writes = changes.get(READ_LOOP, 0), changes.get(WRITE_LOOP, 0)
    if min(reads, writes) < 2:
        return None
    transport = [
        (stack, delta)
        for stack, (delta, _) in growth.items()
        if delta > 0 and any(f.startswith(TRANSPORT_FRAMES) for f in stack)
    ]
    transport_bytes = sum(delta for _, delta in transport)
    if transport_bytes <= 0:
        return None
    callers = http_callers(growth, new_stacks, index)
    caller = callers[0] if callers else None
    message = (
        f"net/http's persistConn read and write loops grew by {reads} and {writes} goroutines "
        f"(two per connection whose response body was never closed), and "
        f"{format_bytes(transport_bytes)} of heap grew under the Transport's connections "
        f"(bufio buffers, crypto/tls state){rate_words(facts, transport_bytes)}. "
        + (f"The HTTP calls come from {caller}. " if caller else "")
        + "Close resp.Body on every path, error statuses included "
        "(defer resp.Body.Close() right after checking err)."
    )
    suspect = None
    if caller is not None:
        suspect = Suspect(
            function=caller,
            bytes=transport_bytes,
            objects=sum(growth[stack][1] for stack, _ in transport),
            path=dominant_path(transport),
            mechanism="connections pinned by unclosed response bodies (net/http Transport)",
        )
    evidence = {
        "readLoopGoroutines": reads,
        "writeLoopGoroutines": writes,
        "transportBytes": transport_bytes,
        "callers": callers[:3],
    }
    return Finding("unclosed-response-body", message, evidence), suspect


def http_callers(growth: StackGrowth, new_stacks: Stacks, index: int) -> list[str]:
    weights: dict[str, int] = {}
    for stack, (delta, _) in growth.items():
        caller = _client_caller(stack)
        if caller is not None:
            weights[caller] = weights.get(caller, 0) + max(delta, 0)
    if not weights:
        for stack, values in new_stacks.items():
            caller = _client_caller(stack)
            if caller is not None:
                weights[caller] = weights.get(caller, 0) + values[index]
    return sorted(weights, key=lambda name: (-weights[name], name))


def _client_caller(stack: Stack) -> str | None:
    for i, function in enumerate(stack):
        if function.startswith(CLIENT_FRAME):
            return first_application_frame(stack[i + 1 :])
    return None
