"""OOM kills told apart: every rule of triggers/attribution.py, one row each, and the pod
shapes they are read from (the kubelet's words, the pod's eviction, the last reading)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from oomforensics.triggers.attribution import (
    FRESH,
    Attribution,
    Cause,
    Confidence,
    EndFacts,
    Ending,
    PodEnd,
    Reading,
    ReadingSource,
    attribute,
    pod_end_of,
    reportable,
)
from oomforensics.triggers.oom import detect_ends, ends
from tests.unit.triggers.pods import UID, container_status, pod, terminated

MiB = 2**20
LIMIT = 160 * MiB
KILLED_AT = 1_700_000_000.0
EMPTY_DIR = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
EPHEMERAL = 'Container app exceeded its local ephemeral storage limit "2Mi". '
POD_STORAGE = "Pod ephemeral local storage usage exceeds the total limit of containers 4Mi. "
NODE_MEMORY = (
    "The node was low on resource: memory. Threshold quantity: 100Mi, available: 60Mi. "
    "Container app was using 900Mi, request is 0, has larger consumption of memory. "
)
SHUTDOWN = "Pod was terminated in response to imminent node shutdown."


def read(percent: float, seconds_before: float = 3.0, limit: int = LIMIT) -> Reading:
    return Reading(int(limit * percent / 100), KILLED_AT - seconds_before, ReadingSource.SAMPLER)


@dataclass(frozen=True)
class Case:
    name: str
    facts: EndFacts
    ending: Ending
    cause: Cause
    confidence: Confidence
    says: str  # a phrase the evidence must hold


def facts(
    reason: str,
    exit_code: int,
    reading: Reading | None = None,
    *,
    limit: int | None = LIMIT,
    signal: int | None = None,
    pod_end: PodEnd | None = None,
    finished: float | None = KILLED_AT,
) -> EndFacts:
    return EndFacts(reason, exit_code, signal, finished, pod_end, limit, reading)


CASES = [
    # 1. The kernel's OOM killer, corroborated by the working set (or not).
    Case("oom at the limit", facts("OOMKilled", 137, read(98)), Ending.OOM_KILLED,
         Cause.CONTAINER_LIMIT, Confidence.HIGH, "98.0% of the 160 MiB limit 3 s before"),
    Case("oom at exactly the near bar", facts("OOMKilled", 137, read(80)), Ending.OOM_KILLED,
         Cause.CONTAINER_LIMIT, Confidence.HIGH, "at its memory limit"),
    Case("oom between the bars", facts("OOMKilled", 137, read(65)), Ending.OOM_KILLED,
         Cause.CONTAINER_LIMIT, Confidence.MEDIUM, "grow the rest of the way"),
    Case("oom far below the limit", facts("OOMKilled", 137, read(30)), Ending.OOM_KILLED,
         Cause.NODE, Confidence.LOW, "far below it"),
    Case("oom, a stale reading", facts("OOMKilled", 137, read(98, FRESH + 1)),
         Ending.OOM_KILLED, Cause.CONTAINER_LIMIT, Confidence.MEDIUM, "too long before"),
    Case("oom, a far reading but stale", facts("OOMKilled", 137, read(20, 600)),
         Ending.OOM_KILLED, Cause.CONTAINER_LIMIT, Confidence.MEDIUM, "600 s before"),
    Case("oom, no reading", facts("OOMKilled", 137), Ending.OOM_KILLED,
         Cause.CONTAINER_LIMIT, Confidence.MEDIUM, "the kubelet's word alone"),
    Case("oom, no kill time", facts("OOMKilled", 137, read(98), finished=None),
         Ending.OOM_KILLED, Cause.CONTAINER_LIMIT, Confidence.MEDIUM, "unknown time"),
    Case("oom without a memory limit", facts("OOMKilled", 137, read(90), limit=None),
         Ending.OOM_KILLED, Cause.NODE, Confidence.MEDIUM, "no memory limit of its own"),
    Case("oom, the runtime names signal 9", facts("OOMKilled", 0, read(95), signal=9),
         Ending.OOM_KILLED, Cause.CONTAINER_LIMIT, Confidence.HIGH, "signal SIGKILL"),
    Case("oom, then evicted", facts("OOMKilled", 137, read(99), pod_end=PodEnd("Evicted",
         NODE_MEMORY)), Ending.OOM_KILLED, Cause.CONTAINER_LIMIT, Confidence.HIGH,
         "then evicted the pod"),
    Case("oom, a reading from the last snapshot", facts("OOMKilled", 137, Reading(
         int(LIMIT * 0.95), KILLED_AT - 5, ReadingSource.SNAPSHOT)), Ending.OOM_KILLED,
         Cause.CONTAINER_LIMIT, Confidence.HIGH, "(in the last snapshot)"),
    # 2. Evicted by the kubelet: the message says whose limit.
    Case("emptyDir sizeLimit", facts("Error", 2, read(10), pod_end=PodEnd("Evicted",
         EMPTY_DIR)), Ending.EVICTED, Cause.STORAGE_LIMIT, Confidence.HIGH,
         "local-storage limit of the pod, not its memory limit"),
    Case("container ephemeral-storage limit", facts("Error", 137, pod_end=PodEnd("Evicted",
         EPHEMERAL)), Ending.EVICTED, Cause.STORAGE_LIMIT, Confidence.HIGH, "2Mi"),
    Case("pod ephemeral-storage limit", facts("Completed", 0, pod_end=PodEnd("Evicted",
         POD_STORAGE)), Ending.EVICTED, Cause.STORAGE_LIMIT, Confidence.HIGH, "4Mi"),
    Case("node memory pressure", facts("Error", 143, read(40), pod_end=PodEnd("Evicted",
         NODE_MEMORY)), Ending.EVICTED, Cause.NODE, Confidence.HIGH,
         "the node ran low on memory"),
    Case("eviction without a message", facts("Error", 137, pod_end=PodEnd("Evicted", "")),
         Ending.EVICTED, Cause.NODE, Confidence.HIGH, "no message"),
    Case("preempted for a critical pod", facts("Error", 137, pod_end=PodEnd("Preempting",
         "Preempted in order to admit critical pod")), Ending.EVICTED, Cause.NODE,
         Confidence.HIGH, "preempted the pod"),
    # 3. The node shut down.
    Case("node shutdown", facts("Error", 143, pod_end=PodEnd("Terminated", SHUTDOWN)),
         Ending.TERMINATED, Cause.NODE, Confidence.HIGH, "the node shut down"),
    # 4. OOMKilled that the exit code contradicts.
    Case("OOMKilled on exit 143", facts("OOMKilled", 143, read(40)), Ending.TERMINATED,
         Cause.OUTSIDE, Confidence.MEDIUM, "ended on SIGTERM, not by the OOM killer"),
    Case("OOMKilled on exit 0", facts("OOMKilled", 0), Ending.EXITED, Cause.PROCESS,
         Confidence.MEDIUM, "exited by itself"),
    Case("OOMKilled on exit 2", facts("OOMKilled", 2, read(20)), Ending.EXITED, Cause.PROCESS,
         Confidence.MEDIUM, "a child process"),
    # 5. A SIGKILL without the reason: from outside.
    Case("sigkill far from the limit", facts("Error", 137, read(20)), Ending.KILLED,
         Cause.OUTSIDE, Confidence.HIGH, "not the memory limit"),
    Case("sigkill near the limit", facts("Error", 137, read(97)), Ending.KILLED,
         Cause.OUTSIDE, Confidence.LOW, "did not attribute is possible"),
    Case("sigkill, no reading", facts("Error", 137), Ending.KILLED, Cause.OUTSIDE,
         Confidence.MEDIUM, "no working set of this run was read"),
    Case("sigkill, a stale reading", facts("", 137, read(20, 900)), Ending.KILLED,
         Cause.OUTSIDE, Confidence.MEDIUM, "too long before to tell"),
    Case("sigkill without a limit", facts("Error", 137, read(20), limit=None), Ending.KILLED,
         Cause.OUTSIDE, Confidence.MEDIUM, "(no memory limit)"),
    Case("sigkill named by the runtime", facts("Error", 0, read(10), signal=9),
         Ending.KILLED, Cause.OUTSIDE, Confidence.HIGH, "with kill -9"),
    # 6. SIGTERM.
    Case("sigterm", facts("Error", 143, read(30)), Ending.TERMINATED, Cause.OUTSIDE,
         Confidence.HIGH, "exit code 143 (128 + SIGTERM)"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_end_is_told_apart_with_its_evidence(case: Case) -> None:
    told = attribute(case.facts)
    assert told is not None
    assert (told.ending, told.cause, told.confidence) == (case.ending, case.cause, case.confidence)
    assert case.says in told.evidence, told.evidence
    assert told.evidence.startswith(f"{case.ending} ({case.cause}, confidence {case.confidence})")
    assert told.oom_killed is (case.ending is Ending.OOM_KILLED)
    assert (told.reason, told.exit_code) == (case.facts.reason, case.facts.exit_code)
    assert reportable(
        case.facts.reason,
        case.facts.exit_code,
        case.facts.signal,
        pod_end=case.facts.pod_end is not None,
    )
    assert Attribution.from_json(told.to_json()) == told


NOT_KILLS = [
    ("a clean exit", "Completed", 0),
    ("a crash", "Error", 1),
    ("a Go panic", "Error", 2),
    ("a container the kubelet lost track of", "ContainerStatusUnknown", 137),
    ("a container that could not start", "ContainerCannotRun", 128),
    ("another signal", "Error", 134),
]


@pytest.mark.parametrize(
    ("reason", "exit_code"), [c[1:] for c in NOT_KILLS], ids=[c[0] for c in NOT_KILLS]
)
def test_ends_that_are_no_kill_are_not_told(reason: str, exit_code: int) -> None:
    assert attribute(facts(reason, exit_code, read(99))) is None
    assert not reportable(reason, exit_code, None, pod_end=False)


def test_the_last_reading_says_how_near_and_how_long_before() -> None:
    told = attribute(facts("OOMKilled", 137, read(97.25, 4.04)))
    assert told is not None and told.last_reading is not None
    assert told.last_reading.to_json() == {
        "workingSetBytes": int(LIMIT * 0.9725),
        "limitBytes": LIMIT,
        "percentOfLimit": "97.2%",
        "secondsBeforeEnd": 4.0,
        "source": "sampler",
    }
    # A reading stamped after the end (metrics lag the kill) is from before it: 0 s.
    late = attribute(facts("OOMKilled", 137, read(97, -2)))
    assert late is not None and late.last_reading is not None
    assert late.last_reading.seconds_before == 0.0
    # The operator may judge freshness by its own sampling interval.
    judged = attribute(facts("OOMKilled", 137, read(97, 30)), fresh=10)
    assert judged is not None and judged.confidence is Confidence.MEDIUM


def test_the_status_form_names_the_kubelets_words_and_the_pods() -> None:
    told = attribute(facts("Error", 2, pod_end=PodEnd("Evicted", EMPTY_DIR)))
    assert told is not None
    doc = told.to_json()
    assert doc["ending"] == "Evicted" and doc["cause"] == "StorageLimit"
    assert doc["confidence"] == "high" and doc["reason"] == "Error" and doc["exitCode"] == 2
    assert doc["podReason"] == "Evicted" and doc["podMessage"] == EMPTY_DIR
    assert "lastReading" not in doc
    with pytest.raises(ValueError, match="exitCode"):
        Attribution.from_json({**doc, "exitCode": "2"})
    with pytest.raises(ValueError):
        Attribution.from_json({**doc, "ending": "Vanished"})


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"phase": "Failed", "reason": "Evicted", "message": EMPTY_DIR},
         PodEnd("Evicted", EMPTY_DIR)),
        ({"phase": "Failed", "reason": "Preempting"}, PodEnd("Preempting", "")),
        ({"phase": "Failed", "reason": "Terminated", "message": SHUTDOWN},
         PodEnd("Terminated", SHUTDOWN)),
        ({"phase": "Failed", "reason": "DeadlineExceeded"}, None),
        ({"phase": "Running"}, None),
    ],
)  # fmt: skip
def test_the_pods_own_word_on_why_it_stopped(status: dict[str, str], expected: PodEnd) -> None:
    assert pod_end_of(status) == expected


# --- the ends a pod version shows, and which are new -------------------------------------


def evicted(*statuses: dict[str, object], message: str = EMPTY_DIR) -> dict[str, object]:
    """A pod the kubelet evicted, as the API server shows it (phase, reason, message and the
    DisruptionTarget condition the kubelet adds)."""
    body = pod(*statuses)
    body["status"].update(
        phase="Failed",
        reason="Evicted",
        message=message,
        conditions=[
            {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
             "message": message},
        ],
    )  # fmt: skip
    return body


def test_an_eviction_names_the_last_run_only() -> None:
    oom_first = terminated("OOMKilled", 137, finished_at="2025-03-04T10:00:00Z")
    body = evicted(
        container_status("app", 1, terminated_now=terminated("Error", 2), last_terminated=oom_first)
    )
    found = ends(body)
    assert [(r.restart_count, e.pod_end) for r, e in found.items()] == [
        (0, None),  # the OOM kill before the restart is no eviction
        (1, PodEnd("Evicted", EMPTY_DIR)),
    ]


def test_a_sigkill_and_a_sigterm_are_ends_a_crash_is_not() -> None:
    killed = pod(container_status("app", 0, terminated_now=terminated("Error", 137)))
    stopped = pod(container_status("app", 1, last_terminated=terminated("Error", 143)))
    crashed = pod(container_status("app", 1, last_terminated=terminated("Error", 2)))
    assert [e.termination.exit_code for e in detect_ends(None, killed)] == [137]
    assert [e.run.restart_count for e in detect_ends(None, stopped)] == [0]
    assert detect_ends(None, crashed) == []


def test_an_end_is_new_once_and_an_eviction_after_a_plain_exit_is_new() -> None:
    running = pod(container_status("app", 0))
    exited = pod(container_status("app", 0, terminated_now=terminated("Error", 2)))
    body = evicted(container_status("app", 0, terminated_now=terminated("Error", 2)))
    assert detect_ends(running, exited) == []  # a Go process's exit 2 alone is no kill
    [end] = detect_ends(exited, body)  # the kubelet's eviction makes it one
    assert end.pod_end == PodEnd("Evicted", EMPTY_DIR) and end.run.pod_uid == UID
    assert detect_ends(body, body) == []


def test_a_pod_being_deleted_is_stopped_on_purpose_unless_oom_killed() -> None:
    stopping = pod(container_status("app", 0, terminated_now=terminated("Error", 143)))
    stopping["metadata"]["deletionTimestamp"] = "2025-03-04T10:13:00Z"
    assert detect_ends(None, stopping) == []
    oom = pod(container_status("app", 0, terminated_now=terminated("OOMKilled", 137)))
    oom["metadata"]["deletionTimestamp"] = "2025-03-04T10:13:00Z"
    assert len(detect_ends(None, oom)) == 1


def test_ends_before_the_investigation_are_not_new() -> None:
    old = pod(container_status("app", 1, last_terminated=terminated("Error", 137)))
    finished = 1741083161.0  # 2025-03-04T10:12:41Z
    assert detect_ends(None, old, since=finished + 1) == []
    assert len(detect_ends(None, old, since=finished - 1)) == 1


# --- the shapes the real kubelet wrote --------------------------------------------------
# Copied from the test cluster (kubelet v1.36.3, containerd 2.1.9, cgroup v1), 2026-12-02,
# pods of tests/fixtures/go/ender: kill -9 of the container's process; kill -TERM of it with
# shareProcessNamespace (so it is not PID 1); kill -TERM of it as PID 1 (Go exits 2: a
# signal with no handler of its own is ignored by a namespace's init); a child OOM-killed in
# the container's cgroup, then the main process sent SIGTERM; an emptyDir past its sizeLimit.
def real(last: dict[str, object] | None = None, now: dict[str, object] | None = None) -> dict:
    status = container_status("app", 1 if last else 0, last_terminated=last, terminated_now=now)
    return pod(status)


REAL = [
    ("kill -9", real({"exitCode": 137, "reason": "Error", "finishedAt": "2026-12-02T05:50:09Z",
                      "startedAt": "2026-12-02T05:47:34Z"}), Ending.KILLED, Cause.OUTSIDE),
    ("kill -TERM", real({"exitCode": 143, "reason": "Error", "finishedAt": "2026-12-02T05:47:34Z",
                         "startedAt": "2026-12-02T05:47:34Z"}), Ending.TERMINATED, Cause.OUTSIDE),
    ("child OOM-killed, then SIGTERM",
     real({"exitCode": 143, "reason": "OOMKilled", "finishedAt": "2026-12-02T05:50:11Z",
           "startedAt": "2026-12-02T05:47:34Z"}), Ending.TERMINATED, Cause.OUTSIDE),
    ("emptyDir past its sizeLimit", {
        **(body := real(now={"exitCode": 2, "reason": "Error",
                             "finishedAt": "2026-12-02T05:48:28Z",
                             "startedAt": "2026-12-02T05:47:34Z"})),
        "status": {**body["status"], "phase": "Failed", "reason": "Evicted",
                   "message": 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '},
    }, Ending.EVICTED, Cause.STORAGE_LIMIT),
]  # fmt: skip


@pytest.mark.parametrize(
    ("pod_", "ending", "cause"), [r[1:] for r in REAL], ids=[r[0] for r in REAL]
)
def test_the_real_kubelets_shapes_are_told_apart(pod_: dict, ending: Ending, cause: Cause) -> None:
    (end,) = detect_ends(None, pod_)
    t = end.termination
    told = attribute(EndFacts(t.reason, t.exit_code, t.signal, None, end.pod_end, LIMIT, None))
    assert told is not None and (told.ending, told.cause) == (ending, cause)


def test_an_eviction_whose_container_the_kubelet_lost_names_the_run_that_ran() -> None:
    # The other shape the test cluster's kubelet wrote for the emptyDir eviction (a race in
    # stopping the pod): run 0 lost (ContainerStatusUnknown in lastState, a restart counted)
    # and a placeholder run 1 that never started.
    lost = {"exitCode": 137, "finishedAt": None, "reason": "ContainerStatusUnknown",
            "startedAt": None}  # fmt: skip
    body = evicted(container_status("app", 1, terminated_now=lost, last_terminated={
        **lost, "message": "The container could not be located when the pod was deleted.  "
        "The container used to be Running"}))  # fmt: skip
    (end,) = detect_ends(None, body)
    assert end.run.restart_count == 0 and end.pod_end == PodEnd("Evicted", EMPTY_DIR)
    t = end.termination
    told = attribute(EndFacts(t.reason, t.exit_code, t.signal, None, end.pod_end, LIMIT, None))
    assert told is not None and (told.ending, told.cause) == (Ending.EVICTED, Cause.STORAGE_LIMIT)
    assert "lost track of the container" in told.evidence
    # Not evicted, a lost container is no kill the kubelet saw.
    assert detect_ends(None, pod(container_status("app", 1, last_terminated=lost))) == []


def test_a_go_process_as_pid_1_on_sigterm_exits_2_which_is_no_kill() -> None:
    term_as_pid_1 = real({"exitCode": 2, "reason": "Error", "finishedAt": "2026-12-02T05:47:34Z"})
    assert detect_ends(None, term_as_pid_1) == []
