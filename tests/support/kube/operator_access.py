"""The operator's identity on the test cluster: the chart's ServiceAccount with the chart's
rendered RBAC, and a kubeconfig holding a token of that account from the TokenRequest API.

The chart is rendered by Helm's own Go SDK (tests/deploy/chart.py); its ServiceAccount and
RBAC objects are applied as rendered. The operator then runs as a process with that token:
every request it makes meets the real RBAC authorizer, so a rule the chart lacks fails the
test with a 403. (The chart's Deployment is not applied: the operator image needs a Docker
engine to build.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.chart import NAMESPACE, objects
from tests.support.kube.cluster import KubeCluster

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
TOKEN_SECONDS = 3600


def chart_rbac(
    watch_namespaces: Sequence[str] = (), values: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The ServiceAccount and RBAC objects of an install of release `oomf` in NAMESPACE."""
    merged: dict[str, Any] = {"watchNamespaces": list(watch_namespaces), **dict(values or {})}
    return [doc for doc in objects(merged) if doc["kind"] in RBAC_KINDS]


def operator_kubeconfig(
    kube: KubeCluster,
    path: Path,
    *,
    watch_namespaces: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
    without_api_groups: Sequence[str] = (),
) -> tuple[Path, str]:
    """Apply the chart's RBAC, request a token for its ServiceAccount, write a kubeconfig.

    `without_api_groups`: the rendered rules on these API groups are left out (a test of
    what the operator does when the real authorizer refuses them).

    Returns the kubeconfig and the account's user name (system:serviceaccount:NS:NAME).
    """
    kube.ensure_namespace(NAMESPACE)
    for namespace in watch_namespaces:
        kube.ensure_namespace(namespace)
    docs = chart_rbac(watch_namespaces, values)
    if without_api_groups:
        docs = [_without(doc, without_api_groups) for doc in docs]
    kube.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    (account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    with kube.http() as http:
        response = http.post(
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS},
            },
        )
    assert response.status_code == 201, response.text
    token = response.json()["status"]["token"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": kube.url, "certificate-authority": str(kube.ca_file)},
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": account}}],
        "current-context": "test",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path, f"system:serviceaccount:{NAMESPACE}:{account}"


def _without(doc: dict[str, Any], api_groups: Sequence[str]) -> dict[str, Any]:
    """A Role or ClusterRole without its rules on `api_groups` (other kinds unchanged)."""
    if doc["kind"] not in ("Role", "ClusterRole"):
        return doc
    rules = [r for r in doc.get("rules") or [] if not set(r["apiGroups"]) & set(api_groups)]
    return {**doc, "rules": rules}
