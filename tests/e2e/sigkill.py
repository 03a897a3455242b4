"""The operator killed with SIGKILL at random moments while pods leak, get OOM-killed and
restart; then started once more. Used by tests/e2e/test_operator_sigkill.py (a few trials)
and benchmarks/bench_sigkill.py (fifty).

What must hold afterwards (`check`):
- every snapshot the operator announced (a SnapshotCaptured Event is posted only once the
  snapshot is durable) is in the archive, complete, and its digests verify;
- no duplicates: no snapshot stored twice, one baseline per container run;
- the status converges: its snapshot count equals the archive's, every OOM kill of every pod
  is listed exactly once (the kills while the operator was down too; the status keeps the
  last MAX_OOM_KILLS, the archive an oom.json for each), Ready and Capturing are True: no
  condition stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.store import Archive, SnapshotNotFound
from oomforensics.k8s.status import MAX_OOM_KILLS
from tests.e2e.operator_harness import MI, PODS, apply_crd, events_about, poll
from tests.support.cluster import ClusterFront
from tests.support.cluster.pods import leaky_pod

NAME = "chaos"
OPERATOR = Path(sys.executable).with_name("oomforensics")


@dataclass
class Outcome:
    trials: int
    kill_points: list[float] = field(default_factory=list)  # seconds after each start
    announced: set[str] = field(default_factory=set)  # snapshot paths in SnapshotCaptured
    archived: list[SnapshotKey] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # files without a manifest
    status: dict[str, Any] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)  # pod -> restartCount
    recorded: set[tuple[str, int]] = field(default_factory=set)  # (pod, run) with oom.json
    converge_seconds: float = 0.0


async def start_operator(log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            str(OPERATOR),
            "run",
            "-n",
            "default",
            stdout=out,
            stderr=out,
            env=dict(os.environ),
        )


async def kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL)
    await process.wait()


async def run_scenario(
    front: ClusterFront,
    archive: Archive,
    workdir: Path,
    trials: int,
    *,
    pods: int = 3,
    seed: int = 0,
    life: tuple[float, float] = (1.0, 8.0),
) -> Outcome:
    """Create the pods and the investigation, kill the operator `trials` times, restart it
    and wait until the status agrees with the archive and the pods."""
    rng = random.Random(seed)
    outcome = Outcome(trials)
    log = workdir / "operator.log"
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        for i in range(pods):
            body = leaky_pod(
                f"{NAME}-{i}", "mapcache", labels={"app": NAME}, memory_limit="96Mi", rate=24
            )
            assert (await http.post(PODS, json=body)).status_code == 201
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": NAME, "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": NAME}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "triggers": {"cooldown": "3s"},
            },
        }
        assert (await http.post(MI, json=investigation)).status_code == 201
        for _ in range(trials):
            process = await start_operator(log)
            point = rng.uniform(*life)
            outcome.kill_points.append(point)
            await asyncio.sleep(point)  # the fault's moment, chosen at random: not a wait
            await kill(process)
        # At least one OOM kill while the operator is down (on a loaded machine the leak may
        # not have reached the limit yet): the case a restarted operator must not miss.
        await poll(lambda: _killed_pods(http), 180, "an OOM kill while the operator is down")
        before = (await http.get(f"{MI}/{NAME}")).json()["metadata"]["resourceVersion"]
        process = await start_operator(log)
        started = time.monotonic()
        try:

            async def converged() -> dict[str, Any] | None:
                body = await _converged(http, archive, seen)
                # written by this last operator, not left over from a killed one
                fresh = body is not None and body["metadata"]["resourceVersion"] != before
                return body if fresh else None

            seen: list[str] = []
            try:
                body = await poll(converged, 180, "the status to agree with archive and pods")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; last seen: {seen}") from None
        finally:
            await kill(process)
        outcome.converge_seconds = time.monotonic() - started
        outcome.status = body["status"]
        pods_now = (await http.get(PODS, params={"labelSelector": f"app={NAME}"})).json()
    outcome.restarts = {
        p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
        for p in pods_now["items"]
    }
    for event in events_about(front, "MemoryInvestigation", NAME):
        if event["reason"] == "SnapshotCaptured":
            outcome.announced.add(event["message"].rsplit(": ", 1)[-1])
    outcome.archived = await archive.list_snapshots("default", NAME)
    outcome.recorded = {
        (key.pod, key.run) for key in outcome.archived if await _has_oom_record(archive, key)
    }
    outcome.incomplete = await archive.list_incomplete()
    return outcome


async def _killed_pods(http: httpx.AsyncClient) -> int:
    pods = (await http.get(PODS, params={"labelSelector": f"app={NAME}"})).json()["items"]
    return sum(1 for p in pods if p["status"]["containerStatuses"][0]["restartCount"] > 0)


async def _converged(
    http: httpx.AsyncClient, archive: Archive, seen: list[str]
) -> dict[str, Any] | None:
    body: dict[str, Any] = (await http.get(f"{MI}/{NAME}")).json()
    status = body.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    keys = await archive.list_snapshots("default", NAME)
    count = (status.get("snapshots") or {}).get("count")
    pods = (await http.get(PODS, params={"labelSelector": f"app={NAME}"})).json()["items"]
    killed = sum(p["status"]["containerStatuses"][0]["restartCount"] for p in pods)
    listed = len(status.get("oomKills") or [])
    seen[:] = [
        f"conditions {conditions}, snapshots {count} in the status and {len(keys)} in the "
        f"archive, OOM kills {listed} listed of {killed} (the status keeps {MAX_OOM_KILLS})"
    ]
    if conditions.get("Ready") != "True" or conditions.get("Capturing") != "True":
        return None
    if count != len(keys) or listed != min(killed, MAX_OOM_KILLS):
        return None
    return body


async def _has_oom_record(archive: Archive, key: SnapshotKey) -> bool:
    try:
        await archive.read_run_file(key.investigation, key.container_run, "oom.json")
    except SnapshotNotFound:
        return False
    return True


async def check(outcome: Outcome, archive: Archive) -> None:
    paths = {k.path() for k in outcome.archived}
    missing = outcome.announced - paths
    assert not missing, f"announced but not in the archive: {sorted(missing)}"
    for key in outcome.archived:
        await archive.verify(key)
    # A restarted operator takes no second baseline of a run (its captures are restored from
    # the archive). Thresholds may fire again once a run's readings fell and re-armed them,
    # which stale readings around a container restart can do: not a duplicate.
    per_run = Counter(
        (k.pod, k.container, k.run) for k in outcome.archived if k.reason == "baseline"
    )
    twice = {what: n for what, n in per_run.items() if n > 1}
    assert not twice, f"two baselines in one run: {twice}"
    paths = [k.path() for k in outcome.archived]
    assert len(paths) == len(set(paths)), "a snapshot stored twice"
    kills = outcome.status.get("oomKills") or []
    runs = [(k["pod"], k["container"], k["run"]) for k in kills]
    assert len(runs) == len(set(runs)), f"an OOM kill listed twice: {runs}"
    assert len(runs) == min(sum(outcome.restarts.values()), MAX_OOM_KILLS)
    # The archive keeps every kill (the status the last MAX_OOM_KILLS): oom.json per run.
    killed_runs = {(pod, run) for pod, n in outcome.restarts.items() for run in range(n)}
    with_snapshots = {(key.pod, key.run) for key in outcome.archived}
    unrecorded = (killed_runs & with_snapshots) - outcome.recorded
    assert not unrecorded, f"OOM kills without oom.json in the archive: {sorted(unrecorded)}"
