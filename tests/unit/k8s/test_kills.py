"""The kill recorder through the runner's passes: each end is told apart from the facts it
gathers (the kubelet's words, the pod's eviction, the sampler's last reading against the
limit) and written where a person reads it: status.oomKills or status.otherTerminations, the
run's record in the archive, Events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from oomforensics.k8s.targets import essential_pod
from oomforensics.triggers.end_of_run import EndOfRun
from tests.unit.k8s.test_step import (
    HEAP,
    UID_A,
    MiB,
    World,
    body,
    conditions,
    pod,
    runner_for,
)

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[3]
EMPTY_DIR = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '


@pytest.fixture
def world(tmp_path: Path) -> World:
    if not HEAP.is_file():
        pytest.skip(f"{HEAP} is not there (the shared pprof corpus)")
    return World(tmp_path)


def soon(seconds: float = 2) -> str:
    """An RFC 3339 time `seconds` from now: the kill comes just after the pass's reading."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ended(reason: str, exit_code: int) -> JSON:
    """The pod after its container's run 0 ended that way and the kubelet restarted it."""
    return pod(restarts=1, last={"reason": reason, "exitCode": exit_code, "finishedAt": soon()})


def evicted(message: str = EMPTY_DIR) -> JSON:
    """The pod as the kubelet leaves it after an eviction: Failed, reason Evicted, the
    container terminated (a Go process on SIGTERM exits 2), never restarted."""
    body_ = pod()
    body_["status"].update(phase="Failed", reason="Evicted", message=message)
    body_["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"reason": "Error", "exitCode": 2, "finishedAt": soon()}
    }
    return body_


async def record(world: World, after: JSON, working_set: int) -> None:
    """A pass that reads `working_set`, then the end seen by the pod handler, then passes."""
    world.working_set = working_set
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    assert runner.pod_changed(after, runner.spec)
    await runner.step(body(), [after])
    await runner.step(body(), [after])  # seen again: not recorded twice


async def run_record(world: World, name: str) -> EndOfRun:
    (baseline, *_) = await world.archive_.list_snapshots("shop", "db")
    data = await world.archive_.read_run_file("db", baseline.container_run, name)
    return EndOfRun.from_bytes(data)


async def test_an_oom_kill_at_the_limit_is_the_containers_own_high_confidence(
    world: World,
) -> None:
    await record(world, ended("OOMKilled", 137), 95 * MiB)
    (kill,) = world.status["oomKills"]
    assert (kill["ending"], kill["cause"], kill["confidence"]) == (
        "OOMKilled",
        "ContainerLimit",
        "high",
    )
    assert (kill["reason"], kill["exitCode"], kill["uid"], kill["run"]) == (
        "OOMKilled",
        137,
        UID_A,
        0,
    )
    reading = kill["lastReading"]
    assert reading["percentOfLimit"] == "95.0%" and reading["limitBytes"] == 100 * MiB
    assert reading["source"] == "sampler" and 0 <= reading["secondsBeforeEnd"] < 10
    assert "95.0% of the 100 MiB limit" in kill["evidence"]
    assert "otherTerminations" not in world.status
    assert world.status["oomKillCount"] == 1
    oom = conditions(world)["OOMObserved"]
    assert oom["status"] == "True" and "ContainerLimit, confidence high" in oom["message"]
    record_ = await run_record(world, "oom.json")
    assert record_.attribution is not None and record_.attribution.cause.value == "ContainerLimit"
    assert record_.last_working_set_bytes == 95 * MiB and record_.limit_bytes == 100 * MiB
    told = [(reason, kind) for reason, kind, _ in world.events if reason == "OOMKilled"]
    assert told == [("OOMKilled", "MemoryInvestigation"), ("OOMKilled", "Pod")]


async def test_a_sigkill_from_outside_is_no_oom_kill(world: World) -> None:
    await record(world, ended("Error", 137), 10 * MiB)
    assert world.status["oomKills"] == [] and world.status["oomKillCount"] == 0
    assert conditions(world)["OOMObserved"]["status"] == "False"
    (end,) = world.status["otherTerminations"]
    assert (end["ending"], end["cause"], end["confidence"]) == ("Killed", "Outside", "high")
    assert end["exitCode"] == 137 and "without OOMKilled" in end["evidence"]
    record_ = await run_record(world, "exit.json")
    assert record_.ending.value == "Killed" and not record_.oom_killed
    events = [(reason, kind) for reason, kind, _ in world.events if reason != "SnapshotCaptured"]
    assert events == [("ContainerEnded", "MemoryInvestigation")]


async def test_a_sigkill_near_the_limit_says_an_oom_kill_is_possible(world: World) -> None:
    await record(world, ended("Error", 137), 97 * MiB)
    (end,) = world.status["otherTerminations"]
    assert (end["ending"], end["confidence"]) == ("Killed", "low")
    assert "did not attribute is possible" in end["evidence"]


async def test_oom_killed_on_exit_143_is_a_sigterm(world: World) -> None:
    await record(world, ended("OOMKilled", 143), 30 * MiB)
    assert world.status["oomKills"] == []
    (end,) = world.status["otherTerminations"]
    assert (end["ending"], end["cause"], end["reason"]) == ("Terminated", "Outside", "OOMKilled")


async def test_an_eviction_is_the_kubelets_not_the_memory_limit(world: World) -> None:
    after = essential_pod(evicted())  # what the operator keeps of a pod keeps the eviction
    await record(world, after, 12 * MiB)
    assert world.status["oomKills"] == []
    (end,) = world.status["otherTerminations"]
    assert (end["ending"], end["cause"], end["confidence"]) == ("Evicted", "StorageLimit", "high")
    assert (end["podReason"], end["podMessage"]) == ("Evicted", EMPTY_DIR)
    assert (end["reason"], end["exitCode"], end["run"]) == ("Error", 2, 0)


async def test_after_an_operator_restart_the_ends_stay_told_and_are_not_recorded_again(
    world: World,
) -> None:
    await record(world, ended("Error", 137), 10 * MiB)
    before = dict(world.status)
    restarted = runner_for(world)  # a new process: nothing in memory
    after = ended("Error", 137)
    after["status"]["containerStatuses"][0]["lastState"]["terminated"]["finishedAt"] = before[
        "otherTerminations"
    ][0]["time"]
    await restarted.step({**body(), "status": before}, [after])
    assert world.status["otherTerminations"] == before["otherTerminations"]
    assert [e[0] for e in world.events].count("ContainerEnded") == 1


async def test_a_kill_while_the_operator_was_down_is_judged_by_the_last_snapshot(
    world: World,
) -> None:
    world.working_set = 96 * MiB
    await runner_for(world).step(body(), [pod()])  # the first operator: a baseline, then gone
    restarted = runner_for(world)
    await restarted.step({**body(), "status": dict(world.status)}, [ended("OOMKilled", 137)])
    (kill,) = world.status["oomKills"]
    assert kill["lastReading"]["source"] == "snapshot"
    assert kill["lastReading"]["percentOfLimit"] == "96.0%"
    assert (kill["cause"], kill["confidence"]) == ("ContainerLimit", "high")
    assert "(in the last snapshot)" in kill["evidence"]


def undeclared(doc: object, schema: JSON, path: str = "") -> list[str]:
    """Fields of `doc` the structural schema does not declare (the API server prunes them)."""
    if isinstance(doc, dict):
        properties = schema.get("properties") or {}
        found = []
        for key, value in doc.items():
            if key not in properties:
                found.append(f"{path}.{key}")
            else:
                found += undeclared(value, properties[key], f"{path}.{key}")
        return found
    if isinstance(doc, list):
        return [f for item in doc for f in undeclared(item, schema.get("items") or {}, path)]
    return []


async def test_every_field_of_the_ends_is_declared_in_the_crd(world: World) -> None:
    crd = yaml.safe_load((ROOT / "crds" / "memoryinvestigations.oomforensics.io.yaml").read_text())
    status_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    await record(world, ended("OOMKilled", 137), 95 * MiB)
    after = essential_pod(evicted())
    after["metadata"]["uid"] = "7a0b3c4d-0000-4000-8000-000000000001"  # another pod: db-1
    after["metadata"]["name"] = "db-1"
    runner = runner_for(world)
    await runner.step({**body(), "status": dict(world.status)}, [after])
    assert world.status["oomKills"] and world.status["otherTerminations"]
    for field in ("oomKills", "otherTerminations"):
        assert undeclared(world.status[field], status_schema["properties"][field]) == []


@dataclass
class LaggingMetrics(World):
    """PodMetrics as metrics-server serves them: measured `lag` seconds before they are read."""

    lag: float = 0.0

    async def pod_metrics(self, namespace: str, max_age: float | None = None) -> list[JSON]:
        items = await super().pod_metrics(namespace, max_age)
        stamp = datetime.now(UTC) - timedelta(seconds=self.lag)
        return [{**item, "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")} for item in items]


@pytest.mark.parametrize(("lag", "confidence"), [(20.0, "high"), (90.0, "medium")])
async def test_a_readings_age_is_from_when_metrics_server_measured_it(
    tmp_path: Path, lag: float, confidence: str
) -> None:
    if not HEAP.is_file():
        pytest.skip(f"{HEAP} is not there (the shared pprof corpus)")
    lagging = LaggingMetrics(tmp_path, lag=lag)
    await record(lagging, ended("OOMKilled", 137), 95 * MiB)
    (kill,) = lagging.status["oomKills"]
    assert lag <= kill["lastReading"]["secondsBeforeEnd"] <= lag + 10
    assert kill["confidence"] == confidence, kill["evidence"]
