"""Container runs and OOM kills from pod JSON, through the states a real OOM kill goes through:
running -> terminated (OOMKilled) -> waiting (CrashLoopBackOff) -> running again."""

from datetime import UTC, datetime

import pytest

from oomforensics.triggers import (
    ContainerRun,
    Termination,
    container_runs,
    detect_oom_kills,
    is_oom,
    is_suspected_oom,
)
from tests.unit.triggers.pods import OTHER_UID, UID, container_status, pod, terminated


def run(uid: str, container: str, restart_count: int) -> ContainerRun:
    """A run of the test pod (namespace shop, its default name)."""
    return ContainerRun("shop", "checkout-7d9f8b6c5d-x2x9q", uid, container, restart_count)


FINISHED = datetime(2025, 3, 4, 10, 12, 41, tzinfo=UTC).timestamp()


def test_container_runs_come_from_the_pod_uid_and_restart_counts():
    observed = pod(container_status("app", 3), container_status("envoy", 0))
    assert container_runs(observed) == {
        "app": run(UID, "app", 3),
        "envoy": run(UID, "envoy", 0),
    }


def test_a_pod_without_status_yet_has_no_runs_and_no_kills():
    pending = pod()
    del pending["status"]["containerStatuses"]
    assert container_runs(pending) == {}
    assert detect_oom_kills(None, pending) == []


def test_something_without_a_uid_is_not_a_pod_from_the_api_server():
    nameless = pod(container_status())
    del nameless["metadata"]["uid"]
    with pytest.raises(ValueError, match=r"metadata\.uid"):
        container_runs(nameless)


def test_a_restart_after_an_oom_kill_reports_the_run_that_was_killed():
    before = pod(container_status("app", 2, last_terminated=terminated("Error", 2)))
    after = pod(
        container_status(
            "app",
            3,
            running_since="2025-03-04T10:12:52Z",
            last_terminated=terminated(container_id="containerd://aa11"),
        )
    )
    [kill] = detect_oom_kills(before, after)
    assert kill.run == run(UID, "app", 2)  # restartCount 3 now: the killed run was 2
    assert kill.termination == Termination(
        reason="OOMKilled",
        exit_code=137,
        started_at="2025-03-04T09:00:00Z",
        finished_at="2025-03-04T10:12:41Z",
        signal=None,
        container_id="containerd://aa11",
    )
    assert kill.termination.finished_at_seconds() == FINISHED
    assert not kill.suspected


def test_an_oom_kill_is_reported_once_through_terminated_crashloop_and_running():
    running = pod(container_status("app", 0))
    dead = pod(container_status("app", 0, terminated_now=terminated()))
    backing_off = pod(
        container_status("app", 1, waiting="CrashLoopBackOff", last_terminated=terminated())
    )
    restarted = pod(container_status("app", 1, last_terminated=terminated()))

    assert detect_oom_kills(None, running) == []
    [kill] = detect_oom_kills(running, dead)  # seen as soon as the container is dead
    assert kill.run == run(UID, "app", 0)
    assert detect_oom_kills(dead, backing_off) == []  # the same run, seen from lastState
    assert detect_oom_kills(backing_off, restarted) == []
    assert detect_oom_kills(restarted, restarted) == []


def test_in_the_real_kubelets_back_off_the_dead_instance_keeps_its_run() -> None:
    """kubelet 1.36 (seen on the test cluster): while a dead container waits out its
    back-off, no new instance exists, so the status's containerID is still the dead one's,
    lastState.terminated describes it and restartCount is still its own: the kill is run 0's,
    seen at once, and the restart that follows shows the same kill again, not a new one."""
    dead_id = "containerd://app-0"
    backing_off = pod(
        container_status(
            "app", 0, waiting="CrashLoopBackOff", last_terminated=terminated(container_id=dead_id)
        )
    )
    restarted = pod(container_status("app", 1, last_terminated=terminated(container_id=dead_id)))
    [kill] = detect_oom_kills(pod(container_status("app", 0)), backing_off)
    assert kill.run == run(UID, "app", 0)
    assert detect_oom_kills(backing_off, restarted) == []
    # The second kill, in its back-off: run 1's, not run 0's again.
    again = pod(
        container_status(
            "app",
            1,
            waiting="CrashLoopBackOff",
            last_terminated=terminated(container_id="containerd://app-1"),
        )
    )
    assert [k.run.restart_count for k in detect_oom_kills(restarted, again)] == [1]


def test_a_kill_seen_only_after_the_restart_is_reported_then():
    running = pod(container_status("app", 0))
    backing_off = pod(
        container_status("app", 1, waiting="CrashLoopBackOff", last_terminated=terminated())
    )
    assert [k.run.restart_count for k in detect_oom_kills(running, backing_off)] == [0]


def test_a_restart_for_another_reason_is_not_an_oom_kill():
    before = pod(container_status("app", 0))
    crashed = pod(container_status("app", 1, last_terminated=terminated("Error", 2)))
    completed = pod(container_status("app", 1, last_terminated=terminated("Completed", 0)))
    assert detect_oom_kills(before, crashed) == []
    assert detect_oom_kills(before, completed) == []


def test_several_restarts_between_two_looks_leave_only_the_latest_kill_visible():
    before = pod(
        container_status("app", 2, last_terminated=terminated(finished_at="2025-03-04T08:00:00Z"))
    )
    after = pod(container_status("app", 5, last_terminated=terminated()))
    assert [k.run for k in detect_oom_kills(before, after)] == [run(UID, "app", 4)]


def test_a_sidecar_kill_names_the_sidecar():
    before = pod(container_status("app", 0), container_status("envoy", 0))
    after = pod(
        container_status("app", 0), container_status("envoy", 1, last_terminated=terminated())
    )
    assert [k.run for k in detect_oom_kills(before, after)] == [run(UID, "envoy", 0)]


def test_on_first_observation_a_visible_kill_is_reported_unless_older_than_since():
    observed = pod(container_status("app", 4, last_terminated=terminated()))
    [kill] = detect_oom_kills(None, observed)
    assert kill.run == run(UID, "app", 3)
    assert detect_oom_kills(None, observed, since=FINISHED - 60) == [kill]
    assert detect_oom_kills(None, observed, since=FINISHED + 60) == []


def test_a_kill_without_a_readable_finish_time_is_reported_rather_than_lost():
    observed = pod(container_status("app", 1, last_terminated=terminated(finished_at="")))
    assert len(detect_oom_kills(None, observed, since=FINISHED + 60)) == 1


def test_a_new_pod_with_the_same_name_is_another_pod():
    old = pod(container_status("app", 1, last_terminated=terminated()), uid=UID)
    new = pod(container_status("app", 1, last_terminated=terminated()), uid=OTHER_UID)
    [kill] = detect_oom_kills(old, new)  # same name, same run number: still a new kill
    assert kill.run == run(OTHER_UID, "app", 0)
    assert container_runs(new)["app"].pod_uid == OTHER_UID


def test_a_bare_sigkill_is_only_a_suspected_oom_kill_and_only_on_request():
    before = pod(container_status("app", 0))
    after = pod(container_status("app", 1, last_terminated=terminated("Error", 137)))
    assert detect_oom_kills(before, after) == []
    [kill] = detect_oom_kills(before, after, include_suspected=True)
    assert kill.suspected
    assert kill.run == run(UID, "app", 0)


@pytest.mark.parametrize(
    ("reason", "exit_code", "signal", "certain", "suspected"),
    [
        ("OOMKilled", 137, None, True, False),
        ("OOMKilled", 0, None, True, False),  # the kubelet's reason wins over the exit code
        ("Error", 137, None, False, True),
        ("Error", 1, 9, False, True),
        ("", 137, None, False, True),
        ("ContainerStatusUnknown", 137, None, False, False),  # the kubelet made up that 137
        ("Error", 1, None, False, False),
        ("Completed", 0, None, False, False),
    ],
)
def test_certain_and_suspected_oom_kills(reason, exit_code, signal, certain, suspected):
    termination = Termination(reason, exit_code, None, None, signal)
    assert is_oom(termination) is certain
    assert is_suspected_oom(termination) is suspected


def test_unexpected_shapes_are_skipped_not_fatal():
    odd = pod(container_status("app", 1, last_terminated=terminated()))
    odd["status"]["containerStatuses"].append("not a status")
    odd["status"]["containerStatuses"].append({"restartCount": 2})  # no name
    odd["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] = "137"
    [kill] = detect_oom_kills(None, odd)
    assert kill.termination.exit_code == 0  # unreadable: not guessed
    assert list(container_runs(odd)) == ["app"]
