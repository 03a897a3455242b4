"""The Helm chart as Helm v4 renders it: the CRD is the repository's, lint is clean, the
Deployment is hardened and its settings are what the operator reads, bad values are refused
with the key's path, and every object is valid against the Kubernetes schemas."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from oomforensics.cli.main import build_parser
from oomforensics.k8s import settings as settings_module
from oomforensics.k8s.settings import OperatorSettings
from tests.deploy.chart import CHART, NAMESPACE, ROOT, helm, objects, of_kind, render

KUBERNETES_VERSIONS = ("1.30.0", "1.36.0")  # the oldest the chart supports; the test cluster's
EVERYTHING: dict[str, Any] = {
    "image": {"repository": "registry.example/oomforensics", "tag": "0.1.0-rc1"},
    "watchNamespaces": ["payments", "search"],
    "storage": {
        "url": "s3://forensics/prod",
        "options": {"endpoint": "http://minio.storage:9000", "region": "eu-west-1"},
        "secretName": "oomforensics-s3",
    },
    "investigationSecrets": [
        {"namespace": "payments", "names": ["payments-archive", "payments-archive-old"]},
        {"namespace": NAMESPACE, "names": ["shared-archive"]},
    ],
    "rbac": {"proxyAccess": True},
    "notify": {"sinks": [{"type": "slack", "secretRef": {"name": "oncall-slack", "key": "url"}}]},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
    "spool": {"type": "persistentVolumeClaim", "size": "5Gi", "maxBytes": "4Gi"},
    "capture": {"maxProfileBytes": "128Mi", "timeoutSeconds": 45},
    "watchTimeoutSeconds": 120,
    "liveness": {"port": 9090},
    "verbose": True,
    "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
}


def deployment(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (found,) = of_kind(objects(values), "Deployment")
    return found


def environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would set it (fieldRefs resolved)."""
    env = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[item["name"]] = NAMESPACE
    return env


def test_the_chart_carries_the_repository_crd_unchanged() -> None:
    source = ROOT / "crds" / "memoryinvestigations.oomforensics.io.yaml"
    copy = CHART / "crds" / source.name
    assert copy.read_bytes() == source.read_bytes(), (
        "charts/oomforensics/crds/ differs from crds/: cp crds/*.yaml charts/oomforensics/crds/"
    )
    with helm().Chart.load(str(CHART)) as chart:
        (loaded,) = chart.crds
    assert loaded["filename"] == f"oomforensics/crds/{source.name}"
    assert yaml.safe_load(loaded["data"]) == yaml.safe_load(source.read_text())
    # Helm installs crds/ itself: no template renders a CRD (that would delete it on uninstall).
    assert not of_kind(objects(), "CustomResourceDefinition")


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_helm_lint_is_clean(values: dict[str, Any]) -> None:
    for kube_version in (None, "v1.30.0"):
        report = helm().lint(str(CHART), values, strict=True, kube_version=kube_version)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], report


def test_defaults_a_hardened_single_operator_watching_every_namespace() -> None:
    docs = objects()
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Deployment",
        "Service",  # /metrics (test_chart_metrics.py)
        "ServiceAccount",
    ]
    spec = deployment()["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]
    # The liveness probe asks kopf's endpoint, served where `--liveness` says.
    args = build_parser().parse_args(["run", *container["args"]])
    probe = container["livenessProbe"]["httpGet"]
    (port,) = [p for p in container["ports"] if p["name"] == probe["port"]]
    assert args.liveness == f"http://0.0.0.0:{port['containerPort']}{probe['path']}"
    # Writable places: the spool (OOMF_SPOOL_DIR) and /tmp, both volumes.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    env = environment(container)
    assert set(mounts) == {env["OOMF_SPOOL_DIR"], "/tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[env["OOMF_SPOOL_DIR"]]]
    settings = OperatorSettings.from_env(env)
    assert settings.clusterwide and settings.standalone
    assert settings.storage_url is None and settings.storage_secret is None
    assert settings.operator_namespace == NAMESPACE
    assert not args.all_namespaces and not args.namespace  # OOMF_NAMESPACES decides


def test_every_value_reaches_the_operator_settings() -> None:
    docs = objects(EVERYTHING)
    (container,) = deployment(EVERYTHING)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/oomforensics:0.1.0-rc1"
    args = build_parser().parse_args(["run", *container["args"]])
    assert args.verbose and args.liveness == "http://0.0.0.0:9090/healthz"
    assert container["livenessProbe"]["httpGet"]["port"] == "liveness"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"liveness": 9090, "metrics": 8000}
    env = environment(container)
    settings = OperatorSettings.from_env(env)
    assert settings.namespaces == ("payments", "search")
    assert settings.storage_url == "s3://forensics/prod"
    assert dict(settings.storage_options) == {
        "endpoint": "http://minio.storage:9000",
        "region": "eu-west-1",
    }
    assert settings.storage_secret == "oomforensics-s3"
    assert settings.operator_namespace == NAMESPACE
    assert settings.spool_max_bytes == 4 * 2**30
    assert settings.max_profile_bytes == 128 * 2**20
    assert settings.capture_timeout == 45 and settings.watch_timeout == 120
    assert env["AWS_REGION"] == "eu-west-1"
    (claim,) = of_kind(docs, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    volumes = {v["name"]: v for v in deployment(EVERYTHING)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["spool"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (account,) = of_kind(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == EVERYTHING["serviceAccount"]["annotations"]


def test_the_chart_sets_exactly_the_variables_the_operator_reads() -> None:
    documented = set(re.findall(r"^(OOMF_[A-Z_]+)", settings_module.__doc__ or "", re.M))
    for values in ({}, EVERYTHING):
        (container,) = deployment(values)["spec"]["template"]["spec"]["containers"]
        ours = {e["name"] for e in container["env"] if e["name"].startswith("OOMF_")}
        assert ours <= documented, ours - documented
    # Every setting has a value in the chart (a new one needs a value and a schema entry).
    assert ours == documented, documented - ours


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"watchNamespaces": ["Payments"]}, "at '/watchNamespaces/0': 'Payments' does not match"),
        ({"watchNamespaces": ["a", "a"]}, "at '/watchNamespaces'"),
        ({"storage": {"url": "https://bucket/x"}}, "at '/storage/url'"),
        (
            {"storage": {"options": {"secret_access_key": "hunter2"}}},
            "at '/storage/options': additional properties 'secret_access_key' not allowed",
        ),
        ({"storage": {"secretName": "Not A Name"}}, "at '/storage/secretName'"),
        ({"investigationSecrets": [{"namespace": "x"}]}, "missing property 'names'"),
        ({"rbac": {"proxyAcess": True}}, "additional properties 'proxyAcess' not allowed"),
        ({"spool": {"type": "hostPath"}}, "at '/spool/type'"),
        ({"spool": {"size": "1GB"}}, "at '/spool/size': '1GB' does not match"),
        ({"runAsUser": 0}, "at '/runAsUser': minimum: got 0, want 1"),
        ({"liveness": {"port": 80}}, "at '/liveness/port'"),
        ({"capture": {"timeoutSeconds": 0}}, "at '/capture/timeoutSeconds'"),
        ({"image": {"repository": ""}}, "at '/image/repository'"),
        ({"serviceAccount": {"create": False}}, "at '/serviceAccount/name'"),
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    ],
)
def test_bad_values_are_refused_with_the_key_path(values: dict[str, Any], message: str) -> None:
    sdk = helm()
    with pytest.raises(sdk.HelmValuesError) as refused:
        render(values)
    assert message in str(refused.value)


def test_the_chart_sets_the_operator_variables_itself() -> None:
    sdk = helm()
    with pytest.raises(sdk.HelmRenderError, match="extraEnv: OOMF_NAMESPACES is the chart's"):
        render({"extraEnv": [{"name": "OOMF_NAMESPACES", "value": "x"}]})


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_every_object_is_valid_for_kubernetes(values: dict[str, Any]) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    crd = yaml.safe_load((CHART / "crds" / "memoryinvestigations.oomforensics.io.yaml").read_text())
    for version in KUBERNETES_VERSIONS:
        for doc in [*objects(values), crd]:
            try:
                validate.validate(doc, version, strict=True)
            except validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                pytest.fail(f"{name} is invalid for Kubernetes {version}: {where}: {exc.message}")
