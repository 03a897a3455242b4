"""HTTP connections as their goroutines show them: which state each connection is in.

net/http runs each client connection (a persistConn) as two goroutines, readLoop and
writeLoop, and each server connection as one, (*conn).serve. Where readLoop is parked tells
why a connection is alive (goroutine?debug=1 omits runtime frames, so the leaf is the first
frame outside the runtime):

- readLoop parked in its own select (leaf `net/http.(*persistConn).readLoop`): a response was
  handed to the caller and the loop waits for its body to be read to EOF or closed
  (waitForBodyRead). Connections piling up in this state are responses never closed.
- readLoop parked in `bufio.(*Reader).Peek` under `(*persistConn).Read`: the connection is idle
  in a Transport's pool, waiting for the server to send anything. A Transport keeps at most
  MaxIdleConnsPerHost of these per host (2 by default), so their number growing without end
  means new Transports: a Transport (or a Client with its own Transport) made per request,
  each abandoned with its idle connection.
- (*conn).serve reading the next request (`bufio.(*Reader).Peek`, `(*conn).readRequest`, the
  connReader): a server connection kept open by its client between requests. Growing without
  end: clients that never close their connections and a server without IdleTimeout.
- (*conn).serve with an application frame on it: a handler still running (a stuck handler is
  an application goroutine leak, named by that frame).
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from oomforensics.analysis.frames import is_application
from oomforensics.pprof.goroutines import GoroutineDump, GoroutineGroup

READ_LOOP = "net/http.(*persistConn).readLoop"
WRITE_LOOP = "net/http.(*persistConn).writeLoop"
SERVE = "net/http.(*conn).serve"
_IDLE_READ = ("bufio.(*Reader).Peek", "bufio.(*Reader).fill", "net/http.(*persistConn).Read")
_SERVER_READ = (
    "bufio.(*Reader).Peek",
    "bufio.(*Reader).fill",
    "net/http.(*conn).readRequest",
    "net/http.(*connReader).Read",
)


class ConnectionState(StrEnum):
    CLIENT_AWAITING_BODY = "client-awaiting-body"  # readLoop waiting for the body to be closed
    CLIENT_IDLE = "client-idle"  # readLoop in an idle read: pooled, unused
    CLIENT_OTHER = "client-other"  # readLoop reading a response, or a state not recognised
    CLIENT_WRITER = "client-writer"  # writeLoop: one per client connection, whatever its state
    SERVER_IDLE = "server-idle"  # (*conn).serve waiting for the client's next request
    SERVER_HANDLER = "server-handler"  # (*conn).serve running a handler


def connection_state(group: GoroutineGroup) -> ConnectionState | None:
    """The HTTP connection state of a goroutine group, or None when it is no connection's."""
    functions = group.functions
    if READ_LOOP in functions:
        below = functions[: functions.index(READ_LOOP)]
        if not below:
            return ConnectionState.CLIENT_AWAITING_BODY
        if any(f in _IDLE_READ for f in below):
            return ConnectionState.CLIENT_IDLE
        return ConnectionState.CLIENT_OTHER
    if WRITE_LOOP in functions:
        return ConnectionState.CLIENT_WRITER
    if SERVE in functions:
        below = functions[: functions.index(SERVE)]
        if any(is_application(f) for f in below):
            return ConnectionState.SERVER_HANDLER
        if any(f in _SERVER_READ for f in below) or not below:
            return ConnectionState.SERVER_IDLE
        return ConnectionState.SERVER_HANDLER
    if "net/http.(*connReader).backgroundRead" in functions:
        return None  # a server connection's reader while a handler runs: counted by serve
    return None


def connection_counts(dump: GoroutineDump) -> Counter[ConnectionState]:
    counts: Counter[ConnectionState] = Counter()
    for group in dump.groups:
        state = connection_state(group)
        if state is not None:
            counts[state] += group.count
    return counts


def blocked_on(group: GoroutineGroup) -> str:
    """What a goroutine group waits on, in words, from the frames debug=1 shows."""
    for function in group.functions:
        if is_application(function):
            return f"a channel operation or select in {function}"
        for prefix, words in _WAITS:
            if function.startswith(prefix):
                return words
    leaf = group.functions[0] if group.functions else ""
    return leaf or "an unknown wait"


_WAITS = (
    ("sync.(*WaitGroup).", "a sync.WaitGroup that never reaches zero"),
    ("sync.(*Cond).", "a sync.Cond that is never signalled"),
    ("sync.(*RWMutex).", "a sync.RWMutex that is never unlocked"),
    ("sync.(*Mutex).", "a sync.Mutex that is never unlocked"),
    ("time.Sleep", "time.Sleep"),
    ("internal/poll.", "network or file I/O that never completes"),
)
