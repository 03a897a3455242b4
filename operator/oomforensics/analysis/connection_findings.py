"""The HTTP connection findings: client connections waiting for their body to be closed
(unclosed-response-body), idle client connections of abandoned Transports
(transport-per-request), idle server connections (server-connections); each state is read
from the goroutines by connections.py. Three different bugs with three different fixes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from oomforensics.analysis.connections import READ_LOOP, SERVE, WRITE_LOOP, ConnectionState
from oomforensics.analysis.facts import Facts
from oomforensics.analysis.frames import first_application_frame
from oomforensics.analysis.model import Finding, FindingKind
from oomforensics.analysis.series import SeriesEvidence, Track
from oomforensics.analysis.shape import Shape
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.analysis.suspects import StackGrowth, Suspect
from oomforensics.analysis.thresholds import Thresholds
from oomforensics.analysis.units import format_bytes
from oomforensics.analysis.wording import shape_words

TRANSPORT_FRAMES = ("net/http.(*Transport).dialConn", "net/http.(*persistConn).")
CLIENT_FRAME = "net/http.(*Client)."
_CALLER_FRAMES = (CLIENT_FRAME, "net/http.(*Transport).RoundTrip")


def http_findings(
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
                    FindingKind.UNCLOSED_RESPONSE_BODY,
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
                    FindingKind.TRANSPORT_PER_REQUEST,
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
                        FindingKind.SERVER_CONNECTIONS,
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
