"""The trigger state survives an operator restart: written to the CR status, read back."""

import json

import pytest

from oomforensics.triggers import InvalidState, TriggerSettings, TriggerState
from tests.unit.triggers.drive import RUN, T0, Driver

SETTINGS = TriggerSettings(interval=0, horizon=0)


def a_lived_in_state() -> TriggerState:
    driver = Driver(settings=SETTINGS)
    driver.series([(0, 50), (30, 60), (60, 96), (90, 89)])
    driver.percent(91, 96, succeed=False)  # a pending threshold-95 capture that failed
    return driver.state


def test_the_json_form_is_plain_and_reads_back_equal():
    state = a_lived_in_state()
    stored = json.loads(json.dumps(state.to_json()))
    assert stored["run"] == {
        "namespace": "shop",
        "pod": "checkout-0",
        "podUid": RUN.pod_uid,
        "container": "app",
        "restartCount": 0,
    }
    assert stored["firedThresholds"] == [80, 90]
    assert stored["pendingThresholds"] == [95]
    assert stored["lastCaptureReason"] == "threshold-95"
    assert stored["samples"][0] == [T0, stored["samples"][0][1]]
    assert TriggerState.from_json(stored) == state


def test_an_operator_restart_does_not_refire_what_already_fired():
    state = TriggerState.from_json(json.loads(json.dumps(a_lived_in_state().to_json())))
    driver = Driver(settings=SETTINGS, state=state)
    assert driver.percent(95, 96).reason == "threshold-95"  # the failed one is retried
    assert not driver.percent(200, 92).capture  # and nothing re-fires
    assert driver.state.captures == 3  # baseline, threshold-95, threshold-95 again


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"version": 99}, "version"),
        ({"run": None}, "run"),
        ({"run": {**RUN.to_json(), "restartCount": -1}}, "restartCount"),
        ({"run": {**RUN.to_json(), "pod": None}}, "'pod'"),
        ({"samples": [[1, 2, 3]]}, "pair"),
        ({"samples": [[2.0, 1], [1.0, 1]]}, "increasing"),
        ({"samples": [["x", 1]]}, "sample time"),
        ({"samples": [[1.0, -5]]}, "byte count"),
        ({"firedThresholds": [80, 200]}, "firedThresholds"),
        ({"lastCaptureReason": "Threshold 80"}, "slug"),
        ({"predictedFired": "yes"}, "predictedFired"),
        ({"captures": True}, "captures"),
        ({"average": float("nan")}, "average"),
    ],
)
def test_damaged_state_is_refused_with_the_field_named(damage, message):
    stored = {**a_lived_in_state().to_json(), **damage}
    with pytest.raises(InvalidState, match=message):
        TriggerState.from_json(stored)


def test_state_that_is_not_an_object_is_refused():
    with pytest.raises(InvalidState, match="object"):
        TriggerState.from_json([])  # type: ignore[arg-type]
