"""The operator killed with SIGKILL at random moments while pods leak, get OOM-killed by the
kernel and are restarted by the kubelet; then started once more. On the real cluster, the
operator as a process with the chart's ServiceAccount and RBAC (tests/e2e/conftest.py's
`kube_operator`). Used by tests/e2e/test_operator_sigkill.py (a few trials) and
benchmarks/bench_sigkill.py (fifty).

What must hold afterwards (`check`):
- every snapshot the operator announced (a SnapshotCaptured Event is posted only once the
  snapshot is durable) is in the archive, complete, and its digests verify;
- no duplicates: no snapshot stored twice, one baseline per container run;
- the status converges: its snapshot count equals the archive's, every OOM kill of every pod
  is listed exactly once (the kills while the operator was down too; the status keeps the
  last MAX_OOM_KILLS, the archive an oom.json for each), Ready and Capturing are True: no
  condition stuck;
- nothing the operator asked was refused by the real authorizer.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from oomforensics.archive.layout import SnapshotKey
from oomforensics.archive.store import Archive, SnapshotNotFound
from oomforensics.k8s.status import MAX_OOM_KILLS
from tests.e2e.operator_harness import KubeOperator, apply_crd, kube_events_about, poll
from tests.support.kube.pods import leaky_pod

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
    restarts: dict[str, int] = field(default_factory=dict)  # pod -> OOM kills it shows
    end_reasons: set[str] = field(default_factory=set)  # the kubelet's, for those kills
    recorded: set[tuple[str, int]] = field(default_factory=set)  # (pod, run) with oom.json
    forbidden: list[tuple[str, str]] = field(default_factory=list)  # the authorizer's 403s
    converge_seconds: float = 0.0


async def start_operator(log: Path, namespace: str) -> asyncio.subprocess.Process:
    """`oomforensics run` for one namespace, in the environment the test set up."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            str(OPERATOR),
            "run",
            "-n",
            namespace,
            stdout=out,
            stderr=out,
            env=dict(os.environ),
        )


async def kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL)
    await process.wait()


def investigation(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": NAME}},
            "endpoint": {"portName": "http"},
            "sampling": {"interval": "1s"},
            "triggers": {"cooldown": "3s"},
        },
    }


async def run_scenario(
    operator: KubeOperator,
    image: str,
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
    namespace = operator.namespace
    mi = f"{operator.mi}/{NAME}"
    log = workdir / "operator.log"
    async with operator.kube.async_http() as http:
        await apply_crd(http)
        for i in range(pods):
            body = leaky_pod(
                f"{NAME}-{i}",
                namespace,
                image,
                "mapcache",
                labels={"app": NAME},
                memory_limit="96Mi",
                rate=24,
            )
            created = await http.post(operator.pods, json=body)
            assert created.status_code == 201, created.text
        created = await http.post(operator.mi, json=investigation(namespace))
        assert created.status_code == 201, created.text
        for _ in range(trials):
            process = await start_operator(log, namespace)
            point = rng.uniform(*life)
            outcome.kill_points.append(point)
            await asyncio.sleep(point)  # the fault's moment, chosen at random: not a wait
            await kill(process)
        # At least one OOM kill while the operator is down (on a loaded machine the leak may
        # not have reached the limit yet): the case a restarted operator must not miss.
        await poll(lambda: _killed_pods(http, operator), 240, "an OOM kill while it is down")
        before = (await http.get(mi)).json()["metadata"]["resourceVersion"]
        process = await start_operator(log, namespace)
        started = time.monotonic()
        try:

            async def converged() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
                if process.returncode is not None:
                    raise AssertionError(f"the last operator exited ({process.returncode})")
                agreed = await _converged(http, operator, archive, seen)
                # written by this last operator, not left over from a killed one
                fresh = agreed is not None and agreed[0]["metadata"]["resourceVersion"] != before
                return agreed if fresh else None

            seen: list[str] = []
            try:
                body, pods_then = await poll(
                    converged, 240, "the status to agree with archive and pods"
                )
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; last seen: {seen}") from None
        finally:
            await kill(process)
        outcome.converge_seconds = time.monotonic() - started
        outcome.status = body["status"]
        # the pods as the converged status agreed with them (kills go on after that)
        outcome.restarts = {p["metadata"]["name"]: _kills(p) for p in pods_then}
        outcome.end_reasons = {reason for p in pods_then for reason in _end_reasons(p)}
        for event in await kube_events_about(http, namespace, "MemoryInvestigation", NAME):
            if event["reason"] == "SnapshotCaptured":
                outcome.announced.add(event["message"].rsplit(": ", 1)[-1])
    outcome.archived = await archive.list_snapshots(namespace, NAME)
    outcome.recorded = {
        (key.pod, key.run) for key in outcome.archived if await _has_oom_record(archive, key)
    }
    outcome.incomplete = await archive.list_incomplete(namespace)
    outcome.forbidden = operator.forbidden()
    return outcome


async def _pods(http: httpx.AsyncClient, operator: KubeOperator) -> list[dict[str, Any]]:
    response = await http.get(operator.pods, params={"labelSelector": f"app={NAME}"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _kills(pod: Mapping[str, Any]) -> int:
    """The runs of the pod's container that ended (these containers end only by the kernel's
    OOM kill; `_end_reasons` checks): every run before the current one (restartCount), and
    the current one once it is dead. The kubelet keeps a dead container's restartCount until
    it starts the next one: its end is `state.terminated` at first, then, in
    CrashLoopBackOff, `lastState.terminated` of that same container (same containerID)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not statuses:
        return 0
    status = statuses[0]
    ended = int(status.get("restartCount") or 0)
    last = (status.get("lastState") or {}).get("terminated") or {}
    current = last.get("containerID") is not None and last["containerID"] == status.get(
        "containerID"
    )
    return ended + (1 if "terminated" in (status.get("state") or {}) or current else 0)


def _end_reasons(pod: Mapping[str, Any]) -> set[str]:
    """The kubelet's reasons for the ends its status of `pod` shows."""
    reasons: set[str] = set()
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            if "terminated" in state:
                reasons.add(str(state["terminated"].get("reason")))
    return reasons


async def _killed_pods(http: httpx.AsyncClient, operator: KubeOperator) -> int:
    return sum(1 for p in await _pods(http, operator) if _kills(p) > 0)


async def _converged(
    http: httpx.AsyncClient, operator: KubeOperator, archive: Archive, seen: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The status and the pods, once the status agrees with the archive and the pods."""
    body: dict[str, Any] = (await http.get(f"{operator.mi}/{NAME}")).json()
    status = body.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    keys = await archive.list_snapshots(operator.namespace, NAME)
    count = (status.get("snapshots") or {}).get("count")
    pods = await _pods(http, operator)
    killed = sum(_kills(p) for p in pods)
    listed = len(status.get("oomKills") or [])
    seen[:] = [
        f"conditions {conditions}, snapshots {count} in the status and {len(keys)} in the "
        f"archive, OOM kills {listed} listed of {killed} (the status keeps {MAX_OOM_KILLS})"
    ]
    if conditions.get("Ready") != "True" or conditions.get("Capturing") != "True":
        return None
    if count != len(keys) or listed != min(killed, MAX_OOM_KILLS):
        return None
    return body, pods


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
        (k.pod, k.pod_uid, k.container, k.run) for k in outcome.archived if k.reason == "baseline"
    )
    twice = {what: n for what, n in per_run.items() if n > 1}
    assert not twice, f"two baselines in one run: {twice}"
    listed = [k.path() for k in outcome.archived]
    assert len(listed) == len(set(listed)), "a snapshot stored twice"
    # Every end the kubelet shows is the kernel's OOM kill (so every run that ended counts).
    assert outcome.end_reasons <= {"OOMKilled"}, outcome.end_reasons
    kills = outcome.status.get("oomKills") or []
    runs = [(k["pod"], k["container"], k["run"]) for k in kills]
    assert len(runs) == len(set(runs)), f"an OOM kill listed twice: {runs}"
    assert len(runs) == min(sum(outcome.restarts.values()), MAX_OOM_KILLS)
    # The archive keeps every kill (the status the last MAX_OOM_KILLS): oom.json per run.
    killed_runs = {(pod, run) for pod, n in outcome.restarts.items() for run in range(n)}
    with_snapshots = {(key.pod, key.run) for key in outcome.archived}
    unrecorded = (killed_runs & with_snapshots) - outcome.recorded
    assert not unrecorded, f"OOM kills without oom.json in the archive: {sorted(unrecorded)}"
    assert not outcome.forbidden, f"refused by the chart's RBAC: {outcome.forbidden}"
