"""How a container run ended, and how sure the operator is of it: OOM kills told apart (pure).

The kubelet's `OOMKilled` is not the whole truth. containerd marks a container OOMKilled when
its cgroup saw any OOM kill during its life (a child process's too), so upstream reports show
OOMKilled beside exit code 143 (SIGTERM); a SIGKILL from a person, a runtime or the node's
OOM killer shows only exit code 137; an eviction ends a container with whatever its process
did on SIGTERM. So every end is judged from its facts together (`EndFacts`): the kubelet's
reason and exit code, the pod's eviction (status.reason and message), and the last working
set read before the end against the container's memory limit, with how long before the end
it was read. The judgement (`Attribution`) says what the end was (`Ending`), what caused it
(`Cause`), how sure that is (`Confidence`) and the evidence in words.

Rules, in order (the first that applies decides):

1. The kubelet says OOMKilled and the exit code is 137 (128 + SIGKILL; or the runtime names
   signal 9): the kernel's OOM killer ended the main process: `OOMKilled`.
   - no memory limit of its own: the node's OOM killer (or a pod-level limit): cause Node,
     medium;
   - no reading of the run: the kubelet's word alone: ContainerLimit, medium;
   - a reading older than `fresh` seconds before the kill (or no kill time): too old to
     corroborate: ContainerLimit, medium;
   - a fresh reading at NEAR_LIMIT % of the limit or more: ContainerLimit, high;
   - a fresh reading below FAR_BELOW %: far below the limit, the OOM killer acted for
     something bigger (the node's allocatable or the pod's cgroup: a node under memory
     pressure): cause Node, low (a jump of memory within those seconds would do it too);
   - in between: ContainerLimit, medium (it had to grow the rest within those seconds).
2. The pod was evicted (status.reason `Evicted`, or `Preempting`: the kubelet made room for a
   critical pod) and this was its last run: `Evicted`, high (the kubelet's own record, with
   its message). The cause follows the kubelet's message: a local-storage limit of the pod
   (an emptyDir `sizeLimit`, an ephemeral-storage limit) is StorageLimit; node pressure
   ("The node was low on resource: memory") and anything else is Node. (A container the
   kubelet lost track of while stopping the pod, ContainerStatusUnknown, is the eviction's
   too: `detect_ends` gives it the pod's end.)
3. The node shut down (pod status.reason `Terminated` or `Shutdown`): `Terminated`, Node, high.
4. OOMKilled with exit code 143 (SIGTERM): the main process ended on SIGTERM; the reason only
   says an OOM kill happened somewhere in its cgroup: `Terminated`, Outside, medium.
   OOMKilled with any other exit code: the main process exited by itself: `Exited`, Process,
   medium.
5. Exit code 137 (or signal 9) with a generic reason (`Error`, none): a SIGKILL from outside
   the container's OOM killer (a person, the kubelet after a grace period or a failed
   liveness probe, the node's OOM killer): `Killed`, Outside; high with a fresh reading below
   NEAR_LIMIT (not near the limit: not a memory kill), low with one at NEAR_LIMIT or more (an
   OOM kill the kubelet did not attribute is possible), medium without a fresh reading.
6. Exit code 143 (or signal 15) with a generic reason: stopped by SIGTERM: `Terminated`,
   Outside, high.
7. Anything else (a clean exit, a crash, a container the kubelet lost track of) is not a kill:
   `attribute` returns None and nothing is reported.

A pod being deleted stops its containers on purpose: `reportable` leaves their last ends out
(unless the kernel OOM-killed them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

SIGKILL = 9
SIGTERM = 15
SIGNAL_BASE = 128  # a process killed by signal N exits, as runtimes report it, with 128 + N
OOM_KILLED_REASON = "OOMKilled"
# The kubelet's reasons for a termination it has no better word for (containerd: "Error" for
# a non-zero exit). Not "ContainerStatusUnknown": the kubelet writes 137 itself for a
# container it lost track of, no signal was seen.
GENERIC_REASONS = frozenset({"Error", ""})
LOST_REASON = "ContainerStatusUnknown"
EVICTION_REASONS = frozenset({"Evicted", "Preempting"})
SHUTDOWN_REASONS = frozenset({"Terminated", "Shutdown"})  # graceful node shutdown
NEAR_LIMIT = 80.0  # %: at this share of the limit shortly before, an OOM kill is corroborated
# %: an OOM kill with the working set read below half the limit shortly before: the container
# would have had to double within seconds; a node (or pod) cgroup out of memory is likelier.
FAR_BELOW = 50.0
# Seconds: a reading older than this before the end says little about the moment of the end
# (metrics-server itself lags its readings by up to its resolution, 10-60 s).
FRESH = 60.0
MAX_MESSAGE = 1024  # characters of the kubelet's message kept (the status lives in etcd)

# The kubelet's eviction messages for a local-storage limit of the pod itself
# (pkg/kubelet/eviction: emptyDirMessageFmt, containerEphemeralStorageMessageFmt,
# podEphemeralStorageMessageFmt); node pressure reads "The node was low on resource: X."
_STORAGE_LIMIT = re.compile(
    r"Usage of EmptyDir volume|exceeded its local ephemeral storage limit|"
    r"ephemeral local storage usage exceeds"
)
_NODE_LOW = re.compile(r"The node was low on resource: ([A-Za-z0-9_/-]+)")


class Ending(StrEnum):
    """What ended a container run, in the kubelet's words where they hold."""

    OOM_KILLED = "OOMKilled"  # the kernel's OOM killer ended the main process
    KILLED = "Killed"  # SIGKILL from outside the container's OOM killer
    EVICTED = "Evicted"  # the kubelet evicted the pod
    TERMINATED = "Terminated"  # SIGTERM (a person, the kubelet, a rollout) or a node shutdown
    EXITED = "Exited"  # the process exited by itself


class Cause(StrEnum):
    """Whose limit or whose hand: the container's memory limit, the node, or neither."""

    CONTAINER_LIMIT = "ContainerLimit"  # the container's own memory limit (its cgroup)
    NODE = "Node"  # the node: memory or disk pressure, its OOM killer, its shutdown
    STORAGE_LIMIT = "StorageLimit"  # the kubelet enforcing a local-storage limit of the pod
    OUTSIDE = "Outside"  # a signal from outside: a person, the kubelet, a probe, a runtime
    PROCESS = "Process"  # the process ended by itself


class Confidence(StrEnum):
    """How sure the attribution is: high, medium or low (the evidence says why)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ReadingSource(StrEnum):
    """Where the last working set before the end came from."""

    SAMPLER = "sampler"  # the operator's last reading of the run (metrics-server or /metrics)
    SNAPSHOT = "snapshot"  # the manifest of the run's last snapshot (after an operator restart)


@dataclass(frozen=True, slots=True)
class Reading:
    """A working set of the run and when it was read (POSIX seconds)."""

    working_set: int  # bytes
    at: float
    source: ReadingSource


@dataclass(frozen=True, slots=True)
class PodEnd:
    """The pod's own word on why it stopped (status.reason and status.message)."""

    reason: str  # "Evicted", "Preempting", "Terminated" (node shutdown)
    message: str


@dataclass(frozen=True, slots=True)
class EndFacts:
    """What is known of one container run's end, gathered from the pod and the sampler."""

    reason: str  # the kubelet's terminated.reason
    exit_code: int
    signal: int | None = None  # terminated.signal, when the runtime gave one
    finished_at: float | None = None  # POSIX seconds
    pod_end: PodEnd | None = None  # set only when this termination ended the pod's last run
    limit: int | None = None  # the container's memory limit, bytes
    reading: Reading | None = None  # the last working set read before the end

    @property
    def killed_by_signal(self) -> int | None:
        """The signal that ended the main process, from the runtime or the exit code."""
        if self.signal:
            return self.signal
        if SIGNAL_BASE < self.exit_code <= SIGNAL_BASE + 64:
            return self.exit_code - SIGNAL_BASE
        return None


@dataclass(frozen=True, slots=True)
class LastReading:
    """The last working set before the end, against the limit."""

    working_set: int
    limit: int | None
    seconds_before: float | None  # None: the end's time is unknown
    source: ReadingSource

    @property
    def percent_of_limit(self) -> float | None:
        return 100 * self.working_set / self.limit if self.limit else None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"workingSetBytes": self.working_set, "source": self.source.value}
        if self.limit:
            doc["limitBytes"] = self.limit
            doc["percentOfLimit"] = f"{self.percent_of_limit:.1f}%"
        if self.seconds_before is not None:
            doc["secondsBeforeEnd"] = round(self.seconds_before, 1)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LastReading:
        working_set = doc.get("workingSetBytes")
        if isinstance(working_set, bool) or not isinstance(working_set, int):
            raise ValueError(f"lastReading.workingSetBytes must be an integer, got {working_set!r}")
        limit = doc.get("limitBytes")
        before = doc.get("secondsBeforeEnd")
        return cls(
            working_set=working_set,
            limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
            seconds_before=float(before) if isinstance(before, int | float) else None,
            source=ReadingSource(str(doc.get("source") or ReadingSource.SAMPLER.value)),
        )


@dataclass(frozen=True, slots=True)
class Attribution:
    """What ended the run, whose limit or hand it was, how sure, and why."""

    ending: Ending
    cause: Cause
    confidence: Confidence
    evidence: str  # the conclusion and what it rests on, in words
    reason: str  # the kubelet's terminated.reason, as it said it
    exit_code: int
    last_reading: LastReading | None = None
    pod_end: PodEnd | None = None

    @property
    def oom_killed(self) -> bool:
        """Counted as an OOM kill (status.oomKills): the kernel's OOM killer ended it."""
        return self.ending is Ending.OOM_KILLED

    @property
    def percent_of_limit(self) -> float | None:
        return self.last_reading.percent_of_limit if self.last_reading else None

    def to_json(self) -> dict[str, Any]:
        """The attribution's fields of a status.oomKills (or otherTerminations) entry."""
        doc: dict[str, Any] = {
            "ending": self.ending.value,
            "cause": self.cause.value,
            "confidence": self.confidence.value,
            "reason": self.reason,
            "exitCode": self.exit_code,
            "evidence": self.evidence[:MAX_MESSAGE],
        }
        if self.last_reading is not None:
            doc["lastReading"] = self.last_reading.to_json()
        if self.pod_end is not None:
            doc["podReason"] = self.pod_end.reason
            doc["podMessage"] = self.pod_end.message[:MAX_MESSAGE]
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Attribution:
        """Read back `to_json` (ValueError for a shape that is not one)."""
        exit_code = doc.get("exitCode")
        if isinstance(exit_code, bool) or not isinstance(exit_code, int):
            raise ValueError(f"exitCode must be an integer, got {exit_code!r}")
        reading = doc.get("lastReading")
        pod_reason = doc.get("podReason")
        return cls(
            ending=Ending(str(doc.get("ending"))),
            cause=Cause(str(doc.get("cause"))),
            confidence=Confidence(str(doc.get("confidence"))),
            evidence=str(doc.get("evidence") or ""),
            reason=str(doc.get("reason") or ""),
            exit_code=exit_code,
            last_reading=LastReading.from_json(reading) if isinstance(reading, Mapping) else None,
            pod_end=PodEnd(pod_reason, str(doc.get("podMessage") or ""))
            if isinstance(pod_reason, str) and pod_reason
            else None,
        )


def reportable(reason: str, exit_code: int, signal: int | None, *, pod_end: bool) -> bool:
    """Whether an end is told at all: OOMKilled, a SIGKILL, a SIGTERM, or the end of an
    evicted (or shut down) pod. A clean exit or a crash is not a kill."""
    if reason == OOM_KILLED_REASON or pod_end:
        return True
    facts = EndFacts(reason=reason, exit_code=exit_code, signal=signal)
    return reason in GENERIC_REASONS and facts.killed_by_signal in (SIGKILL, SIGTERM)


def pod_end_of(pod_status: Mapping[str, Any]) -> PodEnd | None:
    """The pod's eviction or node shutdown, from its status (None for any other pod)."""
    reason = pod_status.get("reason")
    if not isinstance(reason, str) or reason not in EVICTION_REASONS | SHUTDOWN_REASONS:
        return None
    message = pod_status.get("message")
    return PodEnd(reason, message if isinstance(message, str) else "")


def attribute(facts: EndFacts, *, fresh: float = FRESH) -> Attribution | None:
    """The attribution of one end by the module's rules; None for an end that is no kill."""
    last = _last_reading(facts)
    signal = facts.killed_by_signal
    code = _exit_words(facts.exit_code, signal)
    said = f"the kubelet reports {facts.reason or 'no reason'} with {code}"
    reading = _reading_clause(last)
    then = f"; {reading}" if reading else ""

    def made(ending: Ending, cause: Cause, confidence: Confidence, why: str) -> Attribution:
        return Attribution(
            ending=ending,
            cause=cause,
            confidence=confidence,
            evidence=f"{ending.value} ({cause.value}, confidence {confidence.value}): {why}",
            reason=facts.reason,
            exit_code=facts.exit_code,
            last_reading=last,
            pod_end=facts.pod_end,
        )

    if facts.reason == OOM_KILLED_REASON and signal == SIGKILL:
        cause, confidence, why = _oom_kill(facts, last, reading, fresh)
        evicted = (
            f"; the kubelet then evicted the pod: {facts.pod_end.message!r}"
            if facts.pod_end
            else ""
        )
        return made(Ending.OOM_KILLED, cause, confidence, f"{said}; {why}{evicted}")
    if facts.pod_end is not None and facts.pod_end.reason in EVICTION_REASONS:
        message = facts.pod_end.message.strip() or "no message"
        storage = _STORAGE_LIMIT.search(message) is not None
        low = _NODE_LOW.search(message)
        preempted = facts.pod_end.reason == "Preempting"
        what = (
            "a local-storage limit of the pod, not its memory limit"
            if storage
            else f"the node ran low on {low.group(1)}"
            if low
            else "to make room for a critical pod"
            if preempted
            else "the node's decision"
        )
        ended = (
            "the kubelet lost track of the container as it stopped the pod "
            f"({facts.reason}, {code} of the kubelet's own making)"
            if facts.reason == LOST_REASON
            else f"the container then ended with {code}"
        )
        return made(
            Ending.EVICTED,
            Cause.STORAGE_LIMIT if storage else Cause.NODE,
            Confidence.HIGH,
            f"the kubelet {'preempted' if preempted else 'evicted'} the pod ({what}): "
            f"{message!r}; {ended}{then}",
        )
    if facts.pod_end is not None:  # a node shutdown
        message = facts.pod_end.message.strip() or "no message"
        return made(
            Ending.TERMINATED,
            Cause.NODE,
            Confidence.HIGH,
            f"the node shut down: {message!r}; the container ended with {code}",
        )
    if facts.reason == OOM_KILLED_REASON:
        ended = (
            "the main process ended on SIGTERM"
            if signal == SIGTERM
            else "the main process exited by itself"
        )
        return made(
            Ending.TERMINATED if signal == SIGTERM else Ending.EXITED,
            Cause.OUTSIDE if signal == SIGTERM else Cause.PROCESS,
            Confidence.MEDIUM,
            f"{said}, which contradicts it: {ended}, not by the OOM killer (SIGKILL, 137). "
            "containerd reports OOMKilled for a container whose cgroup saw any OOM kill during "
            f"its life (a child process's, say){then}",
        )
    if facts.reason not in GENERIC_REASONS:
        return None
    if signal == SIGKILL:
        who = (
            "a person or a program with kill -9, the kubelet after a grace period or a failed "
            "liveness probe, or the node's OOM killer, which the node's kernel log would show"
        )
        percent = _fresh_percent(last, fresh)
        if percent is None:
            stale = last is not None and last.limit and not _is_fresh(last, fresh)
            why = (
                "no working set of this run was read before it"
                if reading is None
                else f"{reading}: too long before to tell how near the limit it was"
                if stale
                else reading
            )
            return made(
                Ending.KILLED,
                Cause.OUTSIDE,
                Confidence.MEDIUM,
                f"{said}, without OOMKilled: a SIGKILL from outside the container's OOM killer "
                f"({who}); {why}",
            )
        if percent >= NEAR_LIMIT:
            return made(
                Ending.KILLED,
                Cause.OUTSIDE,
                Confidence.LOW,
                f"{said}, without OOMKilled: a SIGKILL ({who}); but {reading}: an OOM kill "
                "the kubelet did not attribute is possible",
            )
        return made(
            Ending.KILLED,
            Cause.OUTSIDE,
            Confidence.HIGH,
            f"{said}, without OOMKilled: a SIGKILL from outside ({who}), not the memory limit: "
            f"{reading}, far from it",
        )
    if signal == SIGTERM:
        return made(
            Ending.TERMINATED,
            Cause.OUTSIDE,
            Confidence.HIGH,
            f"{said}: the process was stopped by SIGTERM from outside (a person, the kubelet "
            f"stopping it, a failed liveness probe), not by a memory kill{then}",
        )
    return None


def _oom_kill(
    facts: EndFacts, last: LastReading | None, reading: str | None, fresh: float
) -> tuple[Cause, Confidence, str]:
    if not facts.limit:
        return (
            Cause.NODE,
            Confidence.MEDIUM,
            "the container has no memory limit of its own, so the OOM killer acted for the "
            "node (or a pod-level limit)" + (f"; {reading}" if reading else ""),
        )
    if last is None or reading is None:
        return (
            Cause.CONTAINER_LIMIT,
            Confidence.MEDIUM,
            "the kubelet's word alone: no working set of this run was read before the kill",
        )
    percent = _fresh_percent(last, fresh)
    if percent is None:
        return (
            Cause.CONTAINER_LIMIT,
            Confidence.MEDIUM,
            f"{reading}: too long before the kill to corroborate it",
        )
    if percent >= NEAR_LIMIT:
        return (
            Cause.CONTAINER_LIMIT,
            Confidence.HIGH,
            f"{reading}: the kernel's OOM killer in the container's cgroup, at its memory limit",
        )
    if percent < FAR_BELOW:
        return (
            Cause.NODE,
            Confidence.LOW,
            f"{reading}, far below it: an OOM of the node (or of the pod's cgroup) under memory "
            "pressure is likelier than the container's own limit, unless the memory jumped "
            "within those seconds",
        )
    return (
        Cause.CONTAINER_LIMIT,
        Confidence.MEDIUM,
        f"{reading}: it had to grow the rest of the way within those seconds",
    )


def _last_reading(facts: EndFacts) -> LastReading | None:
    if facts.reading is None:
        return None
    before = (
        max(0.0, facts.finished_at - facts.reading.at) if facts.finished_at is not None else None
    )
    return LastReading(facts.reading.working_set, facts.limit, before, facts.reading.source)


def _is_fresh(last: LastReading, fresh: float) -> bool:
    return last.seconds_before is not None and last.seconds_before <= fresh


def _fresh_percent(last: LastReading | None, fresh: float) -> float | None:
    """The reading's % of the limit when it is fresh enough to judge the end by."""
    if last is None or not _is_fresh(last, fresh):
        return None
    return last.percent_of_limit


def _reading_clause(last: LastReading | None) -> str | None:
    """'the working set was 97.3% of the 160 MiB limit 4 s before' (None without a reading)."""
    if last is None:
        return None
    what = (
        f"{last.percent_of_limit:.1f}% of the {_mib(last.limit)} limit"
        if last.limit and last.percent_of_limit is not None
        else f"{_mib(last.working_set)} (no memory limit)"
    )
    # The kubelet's finishedAt has whole seconds: a reading within one of it is "at the end".
    when = (
        "at an unknown time before"
        if last.seconds_before is None
        else "within a second of the end"
        if last.seconds_before < 1
        else f"{last.seconds_before:.0f} s before"
    )
    source = "" if last.source is ReadingSource.SAMPLER else " (in the last snapshot)"
    return f"the working set was {what} {when}{source}"


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def _exit_words(exit_code: int, signal: int | None) -> str:
    names = {SIGKILL: "SIGKILL", SIGTERM: "SIGTERM"}
    if signal is not None and exit_code == SIGNAL_BASE + signal:
        return f"exit code {exit_code} (128 + {names.get(signal, f'signal {signal}')})"
    if signal is not None:
        return f"exit code {exit_code} and signal {names.get(signal, str(signal))}"
    return f"exit code {exit_code}"
