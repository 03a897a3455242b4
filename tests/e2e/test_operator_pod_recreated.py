"""A StatefulSet-style pod deleted and created again under the same name is a new pod: a new
uid, its container at restartCount 0 again. The operator must treat it so: its own baseline,
its own run in the archive and in the status, and nothing of the old pod's evidence carried
over (before the pod uid was part of the archive layout, the new pod found the old pod's
`run-0`, took no baseline and counted the old pod's snapshots as its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from oomforensics.archive.manifest import Manifest
from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    operator_environment,
    poll,
    require_cluster,
    running_operator,
)
from tests.support.cluster import ClusterFront, Kubelet
from tests.support.cluster.pods import leaky_pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300)]
NAME = "db"
POD = "db-0"


async def test_a_pod_recreated_under_the_same_name_gets_its_own_baseline_and_runs(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    url = operator_environment(monkeypatch, front, s3, "e2e-recreated", tmp_path / "spool")
    archive = Archive.from_url(url, credentials=s3.credentials, options=s3.options)

    async def manifests() -> list[Manifest]:
        keys = await archive.list_snapshots("default", NAME, POD)
        return [await archive.read_manifest(k) for k in keys]

    def db_pod() -> dict[str, Any]:
        # A service that holds its memory steady: no OOM kill, just a pod with evidence.
        return leaky_pod(POD, "steady", labels={"app": "db"}, memory_limit="256Mi", rate=5)

    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        created = await http.post(PODS, json=db_pod())
        assert created.status_code == 201, created.text
        old_uid = created.json()["metadata"]["uid"]
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": NAME, "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "db"}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
                "triggers": {"cooldown": "1s"},
            },
        }
        assert (await http.post(MI, json=investigation)).status_code == 201

        async def target_with(uid: str, snapshots: int) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{MI}/{NAME}")).json()
            targets = (body.get("status") or {}).get("targets") or []
            ours = [t for t in targets if t.get("uid") == uid]
            return body if ours and ours[0].get("snapshots", 0) >= snapshots else None

        async with running_operator() as operator:
            await poll(lambda: target_with(old_uid, 1), 120, "the baseline of db-0", operator)
            assert (await http.delete(f"{PODS}/{POD}")).status_code == 200

            async def deleted() -> bool:
                return (await http.get(f"{PODS}/{POD}")).status_code == 404

            await poll(deleted, 60, "db-0 to be deleted", operator)
            old = [m for m in await manifests() if m.pod_uid == old_uid]
            recreated = await http.post(PODS, json=db_pod())
            assert recreated.status_code == 201, recreated.text
            new_uid = recreated.json()["metadata"]["uid"]
            assert new_uid != old_uid

            async def new_pod_snapshots() -> list[Manifest] | None:
                mine = [m for m in await manifests() if m.pod_uid == new_uid]
                return mine or None

            new = await poll(new_pod_snapshots, 120, "a snapshot of the new db-0", operator)

            async def status_agrees() -> tuple[dict[str, Any], list[Manifest]] | None:
                """The status counts the new pod's own snapshots, as the archive holds them
                (asked twice around the archive read: a capture may land in between)."""
                before = await target_with(new_uid, 1)
                stored = [m for m in await manifests() if m.pod_uid == new_uid]
                after = await target_with(new_uid, 1)
                if before is None or after is None or before != after:
                    return None
                (target,) = after["status"]["targets"]
                return (after, stored) if target["snapshots"] == len(stored) else None

            body, stored_new = await poll(
                status_agrees, 60, "the status to count the new db-0's snapshots", operator
            )

    # The new pod took a baseline of its own: its diffs start from itself.
    assert new[0].reason == "baseline", [m.reason for m in new]
    assert old and old[0].reason == "baseline"
    assert {m.run for m in new} == {0}  # restartCount 0 again, and still a run of its own
    # In the archive its run is apart from the old pod's run 0, and the old one is intact.
    new_runs = {m.key.path().rsplit("/", 2)[0] for m in new}
    old_runs = {m.key.path().rsplit("/", 2)[0] for m in old}
    assert new_runs.isdisjoint(old_runs)
    assert [m for m in await manifests() if m.pod_uid == old_uid][: len(old)] == old
    # The status shows the new pod only, counting its own snapshots, not the old pod's.
    status = body["status"]
    (target,) = status["targets"]
    assert target["pod"] == POD and target["uid"] == new_uid and target["restartCount"] == 0
    assert target["lastSnapshot"] == stored_new[-1].key.path()
