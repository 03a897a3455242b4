"""The examples apply to the real API server of the test cluster (as `kubectl apply -n NS`
sends them), the operator reads their specs, and what they say about
each other holds: the investigation selects the Deployment's pods and names its pprof port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from oomforensics.k8s.spec import parse_spec
from tests.e2e.operator_harness import apply_crd, kube_namespace
from tests.support.kube import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
COLLECTIONS = {
    ("oomforensics.io/v1alpha1", "MemoryInvestigation"): (
        "/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    ),
    ("v1", "Secret"): "/api/v1/namespaces/{namespace}/secrets",
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_examples_are_there() -> None:
    kinds = {p.name: sorted(d["kind"] for d in documents(p)) for p in EXAMPLES}
    assert kinds == {
        "go-deployment.yaml": ["Deployment", "MemoryInvestigation"],
        "notify.yaml": ["MemoryInvestigation", "Secret"],
        "proxy-access.yaml": ["MemoryInvestigation"],
        "s3-with-secret.yaml": ["MemoryInvestigation", "Secret"],
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
async def test_an_example_applies_to_the_cluster(path: Path, kube: KubeCluster) -> None:
    with kube_namespace(kube, "examples") as namespace:
        async with kube.async_http() as http:
            await apply_crd(http)
            for doc in documents(path):
                key = (doc["apiVersion"], doc["kind"])
                if key not in COLLECTIONS:
                    continue  # workloads: checked against the Kubernetes schemas below
                assert "namespace" not in doc["metadata"], "examples take the namespace from -n"
                url = COLLECTIONS[key].format(namespace=namespace)
                created = await http.post(url, json=doc)
                assert created.status_code == 201, f"{path.name}: {created.text}"
                if doc["kind"] == "MemoryInvestigation":
                    served = (await http.get(f"{url}/{doc['metadata']['name']}")).json()
                    parse_spec(served["spec"])  # the operator accepts it as the server keeps it


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_example_is_valid_for_kubernetes(path: Path) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    for doc in documents(path):
        if doc["apiVersion"].startswith("oomforensics.io/"):
            continue  # the CRD's own schema judges these, on the API server above
        validate.validate(doc, "1.30.0", strict=True)


def test_the_investigation_selects_the_deployment_and_its_pprof_port() -> None:
    docs = {d["kind"]: d for d in documents(ROOT / "examples" / "go-deployment.yaml")}
    template = docs["Deployment"]["spec"]["template"]
    spec = parse_spec(docs["MemoryInvestigation"]["spec"])
    labels = template["metadata"]["labels"]
    selector = docs["MemoryInvestigation"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == spec.container]
    assert spec.endpoint.port_name in {p["name"] for p in container["ports"]}
    assert container["resources"]["limits"]["memory"]
