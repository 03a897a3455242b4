"""`InvestigationRunner.step()`, one pass, against fakes of the world behind `Services`: a
real archive (memory://) and spool, real Go heap profiles from the shared corpus as what a
target serves, PodMetrics the test sets, and the status patches and Events it records."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive
from oomforensics.capture.client import CaptureResult
from oomforensics.capture.errors import CaptureError
from oomforensics.k8s.api import ApiFailure, ObjectRef
from oomforensics.k8s.conditions import replacing_patch
from oomforensics.k8s.investigation import InvestigationRunner
from oomforensics.k8s.services import Services, StorageProblem, StorageReason
from oomforensics.k8s.spec import InvestigationSpec, StorageSpec, parse_spec
from oomforensics.triggers.end_of_run import EndOfRun
from tests.support.gopprof import CORPUS

JSON = dict[str, Any]
MiB = 2**20
HEAP = CORPUS / "ddtrace.heap.before.pprof"
UID_A = "6f1c2a9e-0d7b-4a51-9c1e-3b8e2f0a7d44"
UID_B = "0b8e7c1d-5a2f-4c3e-8d9a-1f2e3d4c5b6a"
BODY = {
    "metadata": {"name": "db", "namespace": "shop", "generation": 1},
    "spec": {"selector": {"matchLabels": {"app": "db"}}, "endpoint": {"port": 6060}},
}


def pod(uid: str = UID_A, restarts: int = 0, last: JSON | None = None) -> JSON:
    status: JSON = {"name": "app", "restartCount": restarts, "state": {"running": {}}}
    if last is not None:
        status["lastState"] = {"terminated": last}
    return {
        "metadata": {"name": "db-0", "namespace": "shop", "uid": uid, "labels": {"app": "db"}},
        "spec": {
            "containers": [{"name": "app", "resources": {"limits": {"memory": "100Mi"}}}],
            "nodeName": "n1",
        },
        "status": {"podIP": "127.0.0.1", "containerStatuses": [status]},
    }


@dataclass
class World:
    """Services as a test sees them: what the runner asked for and what it was told."""

    tmp: Path
    working_set: int = 10 * MiB
    storage_problem: StorageProblem | None = None
    capture_fails: bool = False
    archive_: Archive = field(default_factory=lambda: Archive.from_url("memory://"))
    status: JSON = field(default_factory=dict)
    patches: list[JSON] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # reason, kind, message
    captures: list[str] = field(default_factory=list)
    spools: dict[str, Spool] = field(default_factory=dict)

    async def archive(self, storage: StorageSpec, namespace: str) -> Archive:
        if self.storage_problem is not None:
            raise self.storage_problem
        return self.archive_

    def spool(self, archive: Archive) -> Spool:
        return self.spools.setdefault(archive.url, Spool(self.tmp / "spool", 64 * MiB))

    async def pod_metrics(self, namespace: str, max_age: float | None = None) -> list[JSON]:
        usage = {"memory": f"{self.working_set // 1024}Ki"}
        return [{"metadata": {"name": "db-0"}, "containers": [{"name": "app", "usage": usage}]}]

    async def capture(self, spec: InvestigationSpec, base_url: str) -> CaptureResult:
        self.captures.append(base_url)
        now = datetime.now(UTC)
        if self.capture_fails:
            error = CaptureError("connection refused", f"{base_url}/heap", "heap.pb.gz")
            return CaptureResult(base_url, {}, {"heap.pb.gz": error}, now, now)
        return CaptureResult(base_url, {"heap.pb.gz": HEAP.read_bytes()}, {}, now, now)

    async def fetch(self, spec: InvestigationSpec, url: str, what: str) -> bytes:
        raise CaptureError("not served", url, what)

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JSON:
        self.patches.append(dict(patch))
        self.status = _merge(self.status, patch)
        return {"status": copy.deepcopy(self.status)}

    async def post_event(self, about: ObjectRef, reason: str, message: str, type_: str) -> None:
        self.events.append((reason, about.kind, message))

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        raise ApiFailure.of(404, f"secrets {name!r} not found")  # no notification sinks here

    async def post_notification(self, url: str, payload: Any) -> None:
        raise AssertionError("no notification sink is configured in these tests")


def _merge(old: JSON, patch: Mapping[str, Any]) -> JSON:
    merged = dict(old)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(old.get(key), Mapping):
            merged[key] = _merge(old[key], value)
        else:
            merged[key] = value
    return merged


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> World:
    if not HEAP.is_file():
        pytest.skip(f"{HEAP} is not there (the shared pprof corpus)")
    return World(tmp_path)


def runner_for(world: World, clock: Clock | None = None) -> InvestigationRunner:
    services: Services = world  # the protocol is all the runner knows
    return InvestigationRunner(services, "shop", "db", "uid-mi", 0.0, clock=clock or Clock())


def body() -> JSON:
    return {**BODY}


def conditions(world: World) -> dict[str, JSON]:
    return {c["type"]: c for c in world.status.get("conditions") or []}


async def test_a_first_pass_takes_the_baseline_and_writes_the_status_once(world: World) -> None:
    runner = runner_for(world)
    delay = await runner.step(body(), [pod()])
    assert 0 < delay <= 15
    assert world.captures == ["http://127.0.0.1:6060/debug/pprof"]
    (key,) = await world.archive_.list_snapshots("shop", "db")
    assert key.reason == "baseline" and key.pod_uid == UID_A
    assert len(world.patches) == 1
    (target,) = world.status["targets"]
    assert target["uid"] == UID_A and target["snapshots"] == 1
    assert target["lastSnapshot"] == key.path()
    assert world.status["snapshots"]["count"] == 1
    assert [e[0] for e in world.events] == ["SnapshotCaptured"]


async def test_a_pod_recreated_under_the_same_name_takes_a_baseline_of_its_own(
    world: World,
) -> None:
    runner = runner_for(world)
    await runner.step(body(), [pod(UID_A)])
    await runner.step(body(), [pod(UID_B)])  # db-0 deleted and created again
    keys = await world.archive_.list_snapshots("shop", "db", "db-0")
    assert [(k.pod_uid, k.run, k.reason) for k in keys] == [
        (UID_A, 0, "baseline"),
        (UID_B, 0, "baseline"),
    ]
    (target,) = world.status["targets"]
    assert target["uid"] == UID_B and target["snapshots"] == 1
    assert target["lastSnapshot"] == keys[1].path()
    # An operator restart (a new runner) finds each incarnation's own run in the archive.
    again = runner_for(world)
    await again.step({**body(), "status": world.status}, [pod(UID_B)])
    assert len(await world.archive_.list_snapshots("shop", "db")) == 2  # no second baseline


async def test_readings_alone_wait_a_minute_other_news_goes_out_at_once(world: World) -> None:
    clock = Clock()
    runner = runner_for(world, clock)
    await runner.step(body(), [pod()])
    assert len(world.patches) == 1
    world.working_set = 12 * MiB
    clock.now += 15
    await runner.step(body(), [pod()])
    assert len(world.patches) == 1  # only the reading moved: it waits
    clock.now += 46
    await runner.step(body(), [pod()])
    assert len(world.patches) == 2  # a minute after the last write: the reading goes out
    assert world.status["targets"][0]["workingSetBytes"] == 12 * MiB
    world.working_set = 85 * MiB  # past 80 % of the limit: a snapshot, written at once
    clock.now += 1
    await runner.step(body(), [pod()])
    assert len(world.patches) == 3
    assert world.status["snapshots"]["count"] == 2
    assert world.status["snapshots"]["lastReason"] == "threshold-80"


async def test_an_oom_kill_is_recorded_once_in_the_archive_the_status_and_events(
    world: World,
) -> None:
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    killed = pod(
        restarts=1,
        last={"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-26T03:05:00Z"},
    )
    assert runner.pod_changed(killed, runner.spec)
    await runner.step(body(), [killed])
    await runner.step(body(), [killed])  # seen again: not recorded twice
    (kill,) = world.status["oomKills"]
    (baseline, *_) = await world.archive_.list_snapshots("shop", "db")
    assert (kill["uid"], kill["run"], kill["preOomSnapshot"]) == (UID_A, 0, baseline.path())
    record = EndOfRun.from_bytes(
        await world.archive_.read_run_file("db", baseline.container_run, "oom.json")
    )
    assert record.oom_killed and record.pre_oom_snapshot == baseline.path()
    assert record.exit_code == 137 and record.limit_bytes == 100 * MiB
    told = [(reason, kind) for reason, kind, _ in world.events if reason == "OOMKilled"]
    assert told == [("OOMKilled", "MemoryInvestigation"), ("OOMKilled", "Pod")]
    assert conditions(world)["OOMObserved"]["status"] == "True"


async def test_no_storage_is_a_condition_not_a_capture(world: World) -> None:
    world.storage_problem = StorageProblem(StorageReason.NO_STORAGE_CONFIGURED, "set a URL")
    await runner_for(world).step(body(), [pod()])
    assert world.captures == []
    storage = conditions(world)["StorageReady"]
    assert (storage["status"], storage["reason"]) == ("False", "NoStorageConfigured")


async def test_failing_captures_back_off_and_are_told_once(world: World) -> None:
    world.capture_fails = True
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    await runner.step(body(), [pod()])  # within the backoff: not tried again
    assert len(world.captures) == 1
    assert [e[0] for e in world.events] == ["CaptureFailed"]
    capturing = conditions(world)["Capturing"]
    assert "connection refused" in capturing["message"]
    assert world.status["targets"][0]["lastError"].startswith("db-0/app: capture failed")


async def test_a_status_write_that_fails_is_tried_again_next_pass(world: World) -> None:
    class Refusing(World):
        refuse = True

        async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JSON:
            if self.refuse:
                raise ApiFailure(500, "etcd is busy")
            return await super().patch_status(namespace, name, patch)

    refusing = Refusing(world.tmp)
    runner = runner_for(refusing)
    await runner.step(body(), [pod()])
    assert refusing.patches == []
    refusing.refuse = False
    await runner.step(body(), [pod()])
    assert replacing_patch({}, refusing.status) == refusing.patches[0]


def test_a_container_that_starts_wakes_the_pass_and_a_steady_one_does_not(world: World) -> None:
    runner = runner_for(world)
    spec = parse_spec(BODY["spec"])
    started = pod()
    pending = {**started, "status": {"containerStatuses": [{"name": "app", "restartCount": 0}]}}
    runner.pod_changed(pending, spec)
    assert not runner.wake.is_set()  # nothing runs yet
    runner.pod_changed(started, spec)
    assert runner.wake.is_set()  # a run began: its baseline is due now
    runner.wake.clear()
    runner.pod_changed(started, spec)
    assert not runner.wake.is_set()  # the same run, still running
    other = {**pod(UID_B), "metadata": {**pod(UID_B)["metadata"], "labels": {"app": "cart"}}}
    runner.pod_changed(other, spec)
    assert not runner.wake.is_set()  # not selected


async def test_after_an_operator_restart_the_count_is_the_archives(world: World) -> None:
    """The first pass of a new process may capture (a restarted container's baseline) before
    it has listed the archive: the count still includes what earlier processes stored."""
    clock = Clock()
    first = runner_for(world, clock)
    await first.step(body(), [pod()])
    world.working_set = 85 * MiB
    await first.step(body(), [pod()])  # threshold-80
    assert world.status["snapshots"]["count"] == 2
    world.working_set = 10 * MiB
    again = runner_for(world)  # the operator restarted; meanwhile the container did too
    await again.step({**body(), "status": world.status}, [pod(restarts=1)])
    stored = await world.archive_.list_snapshots("shop", "db")
    assert [k.reason for k in stored] == ["baseline", "threshold-80", "baseline"]
    assert world.status["snapshots"]["count"] == 3


async def test_a_kill_whose_recording_fails_is_recorded_by_the_next_pass(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    load = runner.runs.load
    failures = iter([RuntimeError("a bug while reading the run back")])

    async def flaky_load(archive: Archive, run: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return await load(archive, run)

    monkeypatch.setattr(runner.runs, "load", flaky_load)
    killed = pod(restarts=1, last={"reason": "OOMKilled", "exitCode": 137})
    await runner.step(body(), [killed])  # recording fails (logged); the pass goes on
    assert world.status["oomKillCount"] == 0
    await runner.step(body(), [killed])  # the same pod version: the kill is not news again
    assert [k["run"] for k in world.status["oomKills"]] == [0]


async def test_a_failing_analysis_still_lets_the_status_be_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshots go on being taken and kills recorded even when the summary cannot be made:
    the status says why, instead of never being written again."""
    runner = runner_for(world)

    async def broken(archive: Archive, top_n: int) -> Any:
        raise KeyError("classification")

    monkeypatch.setattr(runner.summariser, "latest", broken)
    killed = pod(restarts=1, last={"reason": "OOMKilled", "exitCode": 137})
    await runner.step(body(), [killed])
    assert world.status["oomKillCount"] == 1 and world.status["snapshots"]["count"] == 1
    assert "the summary failed: KeyError" in conditions(world)["LeakSuspected"]["message"]
