"""Storage credentials from a Secret in the investigation's namespace, on the real cluster with
the chart's RBAC (`investigationSecrets` grants `get` on that Secret by name): a missing Secret
is a condition naming it (and nothing is lost: the operator waits), and once the Secret exists
the snapshots go to the investigation's own archive."""

from __future__ import annotations

from typing import Any

import pytest

from oomforensics.archive.store import Archive
from tests.e2e.operator_harness import (
    KubeOperator,
    apply_crd,
    condition,
    poll,
    running_operator,
)
from tests.support.kube.images import fixture_image
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(300)]


async def test_credentials_come_from_the_secret_the_spec_names(
    kube_operator: KubeOperator,
    s3: MotoServer,
) -> None:
    kube, namespace = kube_operator.kube, kube_operator.namespace
    started, operator_user = kube_operator.started, kube_operator.user
    kube_operator.rbac_with(
        {"investigationSecrets": [{"namespace": namespace, "names": ["vault-s3"]}]}
    )
    image = fixture_image(kube, "leaky")
    own = s3.archive_url("e2e-own")
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    async with kube.async_http() as http:
        await apply_crd(http)
        steady = leaky_pod(
            "vault", namespace, image, "steady", labels={"app": "vault"}, memory_limit="256Mi"
        )
        created = await http.post(f"/api/v1/namespaces/{namespace}/pods", json=steady)
        assert created.status_code == 201, created.text
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": "vault", "namespace": namespace},
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
        assert (await http.post(mi, json=investigation)).status_code == 201

        async def storage(status: str) -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{mi}/vault")).json()
            return body if condition(body, "StorageReady").get("status") == status else None

        async with running_operator([namespace]) as operator:
            missing = await poll(lambda: storage("False"), 90, "StorageReady False", operator)
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "vault-s3", "namespace": namespace},
                "stringData": {
                    "access_key_id": s3.credentials["access_key_id"],
                    "secret_access_key": s3.credentials["secret_access_key"],
                },
            }
            response = await http.post(f"/api/v1/namespaces/{namespace}/secrets", json=secret)
            assert response.status_code == 201, response.text

            async def stored() -> dict[str, Any] | None:
                body = await storage("True")
                count = (((body or {}).get("status") or {}).get("snapshots") or {}).get("count")
                return body if (count or 0) >= 1 else None

            ready = await poll(stored, 120, "a snapshot once the Secret exists", operator)

    lacking = condition(missing, "StorageReady")
    assert lacking.get("reason") == "SecretNotFound", lacking
    assert f"{namespace}/vault-s3" in lacking["message"]
    assert condition(ready, "StorageReady")["reason"] != "SecretNotFound"
    archive = Archive.from_url(own, credentials=s3.credentials, options=s3.options)
    keys = await archive.list_snapshots(namespace, "vault")
    assert keys and keys[0].reason == "baseline"
    default = Archive.from_url(
        kube_operator.archive_url, credentials=s3.credentials, options=s3.options
    )
    assert await default.list_snapshots(namespace, "vault") == []
    # The operator read the Secret it was told about, by name, and never listed Secrets: the
    # API server's audit log, as the chart's ServiceAccount.
    reads = [
        (e["verb"], e["objectRef"].get("name"))
        for e in kube.audit_events(operator_user, since=started)
        if e.get("objectRef", {}).get("resource") == "secrets"
    ]
    assert ("get", "vault-s3") in reads, reads
    assert all(verb == "get" and name == "vault-s3" for verb, name in reads), reads
