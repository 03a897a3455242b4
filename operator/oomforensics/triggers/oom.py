"""Container runs and OOM kills, read from pod JSON (plain dicts in the Kubernetes API shape).

A container run is one life of a container: (pod uid, container name, restartCount). The
kubelet takes restartCount from the container instance itself, so a dead instance keeps the
count it ran with: while it is dead and not yet restarted, `state.terminated` describes run N
and restartCount still says N; once restarted, restartCount says N + 1 and
`lastState.terminated` describes run N. Both views name the same killed run, N.

Detection is level-based: every termination visible in a pod status is attributed to its run,
and a kill is new when its run was not already visible as killed in the previous observation
of the same pod (same uid: a new pod with the same name is another pod, all of its kills are
new). So it catches a kill at either moment, does not report it twice between two
observations, and needs no memory beyond the previous pod. Without a previous observation
(the operator just started, or the pod is new to it) every kill visible is reported unless it
finished before `since` (POSIX seconds; a kill without a readable finishedAt is reported).
Across operator restarts a kill may be reported again: callers key kills by run, which makes
recording them idempotent.

The pod status only keeps the last termination: if a container restarts several times between
two observations, only the latest kill can be seen.

Certainty: the kubelet reports reason "OOMKilled" when the container's cgroup OOM killer
killed it. Exit code 137 (128 + SIGKILL) with reason "Error" is only a SIGKILL: possibly an OOM
kill the kubelet did not attribute (a child process killed, a node-level OOM), but also a
liveness probe or grace-period kill. Only OOMKilled is certain; bare SIGKILLs are reported,
flagged `suspected`, when asked for.

`detect_ends` finds, by the same rules, every end worth telling apart (triggers/attribution.py
judges them): OOMKilled whatever the exit code, a SIGKILL or a SIGTERM with a generic reason,
and the last run of a pod the kubelet evicted or its node shut down (pod status.reason, with
the message). A pod being deleted is stopped on purpose: its containers' current ends are left
out unless the kubelet says OOMKilled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oomforensics.triggers.attribution import PodEnd, pod_end_of, reportable
from oomforensics.triggers.model import ContainerRun

OOM_KILLED = "OOMKilled"
SIGKILL = 9
SIGKILL_EXIT_CODE = 128 + SIGKILL
# Reasons under which a bare SIGKILL may hide an OOM kill. Not "ContainerStatusUnknown": the
# kubelet writes exit code 137 itself when it lost track of a container.
_SIGKILL_REASONS = frozenset({"Error", ""})
LOST = "ContainerStatusUnknown"  # the kubelet's reason for a container it lost track of


@dataclass(frozen=True, slots=True)
class Termination:
    """A container's `terminated` state as the kubelet reports it."""

    reason: str
    exit_code: int
    started_at: str | None  # RFC 3339, as in the pod status
    finished_at: str | None
    signal: int | None
    container_id: str | None = None

    @classmethod
    def from_status(cls, terminated: Mapping[str, Any]) -> Termination:
        """From a ContainerStateTerminated object (`state.terminated`/`lastState.terminated`)."""
        return cls(
            reason=_str(terminated.get("reason")) or "",
            exit_code=_int(terminated.get("exitCode")) or 0,
            started_at=_str(terminated.get("startedAt")),
            finished_at=_str(terminated.get("finishedAt")),
            signal=_int(terminated.get("signal")),
            container_id=_str(terminated.get("containerID")),
        )

    def finished_at_seconds(self) -> float | None:
        """finishedAt as POSIX seconds, None when absent or unreadable."""
        return parse_time(self.finished_at)


@dataclass(frozen=True, slots=True)
class OomKill:
    """A run that was killed. `suspected`: a bare SIGKILL, not a kubelet-reported OOM kill."""

    run: ContainerRun
    termination: Termination
    suspected: bool = False


@dataclass(frozen=True, slots=True)
class ObservedEnd:
    """A run's end worth telling apart, as a pod version shows it."""

    run: ContainerRun
    termination: Termination
    pod_end: PodEnd | None = None  # the pod's eviction (or node shutdown): its last run only


def is_oom(termination: Termination) -> bool:
    """Certain: the kubelet says the cgroup OOM killer ended the container."""
    return termination.reason == OOM_KILLED


def is_suspected_oom(termination: Termination) -> bool:
    """A SIGKILL (exit code 137 or signal 9) with a generic reason: maybe an OOM kill."""
    if is_oom(termination) or termination.reason not in _SIGKILL_REASONS:
        return False
    return termination.exit_code == SIGKILL_EXIT_CODE or termination.signal == SIGKILL


def pod_uid(pod: Mapping[str, Any]) -> str:
    """metadata.uid: what tells pods apart (names are reused)."""
    uid = _str(_mapping(pod.get("metadata")).get("uid"))
    if not uid:
        raise ValueError("not a pod from the API server: metadata.uid is missing")
    return uid


def run_of(pod: Mapping[str, Any], container: str, restart_count: int) -> ContainerRun:
    """The run `restart_count` of `container` in this pod incarnation."""
    meta = _mapping(pod.get("metadata"))
    return ContainerRun(
        namespace=_str(meta.get("namespace")) or "",
        pod=_str(meta.get("name")) or "",
        pod_uid=pod_uid(pod),
        container=container,
        restart_count=restart_count,
    )


def container_runs(pod: Mapping[str, Any]) -> dict[str, ContainerRun]:
    """The current run of each container, by container name (empty before the pod has status)."""
    pod_uid(pod)  # raises for a pod without a uid, even before it has statuses
    runs: dict[str, ContainerRun] = {}
    for status in _container_statuses(pod):
        name = _str(status.get("name"))
        if name:
            runs[name] = run_of(pod, name, _int(status.get("restartCount")) or 0)
    return runs


def _run_of_last_state(
    status: Mapping[str, Any], last: Mapping[str, Any], restart_count: int
) -> int | None:
    """The run `lastState.terminated` ended. Usually the one before the current instance
    (restartCount - 1); but while the dead instance waits out its back-off
    (CrashLoopBackOff) no new one exists: the status's containerID is still the dead one's,
    lastState describes it, and restartCount is still its own."""
    container_id = _str(status.get("containerID"))
    if container_id and container_id == _str(last.get("containerID")):
        return restart_count
    return restart_count - 1 if restart_count > 0 else None


def terminations(pod: Mapping[str, Any]) -> dict[ContainerRun, Termination]:
    """Every termination the pod status shows, by the run it ended.

    `state.terminated` ended the current run (restartCount); `lastState.terminated` ended the
    one before it (restartCount - 1), or the current one while it waits out its back-off.
    """
    pod_uid(pod)  # raises for a pod without a uid, even before it has statuses
    found: dict[ContainerRun, Termination] = {}
    for status in _container_statuses(pod):
        name = _str(status.get("name"))
        if not name:
            continue
        restart_count = _int(status.get("restartCount")) or 0
        last = _mapping(_mapping(status.get("lastState")).get("terminated"))
        last_run = _run_of_last_state(status, last, restart_count)
        if last and last_run is not None:
            found[run_of(pod, name, last_run)] = Termination.from_status(last)
        current = _mapping(_mapping(status.get("state")).get("terminated"))
        if current:
            found[run_of(pod, name, restart_count)] = Termination.from_status(current)
    return found


def detect_oom_kills(
    previous_pod: Mapping[str, Any] | None,
    pod: Mapping[str, Any],
    *,
    since: float | None = None,
    include_suspected: bool = False,
) -> list[OomKill]:
    """The OOM kills visible in `pod` and not already visible in `previous_pod`.

    See the module docstring for the rules. `since` only applies without a previous
    observation of the same pod. Kills come in pod status order, older runs first.
    """
    seen: set[ContainerRun] = set()
    first_observation = previous_pod is None or pod_uid(previous_pod) != pod_uid(pod)
    if previous_pod is not None and not first_observation:
        seen = {
            run
            for run, termination in terminations(previous_pod).items()
            if _kill(termination, include_suspected) is not None
        }
    kills: list[OomKill] = []
    for run, termination in terminations(pod).items():
        suspected = _kill(termination, include_suspected)
        if suspected is None or run in seen:
            continue
        if first_observation and since is not None:
            finished = termination.finished_at_seconds()
            if finished is not None and finished < since:
                continue
        kills.append(OomKill(run=run, termination=termination, suspected=suspected))
    order = {name: i for i, name in enumerate(container_runs(pod))}
    kills.sort(key=lambda k: (order.get(k.run.container, len(order)), k.run.restart_count))
    return kills


def ends(pod: Mapping[str, Any]) -> dict[ContainerRun, ObservedEnd]:
    """Every end in the pod status worth telling apart, by the run it ended (see
    `detect_ends`)."""
    pod_uid(pod)  # raises for a pod without a uid, even before it has statuses
    status = _mapping(pod.get("status"))
    pod_end = pod_end_of(status)
    deleting = bool(_mapping(pod.get("metadata")).get("deletionTimestamp"))
    found: dict[ContainerRun, ObservedEnd] = {}
    for entry in _container_statuses(pod):
        name = _str(entry.get("name"))
        if not name:
            continue
        restart_count = _int(entry.get("restartCount")) or 0
        last = _mapping(_mapping(entry.get("lastState")).get("terminated"))
        current = _mapping(_mapping(entry.get("state")).get("terminated"))
        # A kubelet stopping a pod (an eviction) may lose track of the running container: it
        # then writes ContainerStatusUnknown (137) for it in lastState, counts a restart, and
        # puts a placeholder run that never started in state (seen on the test cluster). The
        # eviction ended the run in lastState; the placeholder is no run at all.
        placeholder = current.get("reason") == LOST and not current.get("startedAt") and bool(last)
        last_run = _run_of_last_state(entry, last, restart_count)
        if last and last_run is not None:
            lost = pod_end if placeholder or last.get("reason") == LOST else None
            end = ObservedEnd(run_of(pod, name, last_run), Termination.from_status(last), lost)
            if _reportable(end):
                found[end.run] = end
        if current and not placeholder:
            termination = Termination.from_status(current)
            end = ObservedEnd(run_of(pod, name, restart_count), termination, pod_end)
            if _reportable(end) and (not deleting or is_oom(termination)):
                found[end.run] = end
    return found


def detect_ends(
    previous_pod: Mapping[str, Any] | None, pod: Mapping[str, Any], *, since: float | None = None
) -> list[ObservedEnd]:
    """The ends visible in `pod` and not already visible in `previous_pod` (the rules of
    `detect_oom_kills`, for every end `ends` reports)."""
    first_observation = previous_pod is None or pod_uid(previous_pod) != pod_uid(pod)
    seen = set() if previous_pod is None or first_observation else set(ends(previous_pod))
    found: list[ObservedEnd] = []
    for run, end in ends(pod).items():
        if run in seen:
            continue
        if first_observation and since is not None:
            finished = end.termination.finished_at_seconds()
            if finished is not None and finished < since:
                continue
        found.append(end)
    order = {name: i for i, name in enumerate(container_runs(pod))}
    found.sort(key=lambda e: (order.get(e.run.container, len(order)), e.run.restart_count))
    return found


def _reportable(end: ObservedEnd) -> bool:
    t = end.termination
    return reportable(t.reason, t.exit_code, t.signal, pod_end=end.pod_end is not None)


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 time from the API ("2024-05-01T12:00:00Z") as POSIX seconds."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the API server writes UTC
    return moment.timestamp()


def _kill(termination: Termination, include_suspected: bool) -> bool | None:
    """None: not a kill to report; otherwise whether it is only suspected."""
    if is_oom(termination):
        return False
    if include_suspected and is_suspected_oom(termination):
        return True
    return None


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statuses = _mapping(pod.get("status")).get("containerStatuses")
    if not isinstance(statuses, list):
        return []
    return [s for s in statuses if isinstance(s, Mapping)]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
