"""Storage credentials from a Secret in the investigation's namespace: a missing Secret is a
condition naming it (and nothing is lost: the operator waits), and once the Secret exists the
snapshots go to the investigation's own archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    condition,
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
SECRETS = "/api/v1/namespaces/default/secrets"


async def test_credentials_come_from_the_secret_the_spec_names(
    front: ClusterFront,
    kubelet: Kubelet,
    s3: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_cluster(front)
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    operator_environment(monkeypatch, front, s3, "e2e-default", tmp_path / "spool")
    own = s3.archive_url("e2e-own")
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        steady = leaky_pod("vault", "steady", labels={"app": "vault"}, memory_limit="256Mi")
        assert (await http.post(PODS, json=steady)).status_code == 201
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "vault", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "vault"}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "storage": {
                    "url": own,
                    "secretRef": {"name": "vault-s3"},
                    "options": s3.options,
                },
            },
        }
        assert (await http.post(MI, json=investigation)).status_code == 201

        async def storage(status: str) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{MI}/vault")).json()
            return body if condition(body, "StorageReady").get("status") == status else None

        async with running_operator() as operator:
            missing = await poll(lambda: storage("False"), 60, "StorageReady False", operator)
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "vault-s3", "namespace": "default"},
                "stringData": {
                    "access_key_id": s3.credentials["access_key_id"],
                    "secret_access_key": s3.credentials["secret_access_key"],
                },
            }
            assert (await http.post(SECRETS, json=secret)).status_code == 201

            async def stored() -> dict[str, Any] | None:
                body = await storage("True")
                count = (((body or {}).get("status") or {}).get("snapshots") or {}).get("count")
                return body if (count or 0) >= 1 else None

            ready = await poll(stored, 90, "a snapshot once the Secret exists", operator)

    lacking = condition(missing, "StorageReady")
    assert lacking.get("reason") == "SecretNotFound"
    assert "default/vault-s3" in lacking["message"]
    assert condition(ready, "StorageReady")["reason"] != "SecretNotFound"
    archive = Archive.from_url(own, credentials=s3.credentials, options=s3.options)
    keys = await archive.list_snapshots("default", "vault")
    assert keys and keys[0].reason == "baseline"
    default = Archive.from_url(
        s3.archive_url("e2e-default"), credentials=s3.credentials, options=s3.options
    )
    assert await default.list_snapshots("default", "vault") == []
    # The operator read the Secret it was told about, by name; it never lists Secrets.
    # (Investigations other tests left behind may read their own, by name too.)
    reads = [c for c in front.calls if c.resource == "secrets" and c.verb != "create"]
    assert ("get", "vault-s3") in {(c.verb, c.name) for c in reads}
    assert all(c.verb == "get" and c.name for c in reads), reads
