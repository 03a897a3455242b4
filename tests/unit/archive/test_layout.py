from datetime import UTC, datetime, timedelta, timezone

import pytest

from oomforensics.archive import InvalidSnapshotKey, SnapshotKey
from oomforensics.triggers.model import ContainerRun

AT = datetime(2026, 11, 26, 3, 12, 0, 123456, tzinfo=UTC)
UID = "6f1c2a9e-0d7b-4a51-9c1e-3b8e2f0a7d44"
RUN_PATH = f"shop/checkout-leak/checkout-7d9f/{UID}/app/run-3/"


def key(**changes):
    fields = {
        "namespace": "shop",
        "investigation": "checkout-leak",
        "pod": "checkout-7d9f",
        "pod_uid": UID,
        "container": "app",
        "run": 3,
        "captured_at": AT,
        "reason": "threshold-80",
    }
    fields.update(changes)
    run = ContainerRun(
        fields.pop("namespace"),
        fields.pop("pod"),
        fields.pop("pod_uid"),
        fields.pop("container"),
        fields.pop("run"),
    )
    return SnapshotKey(container_run=run, **fields)


def test_path_follows_the_archive_layout():
    assert key().path("oomf") == f"oomf/{RUN_PATH}20261126T031200.123Z-threshold-80/"
    assert key().path() == f"{RUN_PATH}20261126T031200.123Z-threshold-80/"
    assert key().path("/a/b/") == "a/b/" + key().path()
    assert key().run_path() == RUN_PATH


def test_a_pod_recreated_under_the_same_name_has_runs_of_its_own():
    """A StatefulSet pod deleted and created again starts at restartCount 0 with a new uid."""
    old, new = key(run=0), key(run=0, pod_uid="0b8e7c1d-5a2f-4c3e-8d9a-1f2e3d4c5b6a")
    assert old.pod == new.pod and old.run == new.run
    assert old.container_run != new.container_run
    assert old.run_path() != new.run_path()
    assert SnapshotKey.parse(new.path()) == new


@pytest.mark.parametrize("prefix", ["", "oomf", "team/archive"])
def test_a_key_survives_a_round_trip_through_its_path(prefix):
    original = key()
    assert SnapshotKey.parse(original.path(prefix), prefix) == original
    assert SnapshotKey.parse(original.path(prefix).rstrip("/"), prefix) == original


def test_time_is_utc_to_the_millisecond():
    eastern = timezone(timedelta(hours=-5))
    local = datetime(2026, 11, 25, 22, 12, 0, 123999, tzinfo=eastern)
    assert key(captured_at=local).captured_at == datetime(
        2026, 11, 26, 3, 12, 0, 123000, tzinfo=UTC
    )
    assert key(captured_at=local) == key()
    assert key().timestamp == "20261126T031200.123Z"


def test_paths_sort_in_time_order():
    keys = [key(captured_at=AT + timedelta(seconds=s)) for s in (3600, 0.5, 59, 86400 * 40)]
    assert sorted(keys, key=lambda k: k.path()) == sorted(keys, key=SnapshotKey.sort_key)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"namespace": ""}, "namespace must not be empty"),
        ({"pod_uid": ""}, "pod uid must not be empty"),
        ({"pod": "a/b"}, "pod 'a/b' must not contain '/'"),
        ({"investigation": ".."}, "investigation '..' is not allowed"),
        ({"container": "."}, "container '.' is not allowed"),
        ({"container": "app\n"}, "control characters"),
        ({"run": -1}, "restart_count must be an integer >= 0"),
        ({"run": True}, "must be an integer >= 0"),
        ({"reason": "Threshold 80"}, "must be a short slug"),
        ({"reason": ""}, "must be a short slug"),
        ({"reason": "a-"}, "must be a short slug"),
        ({"reason": "pre-oom"}, "pre-OOM is decided after the container dies"),
        ({"captured_at": datetime(2026, 11, 26)}, "must be timezone-aware"),
    ],
)
def test_invalid_keys_are_refused_with_a_clear_message(changes, message):
    # InvalidSnapshotKey for the layout's rules, ValueError for the run's own
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        key(**changes)


@pytest.mark.parametrize(
    ("path", "prefix", "message"),
    [
        ("shop/checkout-leak/pod/u/app/run-3", "", "got 6 segment"),
        ("shop/inv/pod/app/run-3/20261126T031200.123Z-periodic/", "", "got 6 segment"),
        ("shop/inv/pod/u/app/run-3/20261126T031200.123Z-periodic/extra", "", "got 8 segment"),
        ("shop/inv/pod/u/app/run-x/20261126T031200.123Z-periodic/", "", "must be run-<integer>"),
        ("shop/inv/pod/u/app/run-03/20261126T031200.123Z-periodic/", "", "must be run-<int"),
        ("shop/inv/pod/u/app/run-3/20261126T031200-periodic/", "", "must be <timestamp>-<rea"),
        ("shop/inv/pod/u/app/run-3/20261326T031200.123Z-periodic/", "", "is not a valid date"),
        ("shop/inv/pod/u/app/run-3/20261126T031200.123Z-Periodic/", "", "must be a short slug"),
        ("other/shop/inv/pod/u/app/run-3/20261126T031200.123Z-periodic/", "oomf", "not under"),
        ("shop/inv/pod/u/app/run-3/20261126T031200.123Z-periodic/", "../x", "not allowed"),
    ],
)
def test_paths_outside_the_layout_are_refused(path, prefix, message):
    with pytest.raises(InvalidSnapshotKey, match=message):
        SnapshotKey.parse(path, prefix)


def test_the_container_run_groups_snapshots_of_one_life():
    assert (
        key().container_run
        == key(reason="periodic", captured_at=AT + timedelta(hours=1)).container_run
    )
    assert key().container_run != key(run=4).container_run
