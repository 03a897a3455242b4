"""The MemoryInvestigation spec: durations, defaults, and errors that name the field."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from oomforensics.k8s.spec import InvalidSpec, parse_duration, parse_spec

# What the API server stores for a minimal spec (the CRD's defaults filled in).
DEFAULTED: dict[str, Any] = {
    "selector": {"matchLabels": {"app": "checkout"}},
    "endpoint": {"path": "/debug/pprof", "scheme": "http", "access": "direct"},
    "sampling": {"interval": "15s"},
    "snapshots": {"interval": "10m", "profiles": ["heap", "heapText", "goroutine"], "gc": False},
    "triggers": {
        "limitPercent": [80, 90, 95],
        "predictive": {"horizon": "2m"},
        "growthPercent": 50,
        "cooldown": "30s",
    },
    "retention": {"keepNewest": 10, "maxBytesPerRun": "256Mi"},
    "summary": {"topN": 5},
    "suspend": False,
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("10m", 600), ("1h30m", 5400), ("500ms", 0.5), ("0s", 0), ("1.5h", 5400)],
)
def test_durations_read_as_go_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text, "spec.x") == seconds


@pytest.mark.parametrize("text", ["", "15", "10 m", "1d", "m10", "-1s", "1h30", 15])
def test_bad_durations_name_the_field(text: object) -> None:
    with pytest.raises(InvalidSpec, match=r"^spec\.sampling\.interval: ") as caught:
        parse_duration(text, "spec.sampling.interval")
    assert caught.value.field == "spec.sampling.interval"


def test_a_defaulted_spec_gives_the_engine_its_settings() -> None:
    spec = parse_spec(DEFAULTED)
    triggers = spec.trigger_settings()
    assert triggers.interval == 600 and triggers.thresholds == (80, 90, 95)
    assert triggers.horizon == 120 and triggers.cooldown == 30 and triggers.growth_ratio == 0.5
    assert triggers.sample_interval == 15 and triggers.min_sample_interval == 1
    assert spec.profiles == ("heap", "heapText", "goroutine") and spec.gc is False
    assert spec.endpoint.access == "direct" and spec.endpoint.port is None
    assert spec.max_bytes_per_run == 256 * 2**20 and spec.storage.url is None


def test_selectors_match_labels_and_expressions() -> None:
    spec = parse_spec(
        {
            "selector": {
                "matchLabels": {"app": "checkout"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["web", "api"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            }
        }
    )
    assert spec.selector.matches({"app": "checkout", "tier": "api"})
    assert not spec.selector.matches({"app": "checkout", "tier": "db"})
    assert not spec.selector.matches({"app": "checkout", "tier": "api", "canary": "1"})
    assert not spec.selector.matches({"app": "cart", "tier": "api"})


def with_change(path: str, value: Any) -> dict[str, Any]:
    import copy

    spec = copy.deepcopy(DEFAULTED)
    *parents, last = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return spec


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("sampling.interval", "10", "spec.sampling.interval"),
        ("sampling.interval", "500ms", "spec.sampling.interval"),
        ("snapshots.interval", "10s", "spec.snapshots.interval"),
        ("snapshots.profiles", ["goroutine"], "spec.snapshots.profiles"),
        ("snapshots.profiles", ["heap", "cpu"], "spec.snapshots.profiles"),
        ("triggers.limitPercent", [80, 120], "spec.triggers.limitPercent"),
        ("triggers.cooldown", "soon", "spec.triggers.cooldown"),
        ("endpoint.path", "http://evil.example/x", "spec.endpoint.path"),
        ("endpoint.path", "/debug/../admin", "spec.endpoint.path"),
        ("endpoint.port", 70000, "spec.endpoint.port"),
        ("endpoint.access", "exec", "spec.endpoint.access"),
        ("selector", {}, "spec.selector"),
        (
            "selector",
            {"matchExpressions": [{"key": "a", "operator": "Near"}]},
            "spec.selector.matchExpressions[0].operator",
        ),
        ("storage", {"secretRef": {}}, "spec.storage.secretRef.name"),
        ("retention.maxBytesPerRun", "lots", "spec.retention.maxBytesPerRun"),
        ("summary.topN", 0, "spec.summary.topN"),
        ("suspend", "yes", "spec.suspend"),
    ],
)
def test_invalid_fields_are_named(path: str, value: Any, field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(with_change(path, value))
    assert caught.value.field == field
    assert str(caught.value).startswith(field + ": ")


def test_port_and_port_name_are_exclusive() -> None:
    spec = with_change("endpoint.port", 6060)
    spec["endpoint"]["portName"] = "http"
    with pytest.raises(InvalidSpec, match=r"^spec\.endpoint: set port or portName"):
        parse_spec(spec)


def test_the_spec_model_is_pure() -> None:
    """spec.py is data in, data out: reading it loads no network or Kubernetes library."""
    code = (
        "import sys, oomforensics.k8s.spec\n"
        "print(sorted(m for m in ('httpx', 'obstore', 'kopf', 'kubernetes') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
