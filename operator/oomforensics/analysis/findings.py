"""Findings: what the evidence says, judged with thresholds chosen for how Go memory behaves.

Thresholds (see `Thresholds`), and why:
- Heap growth is judged against the size of the heap (HeapInuse of the base snapshot), not a
  fixed byte count: 20 % of it. The heap profile only moves at GC, so when fewer than two GC
  cycles separate the snapshots the bar doubles (a small heap jumps with GC timing). Growth
  below 4 sampling periods (4 x runtime.MemProfileRate, 2 MiB at Go's default) is below what
  a sampled profile can resolve.
- Goroutines: +10 and +50 % of the base count. Services keep stable pools; a leak adds one or
  more goroutines per event, so it clears both bars within minutes.
- Native (non-Go) memory: the RSS in excess of all the Go runtime could hold resident
  (Sys - HeapReleased, which counts reserved but untouched pages too) grew by at least 5 % of
  the RSS and 1 MiB (page-granular noise), and makes at least half of the RSS growth. Below
  that bound, a growing RSS is Go touching memory it had already reserved, not native memory.
The snapshot interval sets the rates quoted (per hour), not the bar: a leak that is slow is
still a leak, and over three or more snapshots the trend's steadiness tells leaks from spikes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oomforensics.analysis.accounting import MemoryAccount, account
from oomforensics.analysis.frames import first_application_frame, is_application
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import (
    GrowthPath,
    StackGrowth,
    Suspect,
    find_suspects,
    growth_paths,
    stack_growth,
)
from oomforensics.analysis.trend import TrendReport, snapshot_time
from oomforensics.analysis.units import format_bytes
from oomforensics.pprof.goroutines import GoroutineGroup, goroutine_growth

MiB = 1024 * 1024
GO_DEFAULT_MEMPROFILERATE = 512 * 1024
READ_LOOP = "net/http.(*persistConn).readLoop"
WRITE_LOOP = "net/http.(*persistConn).writeLoop"
TRANSPORT_FRAMES = ("net/http.(*Transport).dialConn", "net/http.(*persistConn).")
CLIENT_FRAME = "net/http.(*Client)."
LEAK_KINDS = frozenset(
    {"heap-growth", "goroutine-leak", "non-heap-growth", "unclosed-response-body"}
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    heap_growth_ratio: float = 0.20
    few_gc_factor: float = 2.0
    noise_samples: int = 4
    goroutine_min: int = 10
    goroutine_ratio: float = 0.5
    non_heap_ratio: float = 0.05
    non_heap_share: float = 0.5
    non_heap_min: int = 1 * MiB


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the findings are judged on, computed once."""

    base: MemoryAccount
    new: MemoryAccount
    seconds: float | None  # between the snapshots, when both capture times are known
    gc_cycles: int | None
    heap_growth: int  # net growth of the heap profile's inuse_space
    heap_reference: int  # the heap size growth is judged against
    noise_floor: int
    goroutines_base: int | None
    goroutines_new: int | None
    goroutine_growth: tuple[tuple[str, int], ...]
    stack_growth: StackGrowth

    def per_hour(self, delta: int) -> float | None:
        return delta * 3600 / self.seconds if self.seconds else None


@dataclass(frozen=True, slots=True)
class Analysis:
    facts: Facts
    suspects: tuple[Suspect, ...]
    growth_paths: tuple[GrowthPath, ...]
    findings: tuple[Finding, ...]

    @property
    def leak_suspected(self) -> bool:
        return any(f.kind in LEAK_KINDS for f in self.findings)


def goroutine_owner(group: GoroutineGroup) -> str:
    """Name a goroutine stack: its first application frame, else what started it."""
    return first_application_frame(group.functions) or group.entry


def analyse(
    base: Snapshot,
    new: Snapshot,
    trend: TrendReport | None = None,
    thresholds: Thresholds = Thresholds(),
) -> Analysis:
    facts = gather_facts(base, new, thresholds)
    suspects = find_suspects(facts.stack_growth)
    if trend is not None:
        suspects = _rank_by_trend(suspects, trend)
    findings: list[Finding] = []
    heap = _heap_growth(facts, suspects, thresholds)
    goroutines = _goroutine_leak(facts, thresholds)
    for finding in (heap, goroutines, _non_heap_growth(facts, suspects, thresholds)):
        if finding is not None:
            findings.append(finding)
    classic = _unclosed_response_body(facts, goroutines is not None, new)
    if classic is not None:
        # The signature names the cause better than any single allocation site: it leads.
        finding, caller_suspect = classic
        findings.insert(0, finding)
        if caller_suspect is not None:
            suspects = [caller_suspect, *suspects]
    if not findings:
        findings.append(_no_growth(facts, thresholds))
        suspects = []
    return Analysis(
        facts=facts,
        suspects=tuple(suspects),
        growth_paths=tuple(growth_paths(facts.stack_growth)),
        findings=tuple(findings),
    )


def gather_facts(base: Snapshot, new: Snapshot, thresholds: Thresholds = Thresholds()) -> Facts:
    base_account, new_account = account(base), account(new)
    reference = base_account.heap_inuse or base_account.heap_profile_inuse
    period = new.heap_text.sampling_period // 2 if new.heap_text else GO_DEFAULT_MEMPROFILERATE
    goroutine_changes: tuple[tuple[str, int], ...] = ()
    if base.goroutines and new.goroutines:
        goroutine_changes = tuple(
            goroutine_growth(base.goroutines, new.goroutines, goroutine_owner)
        )
    return Facts(
        base=base_account,
        new=new_account,
        seconds=_seconds_between(base, new),
        gc_cycles=_gc_cycles(base, new),
        heap_growth=new_account.heap_profile_inuse - base_account.heap_profile_inuse,
        heap_reference=reference,
        noise_floor=thresholds.noise_samples * max(period, 1),
        goroutines_base=base.goroutines.total if base.goroutines else None,
        goroutines_new=new.goroutines.total if new.goroutines else None,
        goroutine_growth=goroutine_changes,
        stack_growth=stack_growth(base.profile, new.profile),
    )


def _seconds_between(base: Snapshot, new: Snapshot) -> float | None:
    try:
        seconds = snapshot_time(new) - snapshot_time(base)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _gc_cycles(base: Snapshot, new: Snapshot) -> int | None:
    if base.heap_text is None or new.heap_text is None:
        return None
    before, after = (
        base.heap_text.memstats.integer("NumGC"),
        new.heap_text.memstats.integer("NumGC"),
    )
    return after - before if before is not None and after is not None else None


def heap_bar(facts: Facts, thresholds: Thresholds) -> int:
    ratio = thresholds.heap_growth_ratio
    if facts.gc_cycles is not None and facts.gc_cycles < 2:
        ratio *= thresholds.few_gc_factor
    return max(int(ratio * facts.heap_reference), facts.noise_floor)


def _heap_growth(
    facts: Facts, suspects: Sequence[Suspect], thresholds: Thresholds
) -> Finding | None:
    growth = facts.heap_growth
    bar = heap_bar(facts, thresholds)
    if growth < bar:
        return None
    names = ", ".join(f"{s.function} ({format_bytes(s.bytes)})" for s in suspects[:3])
    message = (
        f"The live heap grew by {format_bytes(growth)} "
        f"({_percent(growth, facts.heap_reference)} of the {format_bytes(facts.heap_reference)} "
        f"heap){_rate(facts, growth)}" + (f"; it grew under {names}." if names else ".")
    )
    lag = _profile_lag_note(facts.new)
    return Finding(
        "heap-growth",
        message + (f" {lag}" if lag else ""),
        {
            "bytes": growth,
            "heapReference": facts.heap_reference,
            "threshold": bar,
            "gcCycles": facts.gc_cycles,
            "seconds": facts.seconds,
            "bytesPerHour": facts.per_hour(growth),
            "suspects": [s.function for s in suspects[:3]],
        },
    )


def _profile_lag_note(snapshot_account: MemoryAccount) -> str:
    alloc = snapshot_account.heap_alloc
    profiled = snapshot_account.heap_profile_inuse
    if alloc is None or not alloc or abs(alloc - profiled) <= 0.25 * alloc:
        return ""
    return (
        f"(The heap profile shows {format_bytes(profiled)} live as of the last GC, while "
        f"HeapAlloc is {format_bytes(alloc)} now: the profile lags, garbage not yet collected "
        "counts in HeapAlloc.)"
    )


def _goroutine_leak(facts: Facts, thresholds: Thresholds) -> Finding | None:
    if facts.goroutines_base is None or facts.goroutines_new is None:
        return None
    delta = facts.goroutines_new - facts.goroutines_base
    bar = max(thresholds.goroutine_min, int(thresholds.goroutine_ratio * facts.goroutines_base))
    if delta < bar:
        return None
    grown = [(name, count) for name, count in facts.goroutine_growth if count > 0]
    stacks = _delta(facts.base.stacks, facts.new.stacks)
    message = (
        f"Goroutines grew from {facts.goroutines_base} to {facts.goroutines_new} "
        f"(+{delta}{_rate(facts, delta, unit='goroutines')}), mostly in "
        + ", ".join(f"{name} (+{count})" for name, count in grown[:3])
        + (f"; their stacks hold {format_bytes(stacks)} more." if stacks else ".")
    )
    return Finding(
        "goroutine-leak",
        message,
        {
            "base": facts.goroutines_base,
            "new": facts.goroutines_new,
            "threshold": bar,
            "growth": [{"function": n, "count": c} for n, c in grown[:10]],
            "stackBytes": stacks,
        },
    )


def _non_heap_growth(
    facts: Facts, suspects: Sequence[Suspect], thresholds: Thresholds
) -> Finding | None:
    before, after = facts.base.not_go, facts.new.not_go
    rss_before, rss_after = facts.base.rss, facts.new.rss
    if before is None or after is None or rss_before is None or rss_after is None:
        return None
    # Only RSS beyond everything Go could hold resident is provably native: below that, RSS
    # growing is Go touching memory it had already reserved (Sys counts reservations).
    delta = max(0, after) - max(0, before)
    rss_growth = rss_after - rss_before
    bar = max(int(thresholds.non_heap_ratio * rss_after), thresholds.non_heap_min)
    if delta < bar or delta < thresholds.non_heap_share * rss_growth:
        return None
    go_delta = _delta(facts.base.go_sys, facts.new.go_sys)
    hint = next((s.function for s in suspects if is_application(s.function)), None)
    message = (
        f"RSS grew by {format_bytes(rss_after - rss_before)}{_rate(facts, rss_after - rss_before)} "
        f"while the Go runtime's own memory changed by {format_bytes(go_delta or 0)}: "
        f"{format_bytes(delta)} of the growth is outside the Go runtime (cgo, mmap, native "
        "libraries), which heap profiles cannot see."
        + (
            f" The heap profile's small growth points at {hint}, which may be what maps it."
            if hint
            else ""
        )
    )
    return Finding(
        "non-heap-growth",
        message,
        {
            "bytes": delta,
            "rssGrowth": rss_after - rss_before,
            "goSysGrowth": go_delta,
            "threshold": bar,
            "rssSource": facts.new.rss_source,
        },
    )


def _unclosed_response_body(
    facts: Facts, goroutines_leaking: bool, new: Snapshot
) -> tuple[Finding, Suspect | None] | None:
    """The classic: responses whose body is never closed pin their connection for good.

    Each such connection keeps a persistConn with its readLoop and writeLoop goroutines, its
    bufio buffers and its TLS state; so both loops grow in step and the heap grows under the
    Transport's dial path and crypto/tls.
    """
    if not goroutines_leaking:
        return None
    changes = dict(facts.goroutine_growth)
    reads, writes = changes.get(READ_LOOP, 0), changes.get(WRITE_LOOP, 0)
    if min(reads, writes) < 2:
        return None
    growth = StackGrowth.from_mapping(facts.stack_growth)
    transport = growth.rows_with(lambda name: name.startswith(TRANSPORT_FRAMES))
    transport = transport[growth.bytes[transport] > 0]
    transport_bytes = int(growth.bytes[transport].sum()) if transport.size else 0
    if transport_bytes <= 0:
        return None
    callers = _http_callers(growth, new)
    caller = callers[0] if callers else None
    message = (
        f"net/http's persistConn read and write loops grew by {reads} and {writes} goroutines "
        f"(two per connection whose response body was never closed), and "
        f"{format_bytes(transport_bytes)} of heap grew under the Transport's connections "
        f"(bufio buffers, crypto/tls state){_rate(facts, transport_bytes)}. "
        + (f"The HTTP calls come from {caller}. " if caller else "")
        + "Close resp.Body on every path, error statuses included "
        "(defer resp.Body.Close() right after checking err)."
    )
    suspect = None
    if caller is not None:
        suspect = Suspect(
            function=caller,
            bytes=transport_bytes,
            objects=int(growth.objects[transport].sum()),
            path=growth.dominant_path(transport, growth.bytes[transport]),
            mechanism="connections pinned by unclosed response bodies (net/http Transport)",
        )
    evidence = {
        "readLoopGoroutines": reads,
        "writeLoopGoroutines": writes,
        "transportBytes": transport_bytes,
        "callers": callers[:3],
    }
    return Finding("unclosed-response-body", message, evidence), suspect


def _http_callers(growth: StackGrowth, new: Snapshot) -> list[str]:
    """Application functions that call net/http's Client, heaviest first.

    Their own request allocations grow with the leak; fall back to any caller in the profile.
    Only stacks with a Client frame can have one, so only those are looked at.
    """
    weights: dict[str, int] = {}
    for row in growth.rows_with(_is_client).tolist():
        caller = _client_caller(growth.stack(row))
        if caller is not None:
            weights[caller] = weights.get(caller, 0) + max(int(growth.bytes[row]), 0)
    if not weights:
        samples = new.profile.samples
        index = new.profile.sample_index("inuse_space")
        clients = np.fromiter(map(_is_client, samples.names), dtype=bool, count=len(samples.names))
        hits = np.flatnonzero(clients[samples.frames])
        for sample in np.unique(samples.frame_samples()[hits]).tolist():
            caller = _client_caller(samples.stack(sample))
            if caller is not None:
                weights[caller] = weights.get(caller, 0) + int(samples.values[sample, index])
    return sorted(weights, key=lambda name: (-weights[name], name))


def _is_client(function: str) -> bool:
    return function.startswith(CLIENT_FRAME)


def _client_caller(stack: tuple[str, ...]) -> str | None:
    for i, function in enumerate(stack):
        if function.startswith(CLIENT_FRAME):
            return first_application_frame(stack[i + 1 :])
    return None


def _no_growth(facts: Facts, thresholds: Thresholds) -> Finding:
    goroutines = (
        facts.goroutines_new - facts.goroutines_base
        if facts.goroutines_new is not None and facts.goroutines_base is not None
        else None
    )
    rss = _delta(facts.base.rss, facts.new.rss)
    parts = [f"the live heap changed by {_signed(facts.heap_growth)}"]
    if goroutines is not None:
        parts.append(f"goroutines by {goroutines:+d}")
    if rss is not None:
        parts.append(f"RSS by {_signed(rss)}")
    return Finding(
        "no-growth",
        "Nothing grew beyond noise: " + ", ".join(parts) + ".",
        {
            "heapBytes": facts.heap_growth,
            "goroutines": goroutines,
            "rssBytes": rss,
            "heapThreshold": heap_bar(facts, Thresholds()),
        },
    )


def _rank_by_trend(suspects: Sequence[Suspect], trend: TrendReport) -> list[Suspect]:
    """Over three or more snapshots, steady growers first (their trend score), then the rest.

    The score is that of the bytes each suspect holds, not of its function's cum: a frame such
    as net/http.(*conn).serve is on the stack of far more growth than it owns.
    """
    scores = {f.name: f.score for f in trend.owners}
    return sorted(suspects, key=lambda s: (-scores.get(s.function, float("-inf")), -s.bytes))


def _delta(before: int | None, after: int | None) -> int | None:
    return after - before if before is not None and after is not None else None


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "all"


def _signed(value: int) -> str:
    return ("+" if value >= 0 else "") + format_bytes(value)


def _rate(facts: Facts, delta: int, unit: str = "bytes") -> str:
    if not facts.seconds:
        return ""
    per_hour = delta * 3600 / facts.seconds
    amount = format_bytes(int(per_hour)) if unit == "bytes" else f"{per_hour:.0f} {unit}"
    return f" in {_duration(facts.seconds)}, about {amount} per hour"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
