"""Findings: what the evidence says, judged on the series of a container run's snapshots.

With three or more snapshots, every figure is judged by its shape over time (series.py,
shape.py): only growth that continues, beyond its sampling error (sampling.py), raises a
finding. A cache that filled and stopped, a pool that reached its size, a batch given back are
said as such and raise none. With two snapshots the shape cannot be seen, so the pair bars
below stay, and the judgement says its confidence is low (judgement.py).

Pair bars (see `Thresholds`), and why:
- Heap growth is judged against the size of the heap (HeapInuse of the base snapshot): 20 % of
  it. The heap profile only moves at GC, so when fewer than two GC cycles separate the
  snapshots the bar doubles. Growth below 4 sampling periods (4 x runtime.MemProfileRate) is
  below what a sampled profile can resolve. Over a series these bars give way to each
  function's own sampling error: a small grower, steadily rising well beyond its error, is a
  leak even when the whole heap's change is within GC jitter.
- Goroutines: +10 and +50 % of the base count (pair); over a series, an owner's goroutines
  still rising in the later half of the run, by 10 or more.
- Native (non-Go) memory: the RSS in excess of all the Go runtime could hold resident
  (Sys - HeapReleased) grew by at least 5 % of the RSS and 1 MiB, and makes at least half of
  the RSS growth; over a series it must also still be rising, and from four snapshots on
  steadily, without a significant drop (RSS and MemStats are read moments apart, so in a busy
  process this figure jitters by megabytes).
- HTTP connections (connections.py): client connections waiting for their body to be closed,
  idle client connections of abandoned Transports, idle server connections, each growing
  (2 or more), are three different bugs with three different fixes.
- Go's goroutine leak profile (Go 1.26, GOEXPERIMENT=goroutineleakprofile), when captured,
  is proof: goroutines the GC found blocked on something no running goroutine can reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oomforensics.analysis.accounting import MemoryAccount, account
from oomforensics.analysis.connections import READ_LOOP as READ_LOOP  # re-exported
from oomforensics.analysis.connections import SERVE, ConnectionState, blocked_on
from oomforensics.analysis.connections import WRITE_LOOP as WRITE_LOOP  # re-exported
from oomforensics.analysis.frames import first_application_frame, is_application, is_runtime
from oomforensics.analysis.sampling import SIGNIFICANCE
from oomforensics.analysis.series import (
    SeriesEvidence,
    Track,
    gather_series,
    goroutine_owner,
)
from oomforensics.analysis.shape import Shape
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
TRANSPORT_FRAMES = ("net/http.(*Transport).dialConn", "net/http.(*persistConn).")
CLIENT_FRAME = "net/http.(*Client)."
_CALLER_FRAMES = (CLIENT_FRAME, "net/http.(*Transport).RoundTrip")
HTTP_KINDS = ("unclosed-response-body", "transport-per-request", "server-connections")
LEAK_KINDS = frozenset({"heap-growth", "goroutine-leak", "non-heap-growth", *HTTP_KINDS})
_CONNECTION_OWNERS = frozenset({READ_LOOP, WRITE_LOOP, SERVE})


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
    connection_min: int = 2
    significance: float = SIGNIFICANCE


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the pair (first and last snapshot) says, computed once."""

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
    series: SeriesEvidence | None = None

    @property
    def leak_suspected(self) -> bool:
        return any(f.kind in LEAK_KINDS for f in self.findings)


def analyse(
    base: Snapshot,
    new: Snapshot,
    trend: TrendReport | None = None,
    thresholds: Thresholds = Thresholds(),
    series: SeriesEvidence | None = None,
) -> Analysis:
    """Judge the run from `base` to `new`; `series` is the evidence of all its snapshots
    (gathered from the pair when not given)."""
    facts = gather_facts(base, new, thresholds)
    evidence = series if series is not None else gather_series([base, new])
    candidates = find_suspects(facts.stack_growth, limit=50, min_share=0.0)
    if trend is not None:
        candidates = _rank_by_trend(candidates, trend)
    heap_suspects = _heap_suspects(candidates, evidence, thresholds)

    findings: list[Finding] = []
    suspects: list[Suspect] = []
    for finding, caller in _http_findings(facts, evidence, new, thresholds):
        findings.append(finding)
        if caller is not None:
            suspects.append(caller)
    if findings and not suspects:
        # No application function is tied to the leaking connections: the suspect is the
        # mechanism holding them (net/http's own goroutines), never a guessed caller.
        held = next((s for s in candidates if s.mechanism and s.bytes > 0), None)
        if held is not None:
            suspects.append(held)
    if findings:
        # The connections' own buffers and TLS state (owned by net/http's goroutines), and the
        # calling function's requests they keep, are what the HTTP finding explains; only the
        # application's other growth is another suspect.
        callers = {s.function for s in suspects}
        heap_suspects = [
            s for s in heap_suspects if is_application(s.function) and s.function not in callers
        ]
    heap = _heap_growth(facts, heap_suspects, evidence, thresholds)
    if heap is not None:
        findings.append(heap)
        suspects.extend(heap_suspects)
    goroutines = _goroutine_leak(facts, evidence, new, thresholds, http=bool(findings))
    if goroutines is not None:
        finding, owners = goroutines
        findings.append(finding)
        suspects.extend(owners)
    native = _non_heap_growth(facts, heap_suspects, evidence, thresholds)
    if native is not None:
        if (
            heap is not None
            and sum(s.bytes for s in heap_suspects) < 0.1 * native.evidence["bytes"]
        ):
            # A little heap growing beside much more native memory is the bookkeeping of the
            # native allocations (the slice of mappings), named in the native finding's hint.
            findings.remove(heap)
            heap = None
        findings.append(native)
        suspects.extend(heap_suspects)
    if not findings:
        findings.append(_no_growth(facts, evidence, thresholds))
        suspects = []
    return Analysis(
        facts=facts,
        suspects=tuple(_unique(suspects)[:5]),
        growth_paths=tuple(growth_paths(facts.stack_growth)),
        findings=tuple(findings),
        series=evidence,
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


# --- the heap -------------------------------------------------------------------------------


def _heap_suspects(
    candidates: Sequence[Suspect], evidence: SeriesEvidence, thresholds: Thresholds
) -> list[Suspect]:
    """The owners whose bytes still grow beyond their sampling error, fastest first.

    The application's own functions lead; the runtime's own structures (goroutine
    descriptors, say) are a symptom reported with the goroutines, never a heap suspect.
    """
    by_name = {s.function: s for s in candidates}
    out = []
    for track in evidence.heap:
        if not track.leaking or track.report.growth_z < thresholds.significance:
            continue
        if is_runtime(track.name):
            continue
        suspect = by_name.get(track.name)
        if suspect is None or suspect.bytes <= 0:
            continue
        out.append(_with_track(suspect, track))
    if evidence.count == 2:
        # Two snapshots: no shape to rank by, so the pair's order (net growth) stands.
        order = {s.function: i for i, s in enumerate(candidates)}
        out.sort(key=lambda s: order.get(s.function, len(order)))
    return out[:5]


def _with_track(suspect: Suspect, track: Track) -> Suspect:
    return Suspect(
        suspect.function,
        suspect.bytes,
        suspect.objects,
        suspect.path,
        suspect.mechanism,
        error=track.error,
        shape=track.shape.value,
    )


def _heap_growth(
    facts: Facts, suspects: Sequence[Suspect], evidence: SeriesEvidence, thresholds: Thresholds
) -> Finding | None:
    if not suspects:
        return None
    growth = facts.heap_growth
    bar = heap_bar(facts, thresholds)
    if evidence.count == 2 and growth < bar:
        return None
    lead = evidence.heap_track(suspects[0].function)
    assert lead is not None
    names = "; ".join(
        _track_words(evidence.heap_track(s.function), s.function) for s in suspects[:3]
    )
    message = (
        f"The live heap changed by {_signed(growth)} ({_percent(growth, facts.heap_reference)} of "
        f"the {format_bytes(facts.heap_reference)} heap){_rate(facts, growth)}. Still growing: "
        f"{names}."
    )
    lag = _profile_lag_note(facts.new)
    return Finding(
        "heap-growth",
        message + (f" {lag}" if lag else ""),
        {
            "bytes": growth,
            "heapReference": facts.heap_reference,
            "threshold": bar if evidence.count == 2 else None,
            "gcCycles": facts.gc_cycles,
            "seconds": facts.seconds,
            "bytesPerHour": facts.per_hour(growth),
            "suspects": [s.function for s in suspects[:3]],
            "shape": lead.shape.value,
            "error": lead.error,
            "leadGrowth": lead.growth,
        },
    )


def _track_words(track: Track | None, name: str) -> str:
    if track is None:
        return name
    return f"{name} {_signed(track.growth)} ± {format_bytes(track.error)} ({shape_words(track)})"


def shape_words(track: Track) -> str:
    """The shape of a track in a few words: 'growing steadily, about 6MB per hour, for 30s'."""
    report = track.report
    span = report.span

    def amount(value: float) -> str:
        return format_bytes(round(value)) if track.unit == "bytes" else f"{value:.0f} {track.unit}"

    if report.shape is Shape.GROWING:
        how = "steadily" if report.steady else "but slowing down"
        return (
            f"growing {how}, about {amount(report.late_rate_per_second * 3600)} per hour in the "
            f"later half of {_duration(span)}"
        )
    if report.shape is Shape.GREW:
        return f"grew {amount(report.growth)} in {_duration(span)}; two snapshots show no shape"
    if report.shape is Shape.PLATEAU:
        knee = report.points[report.knee]
        rise = knee.value - report.points[0].value
        if rise < report.growth:  # it crept on within noise after the knee
            return (
                f"grew {amount(report.growth)} (most of it in the first "
                f"{_duration(knee.seconds)}), then flat within noise for "
                f"{_duration(span - knee.seconds)}"
            )
        return (
            f"grew {amount(rise)} in the first {_duration(knee.seconds)}, then flat for "
            f"{_duration(span - knee.seconds)}"
        )
    if report.shape is Shape.SPIKE:
        peak = report.points[report.knee]
        return (
            f"rose by {amount(peak.value - report.points[0].value)} to a peak at "
            f"{_duration(peak.seconds)}, then gave it back"
        )
    if report.shape is Shape.SHRANK:
        return f"shrank by {amount(-report.growth)}"
    if report.shape is Shape.STEP:
        return f"rose by {amount(report.late_growth)} at the last snapshot only"
    return "flat within noise"


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


# --- goroutines -----------------------------------------------------------------------------


def _goroutine_leak(
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
    stacks = _delta(facts.base.stacks, facts.new.stacks)
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
        f"({delta:+d}{_rate(facts, delta, unit='goroutines')}). Still growing: "
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
            "goroutine-leak",
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


# --- HTTP connections -----------------------------------------------------------------------


def _http_findings(
    facts: Facts, evidence: SeriesEvidence, new: Snapshot, thresholds: Thresholds
) -> list[tuple[Finding, Suspect | None]]:
    tracks = evidence.connections
    awaiting = _growing(tracks.get(ConnectionState.CLIENT_AWAITING_BODY), thresholds)
    idle = _growing(tracks.get(ConnectionState.CLIENT_IDLE), thresholds)
    server = _growing(tracks.get(ConnectionState.SERVER_IDLE), thresholds)
    out: list[tuple[Finding, Suspect | None]] = []
    added = (awaiting.growth if awaiting else 0) + (idle.growth if idle else 0)
    callers = _tied_callers(facts, evidence, new, thresholds, added) if added else []
    caller = callers[0] if callers else None
    transport_bytes, transport_path = _transport_growth(facts.stack_growth)
    if awaiting is not None:
        message = (
            f"HTTP client connections waiting for their response body to be read or closed "
            f"went {awaiting.first} -> {awaiting.last} ({shape_words(awaiting)}): net/http's "
            "readLoop parks until the body is closed, so each response never closed pins its "
            f"connection, two goroutines and their buffers"
            + (
                f" ({format_bytes(transport_bytes)} of heap grew under the Transport's connections)"
                if transport_bytes > 0
                else ""
            )
            + f". {_caller_words(caller)} Close resp.Body on every path, error statuses "
            "included (defer resp.Body.Close() right after checking err)."
        )
        out.append(
            (
                Finding(
                    "unclosed-response-body",
                    message,
                    _connection_evidence(awaiting, facts, callers, transport_bytes),
                ),
                _caller_suspect(
                    caller,
                    transport_bytes,
                    transport_path,
                    "connections pinned by unclosed response bodies (net/http Transport)",
                ),
            )
        )
    if idle is not None:
        message = (
            f"Idle HTTP client connections went {idle.first} -> {idle.last} "
            f"({shape_words(idle)}): net/http's readLoop sits in an idle read, so the bodies "
            "were closed and the connections went back to a pool, yet they pile up. One "
            "Transport keeps at most MaxIdleConnsPerHost of them per host (2 by default): "
            "this many means a new http.Transport (or an http.Client with its own Transport) "
            f"per request, each abandoned with its idle connection. {_caller_words(caller)} "
            "Create one Transport (or Client) at start-up and share it; if one per use is "
            "needed, call CloseIdleConnections when done."
        )
        out.append(
            (
                Finding(
                    "transport-per-request",
                    message,
                    _connection_evidence(idle, facts, callers, transport_bytes),
                ),
                _caller_suspect(
                    caller,
                    transport_bytes,
                    transport_path,
                    "idle connections of abandoned Transports (net/http)",
                ),
            )
        )
    if server is not None:
        explained = (awaiting.growth if awaiting else 0) + (idle.growth if idle else 0)
        unexplained = server.growth - explained
        if unexplained >= max(thresholds.connection_min, 0.5 * server.growth):
            message = (
                f"Idle HTTP server connections went {server.first} -> {server.last} "
                f"({shape_words(server)}): (*conn).serve goroutines waiting for their client's "
                "next request, from clients that keep connections open and never close them "
                "(not this process's own clients). The profiles cannot tell which clients; "
                "the open connections can (ss -tn). Set http.Server IdleTimeout (and "
                "ReadHeaderTimeout) so idle connections are closed, and have clients close or "
                "reuse theirs."
            )
            out.append(
                (
                    Finding(
                        "server-connections",
                        message,
                        {**_connection_evidence(server, facts, [], 0), "unexplained": unexplained},
                    ),
                    None,
                )
            )
    return out


def _growing(track: Track | None, thresholds: Thresholds) -> Track | None:
    if track is None or not track.leaking or track.growth < thresholds.connection_min:
        return None
    return track


def _connection_evidence(
    track: Track, facts: Facts, callers: Sequence[str], transport_bytes: int
) -> dict[str, Any]:
    changes = dict(facts.goroutine_growth)
    return {
        "connections": {"first": track.first, "last": track.last, "growth": track.growth},
        "shape": track.shape.value,
        "readLoopGoroutines": changes.get(READ_LOOP, 0),
        "writeLoopGoroutines": changes.get(WRITE_LOOP, 0),
        "serveGoroutines": changes.get(SERVE, 0),
        "transportBytes": transport_bytes,
        "callers": list(callers[:3]),
    }


def _caller_words(caller: str | None) -> str:
    if caller is not None:
        return (
            f"The calls come from {caller}: its request allocations grow with the leaking "
            "connections."
        )
    return (
        "The profiles cannot tell which function makes these calls: no application function's "
        "HTTP allocations grow beyond the heap profile's sampling error (a lower "
        "MemProfileRate, or pprof labels on the calling goroutines, would show it)."
    )


def _caller_suspect(
    caller: str | None, held: int, path: tuple[str, ...], how: str
) -> Suspect | None:
    """The calling function, charged with what its leaking connections hold (their buffers
    and TLS state under the Transport), along the heaviest path of that memory."""
    if caller is None:
        return None
    return Suspect(function=caller, bytes=held, objects=0, path=path or (caller,), mechanism=how)


def _transport_growth(growth: StackGrowth) -> tuple[int, tuple[str, ...]]:
    table = StackGrowth.from_mapping(growth)
    rows = table.rows_with(lambda name: name.startswith(TRANSPORT_FRAMES))
    rows = rows[table.bytes[rows] > 0]
    if not rows.size:
        return 0, ()
    return int(table.bytes[rows].sum()), table.dominant_path(rows, table.bytes[rows])


# What a leaking connection keeps of its caller's allocations at the least: the Request (about
# 250 bytes), its URL and header map. A caller holding less per added connection is not the
# one whose calls leak (another client of the same service, with a few calls in flight).
CALLER_BYTES_PER_CONNECTION = 256


def _tied_callers(
    facts: Facts,
    evidence: SeriesEvidence,
    new: Snapshot,
    thresholds: Thresholds,
    connections: int,
) -> list[str]:
    """Application functions calling net/http whose own heap grew beyond its error.

    A leaking connection keeps what its caller allocated for the call (the Request, its URL
    and headers; for a Transport per call, the Transport itself), so the caller's bytes grow
    with the connections. A caller whose bytes do not grow is another client of the service,
    not the one that leaks.
    """
    names = _http_callers(StackGrowth.from_mapping(facts.stack_growth), new)
    tied = []
    for name in names:
        track = evidence.heap_track(name)
        if track is None or track.report.growth_z < thresholds.significance:
            continue
        # Its bytes grew beyond their error over the run, were still rising at its end (the
        # connections' growth shows the leak continues; this ties the caller), and by at least
        # what each added connection keeps of its call.
        report = track.report
        if report.shape in (Shape.SPIKE, Shape.STEP) or report.late_growth <= 0:
            continue
        if report.growth >= CALLER_BYTES_PER_CONNECTION * connections:
            tied.append(name)
    return tied


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
    return function.startswith(_CALLER_FRAMES)


def _client_caller(stack: tuple[str, ...]) -> str | None:
    for i, function in enumerate(stack):
        if function.startswith(_CALLER_FRAMES):
            return first_application_frame(stack[i + 1 :])
    return None


# --- memory outside the Go runtime ---------------------------------------------------------


def _non_heap_growth(
    facts: Facts, suspects: Sequence[Suspect], evidence: SeriesEvidence, thresholds: Thresholds
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
    track = evidence.native
    if evidence.count > 2 and (track is None or not track.leaking):
        return None
    if evidence.count >= 4 and track is not None and not track.report.steady:
        # Resident memory has no sampling model, and RSS and MemStats are read moments apart
        # in a busy process: only a steady climb without a drop is taken as native growth.
        return None
    go_delta = _delta(facts.base.go_sys, facts.new.go_sys)
    hint = next((s.function for s in suspects if is_application(s.function)), None)
    message = (
        f"RSS grew by {format_bytes(rss_after - rss_before)}{_rate(facts, rss_after - rss_before)} "
        f"while the Go runtime's own memory changed by {format_bytes(go_delta or 0)}: "
        f"{format_bytes(delta)} of the growth is outside the Go runtime (cgo, mmap, native "
        "libraries), which heap profiles cannot see"
        + (f"; {shape_words(track)}" if track is not None else "")
        + "."
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
            "shape": track.shape.value if track is not None else None,
        },
    )


# --- nothing leaks --------------------------------------------------------------------------


def _no_growth(facts: Facts, evidence: SeriesEvidence, thresholds: Thresholds) -> Finding:
    goroutines = (
        facts.goroutines_new - facts.goroutines_base
        if facts.goroutines_new is not None and facts.goroutines_base is not None
        else None
    )
    rss = _delta(facts.base.rss, facts.new.rss)
    total = evidence.heap_total
    parts = [f"the live heap changed by {_signed(facts.heap_growth)} ± {format_bytes(total.error)}"]
    if goroutines is not None:
        parts.append(f"goroutines by {goroutines:+d}")
    if rss is not None:
        parts.append(f"RSS by {_signed(rss)}")
    explained = evidence.stopped()[:2]
    sentences = []
    if total.shape is Shape.SHRANK or (
        evidence.count == 2 and total.report.growth_z <= -thresholds.significance
    ):
        sentences.append(
            f"The live heap shrank by {format_bytes(-facts.heap_growth)} "
            f"(± {format_bytes(total.error)}): nothing grew."
        )
    for track in explained[:2]:
        what = (
            "a bounded cache filling, a pool reaching its size or warm-up, not a leak"
            if track.shape is Shape.PLATEAU
            else "a one-off burst given back, not a leak"
        )
        sentences.append(f"{track.name} {shape_words(track)}: {what}.")
    if not sentences:
        sentences.append("Nothing grew beyond noise.")
    return Finding(
        "no-growth",
        " ".join(sentences) + " Overall " + ", ".join(parts) + ".",
        {
            "heapBytes": facts.heap_growth,
            "heapError": total.error,
            "goroutines": goroutines,
            "rssBytes": rss,
            "heapThreshold": heap_bar(facts, thresholds),
            "stopped": [{"name": t.name, "shape": t.shape.value} for t in explained],
        },
    )


def _rank_by_trend(suspects: Sequence[Suspect], trend: TrendReport) -> list[Suspect]:
    """Over three or more snapshots, steady growers first (their trend score), then the rest.

    The score is that of the bytes each suspect holds, not of its function's cum: a frame such
    as net/http.(*conn).serve is on the stack of far more growth than it owns.
    """
    scores = {f.name: f.score for f in trend.owners}
    return sorted(suspects, key=lambda s: (-scores.get(s.function, float("-inf")), -s.bytes))


def _unique(suspects: Sequence[Suspect]) -> list[Suspect]:
    seen: set[str] = set()
    out = []
    for suspect in suspects:
        if suspect.function not in seen:
            seen.add(suspect.function)
            out.append(suspect)
    return out


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
