"""The chart's metrics parts as Helm v4 renders them: the container port `metrics` is the one
the operator listens on, a Service selects the operator's pod on it, an optional
ServiceMonitor scrapes that Service, and the example PrometheusRules fire, under Prometheus'
own engine (tests/deploy/promql), on the series the operator exports, and only then."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from oomforensics.k8s import metrics
from oomforensics.k8s.settings import OperatorSettings
from tests.deploy.chart import CHART, NAMESPACE, helm, objects, of_kind, render
from tests.deploy.test_chart import environment

EVALUATOR = Path(__file__).resolve().parent / "promql"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oomforensics"
MONITORING: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "labels": {"role": "alert-rules"}},
    }
}


def operator_container(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (deployment,) = of_kind(objects(values), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def alerts(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    (rule,) = of_kind(objects({**MONITORING, **(values or {})}), "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    return {r["alert"]: r for r in group["rules"]}


def test_the_container_port_is_the_one_the_operator_listens_on() -> None:
    for port in (8000, 9102):
        container = operator_container({"metrics": {"port": port}})
        settings = OperatorSettings.from_env(environment(container))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == settings.metrics_port == port
        assert settings.metrics_address == ""  # every interface: Prometheus scrapes the pod IP


def test_a_service_selects_the_operator_pod_on_the_metrics_port() -> None:
    docs = objects()
    (service,) = of_kind(docs, "Service")
    (deployment,) = of_kind(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["metadata"]["namespace"] == NAMESPACE
    ((port),) = service["spec"]["ports"]
    assert port == {"name": "metrics", "port": 8000, "targetPort": "metrics", "protocol": "TCP"}
    # No Prometheus Operator objects unless asked for: their CRDs may not be installed.
    assert not of_kind(docs, "ServiceMonitor") and not of_kind(docs, "PrometheusRule")
    assert not of_kind(objects({"metrics": {"service": {"enabled": False}}}), "Service")


def test_the_service_monitor_scrapes_that_service_keeping_the_metrics_namespace() -> None:
    docs = objects(MONITORING)
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (service,) = of_kind(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    # The series' own `namespace` (the investigation's) must not become exported_namespace.
    assert endpoint["honorLabels"] is True
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("30s", "10s")


def test_a_service_monitor_without_the_service_is_refused() -> None:
    sdk = helm()
    values = {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}
    with pytest.raises(sdk.HelmRenderError, match=r"needs metrics\.service\.enabled"):
        render(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"metrics": {"port": 80}}, "at '/metrics/port'"),
        ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "interval"),
        ({"metrics": {"prometheusRule": {"spoolGrowingFor": "soon"}}}, "spoolGrowingFor"),
        ({"metrics": {"serviceMonitr": {}}}, "additional properties 'serviceMonitr'"),
    ],
)
def test_bad_metrics_values_are_refused(values: dict[str, Any], message: str) -> None:
    sdk = helm()
    with pytest.raises(sdk.HelmValuesError, match=re.escape(message)):
        render(values)


def test_lint_is_clean_with_the_monitoring_objects() -> None:
    report = helm().lint(str(CHART), MONITORING, strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_the_rules_use_only_series_and_label_values_the_operator_exports() -> None:
    names = set()
    for family in metrics.REGISTRY.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
        }.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    values = {
        "outcome": {o.value for o in metrics.CaptureOutcome},
        "error": {e.value for e in metrics.ArchiveErrorKind},
        "evidence": {"true", "false"},
    }
    found = alerts()
    assert set(found) >= {
        "OOMForensicsOOMKillWithEvidence",
        "OOMForensicsSpoolGrowing",
        "OOMForensicsCapturesFailing",
    }
    for alert, rule in found.items():
        used = set(re.findall(r"\boomforensics_[a-z_]+", rule["expr"]))
        assert used and used <= names, (alert, used - names)
        for label, op, pattern in re.findall(r'(\w+)(=~|=)"([^"]*)"', rule["expr"]):
            wanted = set(pattern.split("|")) if op == "=~" else {pattern}
            assert wanted <= values[label], (alert, label, wanted - values[label])
        # Helm left Prometheus' own templates alone: they name the investigation.
        annotations = " ".join(rule["annotations"].values())
        assert "{{ $labels." in annotations, alert
        assert rule["labels"]["severity"] in ("warning", "critical")
    assert found["OOMForensicsSpoolGrowing"]["for"] == "15m"
    assert (
        alerts({"metrics": {"prometheusRule": {"enabled": True, "spoolGrowingFor": "1h"}}})[
            "OOMForensicsSpoolGrowing"
        ]["for"]
        == "1h"
    )


# --- the rules under Prometheus' engine ---------------------------------------------------


@functools.cache
def evaluator() -> Path:
    """tests/deploy/promql built once per source version (go test -c), in the cache."""
    from tests.support.gopprof import go_binary

    try:
        go = go_binary()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "eval_test.go"):
        digest.update((EVALUATOR / name).read_bytes())
    binary = CACHE / "promqleval" / digest.hexdigest()[:16] / "promqleval.test"
    if not binary.is_file():
        binary.parent.mkdir(parents=True, exist_ok=True)
        built = subprocess.run(
            [go, "test", "-c", "-o", str(binary), "."],
            cwd=EVALUATOR,
            capture_output=True,
            text=True,
            check=False,
            timeout=540,
        )
        if built.returncode != 0:
            binary.unlink(missing_ok=True)
            pytest.fail(f"building tests/deploy/promql failed:\n{built.stderr[-3000:]}")
    return binary


def evaluate(load: str, queries: list[tuple[str, float]], tmp: Path) -> list[list[dict[str, Any]]]:
    """Each (expr, minute) evaluated over the series of `load` (promqltest's syntax, one
    sample a minute); the samples of each result."""
    source, target = tmp / "in.json", tmp / "out.json"
    doc = {"load": load, "queries": [{"expr": e, "at": m * 60} for e, m in queries]}
    source.write_text(json.dumps(doc))
    ran = subprocess.run(
        [str(evaluator()), "-test.run", "TestEvaluate"],
        env={**os.environ, "PROMQL_IN": str(source), "PROMQL_OUT": str(target)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    results = json.loads(target.read_text())
    for (expr, _), result in zip(queries, results, strict=True):
        assert not result.get("error"), (expr, result["error"])
    return [r["samples"] for r in results]


def series(name: str, labels: dict[str, str], values: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"  {name}{{{inner}}} {values}\n"


def fires(samples: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    return {tuple(sorted(s["labels"].values())) for s in samples}


SHOP = {"namespace": "shop", "investigation": "db"}
CART = {"namespace": "cart", "investigation": "api"}
ARCHIVE = {"archive": "s3://forensics/prod"}


@pytest.mark.gotool
def test_an_oom_kill_with_evidence_alerts_at_once_and_one_without_does_not(
    tmp_path: Path,
) -> None:
    expr = alerts()["OOMForensicsOOMKillWithEvidence"]["expr"]
    kills = "oomforensics_oom_kills_total"
    # The series exist at 0 from the first status write (metrics.note_conditions).
    load = "load 1m\n" + series(kills, {**SHOP, "evidence": "true"}, "0x5 1x30")
    load += series(kills, {**CART, "evidence": "false"}, "0x5 1x30")
    before, after, later = evaluate(load, [(expr, 4), (expr, 6), (expr, 20)], tmp_path)
    assert before == [] and later == []  # resolved ten minutes on
    assert fires(after) == {("db", "shop")}


@pytest.mark.gotool
def test_a_spool_that_keeps_growing_alerts_and_one_that_drained_does_not(tmp_path: Path) -> None:
    expr = alerts()["OOMForensicsSpoolGrowing"]["expr"]
    # The store goes down after minute 5: a snapshot a minute is spooled, 2 MB each, for 30
    # minutes; then it answers and the spool drains.
    load = "load 1m\n"
    load += series("oomforensics_spool_snapshots", ARCHIVE, "0x5 1+1x29 0x20")
    load += series("oomforensics_spool_bytes", ARCHIVE, "0x5 2000000+2000000x29 0x20")
    results = evaluate(load, [(expr, 3), (expr, 20), (expr, 34), (expr, 50)], tmp_path)
    assert [bool(r) for r in results] == [False, True, True, False]
    assert results[1][0]["value"] == 15  # the snapshots waiting, for the summary
    full = alerts()["OOMForensicsSpoolNearlyFull"]["expr"]
    load += series("oomforensics_spool_capacity_bytes", ARCHIVE, "50000000x55")
    results = evaluate(load, [(full, 20), (full, 30)], tmp_path)
    assert [bool(r) for r in results] == [False, True]  # 32 MB, then 52 MB of 50 MB


@pytest.mark.gotool
def test_captures_failing_alert_only_while_none_succeeds(tmp_path: Path) -> None:
    expr = alerts()["OOMForensicsCapturesFailing"]["expr"]
    captures = "oomforensics_captures_total"
    failed = {"reason": "periodic", "outcome": "capture_failed"}
    stored = {"reason": "periodic", "outcome": "stored"}
    # shop/db: its endpoint refuses every capture from minute 10 (retried every 5 minutes).
    load = "load 1m\n" + series(captures, {**SHOP, **stored}, "1+1x9 10x40")
    load += series(captures, {**SHOP, **failed}, "0x10 1x4 2x4 3x4 4x4 5x4 6x4 7x4 8x4")
    # cart/api: one capture in three fails, the others succeed: it is taking evidence.
    load += series(captures, {**CART, **stored}, "0+2x49")
    load += series(captures, {**CART, **failed}, "0+1x49")
    results = evaluate(load, [(expr, 8), (expr, 30)], tmp_path)
    assert results[0] == []
    assert fires(results[1]) == {("db", "shop")}


@pytest.mark.gotool
def test_a_lost_snapshot_alerts_as_critical(tmp_path: Path) -> None:
    rule = alerts()["OOMForensicsSnapshotLost"]
    assert rule["labels"]["severity"] == "critical"
    errors = "oomforensics_archive_errors_total"
    load = "load 1m\n" + series(errors, {**SHOP, "error": "write_failed"}, "0x5 1x20")
    load += series(errors, {**CART, "error": "store_unavailable"}, "0+1x25")  # spooled: safe
    results = evaluate(load, [(rule["expr"], 4), (rule["expr"], 7)], tmp_path)
    assert results[0] == [] and fires(results[1]) == {("db", "shop")}
