"""The report model: timeline points, markers, thresholds, how a run ended, runs and pods."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from oomforensics.analysis.snapshot import snapshot_from_files
from oomforensics.report.model import (
    RunEvidence,
    RunIdentity,
    build_report,
    build_run,
    run_identity,
)
from oomforensics.triggers import ContainerRun
from oomforensics.triggers.end_of_run import Ending, EndOfRun
from tests.support.profiles import ProfileBuilder

MiB = 2**20
LIMIT = 200 * MiB
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
RUN = "/archive/prod/checkout-mi/api-7f9/api/run-0"


def heap(cache: int) -> bytes:
    builder = ProfileBuilder().sample([["main.loadConfig"], ["main.main"]], 1, MiB, 1, MiB)
    if cache:
        builder.sample([["main.cacheResponse"], ["main.handle"]], 9, cache, 9, cache)
    return builder.serialize()


def manifest(seconds: float, reason: str, working_set: int, **extra) -> bytes:
    doc = {
        "namespace": "prod",
        "investigation": "checkout-mi",
        "pod": "api-7f9",
        "container": "api",
        "run": 0,
        "capturedAt": (T0 + timedelta(seconds=seconds)).isoformat(),
        "reason": reason,
        "workingSetBytes": working_set,
        "limitBytes": LIMIT,
        "podUid": "uid-1",
        "node": "node-a",
        "image": "registry.example/api:1.2",
        **extra,
    }
    return json.dumps(doc).encode()


def snap(seconds, reason, working_set, cache, folder=RUN, **extra):
    stamp = (T0 + timedelta(seconds=seconds)).strftime("%Y%m%dT%H%M%S.000Z")
    files = {
        "heap.pb.gz": heap(cache),
        "manifest.json": manifest(seconds, reason, working_set, **extra),
    }
    return snapshot_from_files(f"{folder}/{stamp}-{reason}", files)


SNAPSHOTS = [
    snap(0, "baseline", 40 * MiB, 0),
    snap(600, "periodic", 90 * MiB, 40 * MiB),
    snap(900, "threshold-80", 165 * MiB, 100 * MiB),
    snap(960, "threshold-95", 192 * MiB, 130 * MiB),
]
KILLED = ContainerRun("prod", "api-7f9", "uid-1", "api", 0)
OOM = EndOfRun(
    run=KILLED,
    ending=Ending.OOM_KILLED,
    time=T0 + timedelta(seconds=975),
    exit_code=137,
    evidence="the kernel OOM-killed it",
    limit_bytes=LIMIT,
    last_working_set_bytes=199 * MiB,
    pre_oom_snapshot="prod/checkout-mi/api-7f9/uid-1/api/run-0/20261126T101600.000Z-threshold-95/",
)


def evidence(snapshots=SNAPSHOTS, records=None, identity=None):
    return RunEvidence(
        identity=identity or run_identity(snapshots[0], RUN),
        snapshots=snapshots,
        run_files=records if records is not None else {"oom.json": OOM.to_bytes()},
        folder=RUN,
    )


def test_timeline_has_a_point_per_snapshot_in_time_order_with_its_reason():
    run = build_run(evidence(list(reversed(SNAPSHOTS))), "run-1")
    points = run.timeline.points
    assert [p.reason for p in points] == ["baseline", "periodic", "threshold-80", "threshold-95"]
    assert [p.time - points[0].time for p in points] == [0, 600, 900, 960]
    assert points[2].working_set == 165 * MiB and points[2].limit == LIMIT
    assert round(points[3].percent_of_limit, 1) == 96.0
    assert run.timeline.limit == LIMIT
    assert points[0].snapshot == "20261126T100000.000Z-baseline"


def test_the_oom_kill_and_the_pre_oom_snapshot_come_from_oom_json():
    timeline = build_run(evidence(), "run-1").timeline
    end = timeline.end
    assert end is not None and end.kind == "oom-kill" and end.exit_code == 137
    assert end.time == (T0 + timedelta(seconds=975)).timestamp() == timeline.stop
    assert end.working_set == 199 * MiB
    assert [p.pre_oom for p in timeline.points] == [False, False, False, True]


def test_a_record_without_evidence_says_how_the_container_ended():
    record = replace(OOM, evidence="", time=datetime(2026, 11, 26, 10, 16, 20, tzinfo=UTC))
    timeline = build_run(evidence(records={"oom.json": record.to_bytes()}), "r").timeline
    assert timeline.end.kind == "oom-kill" and "OOM-killed, exit code 137" in timeline.end.message
    assert timeline.end.time == datetime(2026, 11, 26, 10, 16, 20, tzinfo=UTC).timestamp()
    assert timeline.points[-1].pre_oom


def test_a_record_in_another_shape_is_a_note_not_a_crash():
    old = json.dumps({"reason": "OOMKilled", "exitCode": 137}).encode()
    run = build_run(evidence(records={"oom.json": old}), "r")
    assert run.timeline.end is None
    assert any(n.startswith("oom.json: run record schemaVersion") for n in run.notes), run.notes


def test_thresholds_are_the_defaults_and_those_named_by_reasons():
    snapshots = [*SNAPSHOTS[:2], snap(700, "threshold-70", 140 * MiB, 60 * MiB)]
    timeline = build_run(evidence(snapshots, records={}), "run-1").timeline
    assert timeline.thresholds == (70, 80, 90, 95)
    assert timeline.end is None


def test_a_run_followed_by_a_later_run_ended_in_a_restart():
    later = [
        snap(2000, "baseline", 30 * MiB, 0, folder=RUN[:-1] + "1", run=1),
        snap(2600, "periodic", 60 * MiB, 20 * MiB, folder=RUN[:-1] + "1", run=1),
    ]
    report = build_report(
        [evidence(later, records={}), evidence(records={"exit.json": b"{not json"})],
        generated_at=T0,
    )
    first, second = report.runs
    assert (first.identity.run, second.identity.run) == (0, 1)
    assert first.timeline.end.kind == "restart" and first.timeline.end.time is None
    assert any("exit.json: run record is not JSON" in note for note in first.notes)
    assert second.timeline.end is None
    assert report.snapshot_count == 6 and [r.anchor for r in report.runs] == ["run-1", "run-2"]


def test_the_comparison_is_baseline_against_latest_with_a_trend():
    run = build_run(evidence(), "run-1")
    c = run.comparison
    assert c is not None and c.base is SNAPSHOTS[0] and c.new is SNAPSHOTS[-1]
    assert c.trend is not None  # four snapshots
    assert c.analysis.suspects[0].function == "main.cacheResponse"
    assert run.flame is not None and run.flame.total == 130 * MiB
    assert ("image", "registry.example/api:1.2") in run.facts


def test_a_single_snapshot_has_a_timeline_but_no_comparison():
    run = build_run(evidence(SNAPSHOTS[:1], records={}), "run-1")
    assert len(run.timeline.points) == 1 and run.comparison is None and run.flame is None
    assert "only one snapshot" in run.notes[0]


def test_identity_from_the_manifest_else_from_the_archive_folders():
    assert run_identity(SNAPSHOTS[0]) == RunIdentity(
        "prod", "checkout-mi", "api-7f9", "api", 0, "uid-1"
    )
    bare = snapshot_from_files("/x/ns/mi/pod-1/u-1/main/run-3/s", {"heap.pb.gz": heap(0)})
    assert run_identity(bare, "/x/ns/mi/pod-1/u-1/main/run-3") == RunIdentity(
        "ns", "mi", "pod-1", "main", 3, "u-1"
    )
    assert run_identity(bare, "/tmp/mapcache").pod == "mapcache"
    assert RunIdentity("prod", "mi", "api-7f9", "api", 2).title == "prod/api-7f9 · api · run 2"
    recreated = RunIdentity("prod", "mi", "db-0", "db", 0, "0b8e7c1d-5a2f-4c3e")
    assert recreated.title == "prod/db-0 (uid 0b8e7c1d) · db · run 0"
