"""Conditions decided from what one pass saw: each problem a user can fix has its reason."""

from __future__ import annotations

from datetime import UTC, datetime

from oomforensics.k8s.conditions import Observation, decide_conditions, oom_kill_from_json
from oomforensics.k8s.status import OomKillStatus, conditions_json

KILL = OomKillStatus(
    pod="checkout",
    uid="u1",
    container="app",
    run=0,
    time=datetime(2026, 11, 26, 16, 0, tzinfo=UTC),
    exit_code=137,
    pre_oom_snapshot="default/mi/checkout/app/run-0/20261126T155959.000Z-threshold-95/",
    percent_of_limit=95.4,
    summary=None,
)
LEAK = {
    "classification": "unclosed-response-body",
    "leakSuspected": True,
    "verdict": "Likely leak: HTTP response bodies are never closed.",
}


def by_type(obs: Observation) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in decide_conditions(obs)}


def test_a_healthy_investigation_is_ready() -> None:
    got = by_type(Observation(storage_used=True, targets=2, snapshots=3))
    assert got["Ready"][:2] == ("True", "Investigating")
    assert got["Capturing"][:2] == ("True", "Sampling")
    assert got["StorageReady"][:2] == ("True", "StorageReachable")
    assert got["LeakSuspected"][:2] == ("Unknown", "NotEnoughSnapshots")
    assert got["OOMObserved"][:2] == ("False", "NoOOMKills")
    assert [c.type for c in decide_conditions(Observation())] == [
        "Ready",
        "Capturing",
        "LeakSuspected",
        "OOMObserved",
        "StorageReady",
    ]


def test_no_matching_pods_says_to_check_the_selector() -> None:
    got = by_type(Observation(targets=0))
    assert got["Capturing"][:2] == ("False", "NoMatchingPods")
    assert got["Ready"][:2] == ("False", "NoMatchingPods") and "selector" in got["Ready"][2]


def test_bad_input_becomes_a_reason_not_a_crash() -> None:
    assert by_type(Observation(spec_error="spec.sampling.interval: bad"))["Ready"][1] == (
        "InvalidSpec"
    )
    assert by_type(Observation(suspended=True))["Capturing"][:2] == ("False", "Suspended")
    unreachable = by_type(Observation(targets=1, capture_errors=("checkout/app: refused",)))
    assert unreachable["Capturing"][:2] == ("False", "CaptureFailed")
    secret = by_type(Observation(targets=1, storage_error=("SecretNotFound", "Secret s3 ...")))
    assert secret["StorageReady"][:2] == ("False", "SecretNotFound")
    assert secret["Ready"][:2] == ("False", "SecretNotFound")
    garbage = by_type(Observation(targets=1, summary_error="not Go pprof output"))
    assert garbage["LeakSuspected"][:2] == ("Unknown", "UnreadableProfiles")
    port = by_type(Observation(targets=1, target_problems=("declares 2 ports",)))
    assert port["Capturing"][:2] == ("False", "EndpointNotConfigured")


def test_a_pod_without_a_limit_is_still_watched_and_the_user_told() -> None:
    got = by_type(Observation(targets=1, no_limit=("checkout/app",), storage_used=True))
    assert got["Capturing"][:2] == ("True", "NoMemoryLimit")
    assert "resources.limits.memory" in got["Capturing"][2]
    assert got["Ready"][0] == "True"


def test_leaks_and_kills_are_named() -> None:
    got = by_type(Observation(targets=1, summary=LEAK, oom_kills=(KILL,)))
    assert got["LeakSuspected"][:2] == ("True", "UnclosedResponseBody")
    assert got["OOMObserved"][:2] == ("True", "OOMKilled")
    assert "threshold-95" in got["OOMObserved"][2]
    calm = by_type(Observation(targets=1, summary={"classification": "no-growth"}))
    assert calm["LeakSuspected"][:2] == ("False", "NoLeakFound")


def test_transition_times_move_only_when_the_status_does() -> None:
    first = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    later = datetime(2026, 11, 26, 16, 5, tzinfo=UTC)
    before = conditions_json(decide_conditions(Observation(targets=0)), [], 1, first)
    same = conditions_json(decide_conditions(Observation(targets=0)), before, 1, later)
    assert same == before
    moved = conditions_json(
        decide_conditions(Observation(targets=1, storage_used=True)), before, 2, later
    )
    times = {c["type"]: c["lastTransitionTime"] for c in moved}
    assert times["Ready"] == times["Capturing"] == "2026-11-26T16:05:00Z"
    assert times["OOMObserved"] == "2026-11-26T16:00:00Z"  # still False


def test_oom_kills_survive_an_operator_restart_through_the_status() -> None:
    assert oom_kill_from_json(KILL.to_json()) == KILL
    assert oom_kill_from_json({"pod": "x"}) is None
