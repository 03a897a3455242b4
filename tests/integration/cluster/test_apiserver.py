"""The API server harness does what a cluster does with a CRD and its custom resources.

A small throw-away CRD, driven through plain HTTP: these tests prove the harness (real
defaulting, validation, status subresource, generation, Table output), not the project's CRD.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.apiserver import (
    KUBECTL_BIN,
    KUBECTL_HINT,
    ApiServer,
    kubectl_present,
    wait_for_crd,
)

GROUP = "harness.oomforensics.io"
VERSION = "v1alpha1"
PLURAL = "widgets"
CRD_NAME = f"{PLURAL}.{GROUP}"
NAMESPACE = "team-a"  # no such namespace exists: this server has no namespaces at all
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 100},
                                    "color": {
                                        "type": "string",
                                        "enum": ["blue", "red"],
                                        "default": "blue",
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "observedGeneration": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def http(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=apiserver.url, verify=apiserver.ssl_context(), timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def widgets(http: httpx.Client) -> str:
    """The Widget CRD, established and served; returns the collection path in NAMESPACE."""
    response = http.post(CRDS, json=WIDGET_CRD)
    assert response.status_code == 201, response.text
    wait_for_crd(http, CRD_NAME)
    return WIDGETS


def test_version_is_kubernetes_1_36(http: httpx.Client) -> None:
    version = http.get("/version").json()
    assert version["gitVersion"].startswith("v1.36."), version
    assert (version["major"], version["minor"]) == ("1", "36")


def test_only_the_admin_certificate_is_authorized(apiserver: ApiServer) -> None:
    # Trusting the server but presenting no certificate: anonymous. Authorization is delegated
    # to this same server, which has no SubjectAccessReview API: refused with a 500 (only
    # system:masters is allowed without asking). Tests of RBAC need a real cluster.
    context = ssl.create_default_context(cafile=str(apiserver.ca_file))
    with httpx.Client(base_url=apiserver.url, verify=context) as anonymous:
        response = anonymous.get(CRDS)
    assert response.status_code == 500, response.text
    assert "subjectaccessreviews" in response.text


def test_crd_is_structural_and_served(http: httpx.Client, widgets: str) -> None:
    crd = http.get(f"{CRDS}/{CRD_NAME}").json()
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert "NonStructuralSchema" not in conditions
    resources = http.get(f"/apis/{GROUP}/{VERSION}").json()["resources"]
    names = {r["name"]: r for r in resources}
    assert set(names) == {PLURAL, f"{PLURAL}/status"}
    assert names[PLURAL]["namespaced"] is True
    assert names[PLURAL]["shortNames"] == ["wd"]


def test_namespaced_create_needs_no_namespace_and_defaults_apply(
    http: httpx.Client, widgets: str
) -> None:
    assert http.get(f"/api/v1/namespaces/{NAMESPACE}").status_code == 404  # no core API here
    response = http.post(widgets, json=widget("defaulted", size=3))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["spec"] == {"size": 3, "color": "blue"}
    assert created["metadata"]["namespace"] == NAMESPACE
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["resourceVersion"]
    stored = http.get(f"{widgets}/defaulted").json()
    assert stored["spec"]["color"] == "blue"
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]


def test_unknown_fields_are_pruned(http: httpx.Client, widgets: str) -> None:
    body = widget("pruned", size=4, shape="round")
    response = http.post(widgets, json=body)
    assert response.status_code == 201, response.text
    assert "shape" not in response.json()["spec"]
    # The server says what it dropped.
    assert "shape" in response.headers.get("warning", ""), response.headers


def test_table_output_has_the_printer_columns(http: httpx.Client, widgets: str) -> None:
    response = http.post(widgets, json=widget("tabled", size=7, color="red"))
    assert response.status_code == 201, response.text
    table = http.get(widgets, headers={"Accept": TABLE}).json()
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Size", "Color", "Phase", "Age"]
    rows = {row["cells"][0]: row["cells"] for row in table["rows"]}
    name, size, color, phase, age = rows["tabled"]
    assert (name, size, color, phase) == ("tabled", 7, "red", None)
    assert age.endswith("s")  # e.g. "0s"


def test_status_subresource_and_generation(http: httpx.Client, widgets: str) -> None:
    response = http.post(widgets, json=widget("lifecycle", size=1))
    assert response.status_code == 201, response.text
    path = f"{widgets}/lifecycle"

    # Status through the status subresource: stored, generation unchanged.
    patch = {"status": {"phase": "Ready", "observedGeneration": 1}}
    response = http.patch(f"{path}/status", content=json.dumps(patch), headers=MERGE_PATCH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == {"phase": "Ready", "observedGeneration": 1}
    assert response.json()["metadata"]["generation"] == 1

    # Status through the main resource is ignored (the subresource owns it).
    patch = {"status": {"phase": "Hijacked"}}
    response = http.patch(path, content=json.dumps(patch), headers=MERGE_PATCH)
    assert response.status_code == 200, response.text
    assert response.json()["status"]["phase"] == "Ready"

    # Metadata changes do not bump the generation either.
    patch = {"metadata": {"labels": {"team": "a"}}}
    response = http.patch(path, content=json.dumps(patch), headers=MERGE_PATCH)
    assert response.json()["metadata"]["labels"] == {"team": "a"}
    assert response.json()["metadata"]["generation"] == 1

    # A spec change does; spec through the status subresource is ignored.
    patch = {"spec": {"size": 2}}
    response = http.patch(f"{path}/status", content=json.dumps(patch), headers=MERGE_PATCH)
    assert response.json()["spec"]["size"] == 1
    assert response.json()["metadata"]["generation"] == 1
    response = http.patch(path, content=json.dumps(patch), headers=MERGE_PATCH)
    assert response.status_code == 200, response.text
    assert response.json()["spec"] == {"size": 2, "color": "blue"}
    assert response.json()["metadata"]["generation"] == 2

    # The Table shows the status column now.
    table = http.get(path, headers={"Accept": TABLE}).json()
    assert table["rows"][0]["cells"][1:4] == [2, "blue", "Ready"]


@pytest.mark.parametrize(
    ("spec", "field", "detail"),
    [
        ({"size": 0}, "spec.size", "should be greater than or equal to 1"),
        ({"size": "big"}, "spec.size", 'must be of type integer: "string"'),
        ({"size": 5, "color": "green"}, "spec.color", 'Unsupported value: "green"'),
        ({}, "spec.size", "Required value"),
    ],
)
def test_invalid_widgets_are_rejected_naming_the_field(
    http: httpx.Client, widgets: str, spec: dict[str, Any], field: str, detail: str
) -> None:
    response = http.post(widgets, json=widget("invalid", **spec))
    assert response.status_code == 422, response.text
    status = response.json()
    assert status["kind"] == "Status"
    assert status["reason"] == "Invalid"
    assert field in status["message"] and detail in status["message"], status["message"]
    assert {cause["field"] for cause in status["details"]["causes"]} == {field}
    assert http.get(f"{widgets}/invalid").status_code == 404


def test_invalid_update_is_rejected_and_leaves_the_object(http: httpx.Client, widgets: str) -> None:
    response = http.post(widgets, json=widget("guarded", size=10))
    assert response.status_code == 201, response.text
    patch = {"spec": {"size": 1000}}
    response = http.patch(f"{widgets}/guarded", content=json.dumps(patch), headers=MERGE_PATCH)
    assert response.status_code == 422, response.text
    assert "spec.size" in response.json()["message"]
    stored = http.get(f"{widgets}/guarded").json()
    assert stored["spec"]["size"] == 10
    assert stored["metadata"]["generation"] == 1


def test_kubectl_reads_the_apiextensions_group(apiserver: ApiServer, widgets: str) -> None:
    # kubectl's discovery of /api fails on this server (expected: a front answers it later);
    # `get --raw` needs no discovery.
    if not kubectl_present():
        pytest.fail(f"kubectl not found at {KUBECTL_BIN}: {KUBECTL_HINT}")
    base = [str(KUBECTL_BIN), f"--kubeconfig={apiserver.kubeconfig}", "--request-timeout=30s"]

    def kubectl(*args: str) -> Any:
        result = subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    group = kubectl("get", "--raw", "/apis/apiextensions.k8s.io/v1")
    assert group["kind"] == "APIResourceList"
    assert "customresourcedefinitions" in {r["name"] for r in group["resources"]}
    crd = kubectl("get", "--raw", f"{CRDS}/{CRD_NAME}")
    assert crd["spec"]["names"]["kind"] == "Widget"
