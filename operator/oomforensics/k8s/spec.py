"""The MemoryInvestigation spec as a frozen value (pure: no I/O).

The API server has already filled in the CRD's defaults and checked its patterns; parsing
here still checks what it relies on, and every error names the field, so a spec written by
hand (or by an older CRD) becomes a condition a user can act on, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oomforensics.durations import EXAMPLES, InvalidDuration
from oomforensics.durations import parse_duration as _seconds
from oomforensics.errors import OomForensicsError
from oomforensics.notify.messages import NotificationKind, SinkType
from oomforensics.quantity import InvalidQuantity, parse_memory
from oomforensics.triggers.model import TriggerSettings

# The spec's defaults, in the CRD's own shape and spelling: the one source of them. The CRD's
# `default:` values must equal these (tests/unit/k8s/test_defaults.py), the API server fills
# them in, and parse_spec falls back on them for a spec written without them.
SPEC_DEFAULTS: Mapping[str, Any] = {
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


def default(*path: str) -> Any:
    """The default of one spec field, by its path below `spec` ("sampling", "interval")."""
    value: Any = SPEC_DEFAULTS
    for part in path:
        value = value[part]
    return value


_PATH = re.compile(r"^/[^?#\s]*$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# spec.snapshots.profiles, as the CRD's enum names them (capture/ maps each to its file).
PROFILES = ("heap", "heapText", "goroutine", "allocs")
ACCESS_MODES = ("direct", "apiserver-proxy")
# spec.notify: the sinks' types and the events they can ask for.
SINK_TYPES = tuple(t.value for t in SinkType)
NOTIFY_EVENTS = tuple(k.value for k in NotificationKind)
MAX_SINKS = 10
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class InvalidSpec(OomForensicsError, ValueError):
    """A spec field that cannot be used; `field` is its path (e.g. `spec.sampling.interval`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def parse_duration(text: object, field: str) -> float:
    """A Go-style duration ("15s", "10m", "1h30m", "500ms") in seconds."""
    try:
        return _seconds(text)
    except InvalidDuration:
        raise InvalidSpec(field, f"expected a duration such as {EXAMPLES}, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist


@dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the pprof handlers are: a port (number or name) and a path, never a host."""

    port: int | None = None
    port_name: str | None = None
    path: str = default("endpoint", "path")
    scheme: str = default("endpoint", "scheme")
    access: str = default("endpoint", "access")


@dataclass(frozen=True, slots=True)
class StorageSpec:
    url: str | None = None  # None: the operator's default
    secret_name: str | None = None
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """One place notifications go; its URL is the value of `secret_key` in that Secret."""

    type: SinkType
    secret_name: str
    secret_key: str
    events: tuple[NotificationKind, ...] = tuple(NotificationKind)

    @property
    def id(self) -> str:
        """The sink's identity in the ledger (status.notifications): where its URL is kept."""
        return f"{self.type.value}:{self.secret_name}/{self.secret_key}"


@dataclass(frozen=True, slots=True)
class NotifySpec:
    """spec.notify, or the operator's default (OOMF_NOTIFY). The Secrets are read in
    `secret_namespace`: None for the investigation's own namespace (a spec never names
    another), the operator's namespace for the operator's default."""

    sinks: tuple[SinkSpec, ...] = ()
    secret_namespace: str | None = None


@dataclass(frozen=True, slots=True)
class InvestigationSpec:
    selector: LabelSelector
    container: str | None = None
    endpoint: Endpoint = field(default_factory=Endpoint)
    sampling_interval: float = _seconds(default("sampling", "interval"))
    snapshot_interval: float = _seconds(default("snapshots", "interval"))
    profiles: tuple[str, ...] = tuple(default("snapshots", "profiles"))
    gc: bool = default("snapshots", "gc")
    thresholds: tuple[int, ...] = tuple(default("triggers", "limitPercent"))
    horizon: float = _seconds(default("triggers", "predictive", "horizon"))
    growth_percent: int = default("triggers", "growthPercent")
    cooldown: float = _seconds(default("triggers", "cooldown"))
    storage: StorageSpec = field(default_factory=StorageSpec)
    keep_newest: int = default("retention", "keepNewest")
    max_bytes_per_run: int = parse_memory(default("retention", "maxBytesPerRun"))
    top_n: int = default("summary", "topN")
    suspend: bool = default("suspend")
    notify: NotifySpec | None = None  # None: the operator's default

    def trigger_settings(self) -> TriggerSettings:
        return TriggerSettings(
            interval=self.snapshot_interval,
            thresholds=self.thresholds,
            horizon=self.horizon,
            growth_ratio=self.growth_percent / 100,
            cooldown=self.cooldown,
            sample_interval=self.sampling_interval,
            min_sample_interval=min(1.0, self.sampling_interval),
        )


def parse_spec(spec: Mapping[str, Any]) -> InvestigationSpec:
    """The spec of a MemoryInvestigation (as served, defaults filled in); InvalidSpec if not."""
    if not isinstance(spec, Mapping):
        raise InvalidSpec("spec", "expected an object")
    sampling = _object(spec, "sampling")
    snapshots = _object(spec, "snapshots")
    triggers = _object(spec, "triggers")
    retention = _object(spec, "retention")
    summary = _object(spec, "summary")
    predictive = _object(triggers, "predictive", "spec.triggers.predictive")
    sampling_interval = parse_duration(
        sampling.get("interval", default("sampling", "interval")), "spec.sampling.interval"
    )
    if not 1.0 <= sampling_interval <= 600.0:
        raise InvalidSpec("spec.sampling.interval", "must be between 1s and 10m")
    snapshot_interval = parse_duration(
        snapshots.get("interval", default("snapshots", "interval")), "spec.snapshots.interval"
    )
    if snapshot_interval and snapshot_interval < 30.0:
        raise InvalidSpec("spec.snapshots.interval", "must be 0s (off) or at least 30s")
    profiles = _strings(
        snapshots.get("profiles", default("snapshots", "profiles")), "spec.snapshots.profiles"
    )
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        raise InvalidSpec(
            "spec.snapshots.profiles", f"unknown {unknown}; choose from {', '.join(PROFILES)}"
        )
    if "heap" not in profiles:
        raise InvalidSpec("spec.snapshots.profiles", "must include heap")
    thresholds = triggers.get("limitPercent", default("triggers", "limitPercent"))
    if not isinstance(thresholds, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 100 for t in thresholds
    ):
        raise InvalidSpec("spec.triggers.limitPercent", "expected whole percentages in 1..100")
    container = spec.get("container")
    if container is not None and not (isinstance(container, str) and _NAME.match(container)):
        raise InvalidSpec("spec.container", f"not a container name: {container!r}")
    return InvestigationSpec(
        selector=_selector(spec.get("selector")),
        container=container,
        endpoint=_endpoint(_object(spec, "endpoint")),
        sampling_interval=sampling_interval,
        snapshot_interval=snapshot_interval,
        profiles=tuple(dict.fromkeys(profiles)),
        gc=_bool(snapshots.get("gc", default("snapshots", "gc")), "spec.snapshots.gc"),
        thresholds=tuple(sorted(set(thresholds))),
        horizon=parse_duration(
            predictive.get("horizon", default("triggers", "predictive", "horizon")),
            "spec.triggers.predictive.horizon",
        ),
        growth_percent=_int(
            triggers.get("growthPercent", default("triggers", "growthPercent")),
            "spec.triggers.growthPercent",
            0,
            1000,
        ),
        cooldown=parse_duration(
            triggers.get("cooldown", default("triggers", "cooldown")), "spec.triggers.cooldown"
        ),
        storage=_storage(spec.get("storage")),
        keep_newest=_int(
            retention.get("keepNewest", default("retention", "keepNewest")),
            "spec.retention.keepNewest",
            1,
            1000,
        ),
        max_bytes_per_run=_quantity(
            retention.get("maxBytesPerRun", default("retention", "maxBytesPerRun")),
            "spec.retention.maxBytesPerRun",
        ),
        top_n=_int(summary.get("topN", default("summary", "topN")), "spec.summary.topN", 1, 20),
        suspend=_bool(spec.get("suspend", default("suspend")), "spec.suspend"),
        notify=parse_notify(spec.get("notify")),
    )


def parse_notify(raw: object, where: str = "spec.notify") -> NotifySpec | None:
    """spec.notify (None when absent: the operator's default applies; `sinks: []` turns
    notifications off). `where` names the field in messages (OOMF_NOTIFY for the default)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidSpec(where, "expected an object with sinks")
    unknown = sorted(set(raw) - {"sinks"})
    if unknown:
        raise InvalidSpec(f"{where}.{unknown[0]}", "unknown field; spec.notify has sinks")
    sinks = raw.get("sinks") or []
    if not isinstance(sinks, list):
        raise InvalidSpec(f"{where}.sinks", "expected a list of sinks")
    if len(sinks) > MAX_SINKS:
        raise InvalidSpec(f"{where}.sinks", f"at most {MAX_SINKS} sinks")
    parsed = tuple(_sink(item, f"{where}.sinks[{i}]") for i, item in enumerate(sinks))
    seen: set[str] = set()
    for i, sink in enumerate(parsed):
        if sink.id in seen:
            raise InvalidSpec(
                f"{where}.sinks[{i}]", f"the same sink twice ({sink.type.value}, same secretRef)"
            )
        seen.add(sink.id)
    return NotifySpec(parsed)


def _sink(raw: object, where: str) -> SinkSpec:
    if not isinstance(raw, Mapping):
        raise InvalidSpec(where, "expected an object with type and secretRef")
    if "url" in raw:
        raise InvalidSpec(
            f"{where}.url",
            "a sink's URL is a credential: put it in a Secret and name it in secretRef",
        )
    unknown = sorted(set(raw) - {"type", "secretRef", "events"})
    if unknown:
        raise InvalidSpec(
            f"{where}.{unknown[0]}", "unknown field; a sink has type, secretRef, events"
        )
    kind = raw.get("type")
    if kind not in SINK_TYPES:
        raise InvalidSpec(
            f"{where}.type", f"unknown sink type {kind!r}; choose from {', '.join(SINK_TYPES)}"
        )
    secret = raw.get("secretRef")
    if secret is None:
        raise InvalidSpec(
            f"{where}.secretRef", "required: {name, key} of the Secret holding the sink's URL"
        )
    if not isinstance(secret, Mapping):
        raise InvalidSpec(f"{where}.secretRef", "expected an object with name and key")
    name = secret.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _SECRET_NAME.match(name):
        raise InvalidSpec(f"{where}.secretRef.name", f"required, a Secret's name; got {name!r}")
    key = secret.get("key")
    if not isinstance(key, str) or len(key) > 253 or not _SECRET_KEY.match(key):
        raise InvalidSpec(f"{where}.secretRef.key", f"required, a key of the Secret; got {key!r}")
    events = _strings(raw.get("events", list(NOTIFY_EVENTS)), f"{where}.events")
    wrong = [e for e in events if e not in NOTIFY_EVENTS]
    if wrong or not events:
        raise InvalidSpec(
            f"{where}.events",
            f"unknown {wrong}; choose from {', '.join(NOTIFY_EVENTS)}"
            if wrong
            else f"empty; choose from {', '.join(NOTIFY_EVENTS)} (or remove the sink)",
        )
    return SinkSpec(
        SinkType(kind),
        name,
        key,
        tuple(NotificationKind(e) for e in dict.fromkeys(events)),
    )


def _selector(raw: object) -> LabelSelector:
    if not isinstance(raw, Mapping):
        raise InvalidSpec("spec.selector", "required: matchLabels and/or matchExpressions")
    labels = raw.get("matchLabels") or {}
    expressions = raw.get("matchExpressions") or []
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise InvalidSpec("spec.selector.matchLabels", "expected a map of strings")
    if not isinstance(expressions, list):
        raise InvalidSpec("spec.selector.matchExpressions", "expected a list")
    requirements = []
    for i, item in enumerate(expressions):
        where = f"spec.selector.matchExpressions[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise InvalidSpec(where, "expected an object with key and operator")
        operator = item.get("operator")
        if operator not in SELECTOR_OPERATORS:
            raise InvalidSpec(f"{where}.operator", f"expected one of {SELECTOR_OPERATORS}")
        values = _strings(item.get("values") or [], f"{where}.values")
        if operator in ("In", "NotIn") and not values:
            raise InvalidSpec(f"{where}.values", f"{operator} needs at least one value")
        requirements.append(SelectorRequirement(item["key"], str(operator), tuple(values)))
    if not labels and not requirements:
        raise InvalidSpec("spec.selector", "empty: it would match every pod in the namespace")
    return LabelSelector(tuple(sorted(labels.items())), tuple(requirements))


def _endpoint(raw: Mapping[str, Any]) -> Endpoint:
    port = raw.get("port")
    port_name = raw.get("portName")
    if port is not None and port_name is not None:
        raise InvalidSpec("spec.endpoint", "set port or portName, not both")
    if port is not None:
        port = _int(port, "spec.endpoint.port", 1, 65535)
    if port_name is not None and not (isinstance(port_name, str) and _NAME.match(port_name)):
        raise InvalidSpec("spec.endpoint.portName", f"not a port name: {port_name!r}")
    path = raw.get("path", default("endpoint", "path"))
    if not isinstance(path, str) or not _PATH.match(path) or ".." in path.split("/"):
        raise InvalidSpec("spec.endpoint.path", f"expected an absolute path, got {path!r}")
    scheme = raw.get("scheme", default("endpoint", "scheme"))
    if scheme not in ("http", "https"):
        raise InvalidSpec("spec.endpoint.scheme", "expected http or https")
    access = raw.get("access", default("endpoint", "access"))
    if access not in ACCESS_MODES:
        raise InvalidSpec("spec.endpoint.access", f"expected one of {ACCESS_MODES}")
    return Endpoint(port, port_name, path.rstrip("/") or "/", str(scheme), str(access))


def _storage(raw: object) -> StorageSpec:
    if raw is None:
        return StorageSpec()
    if not isinstance(raw, Mapping):
        raise InvalidSpec("spec.storage", "expected an object")
    url = raw.get("url")
    if url is not None and not (isinstance(url, str) and "://" in url):
        raise InvalidSpec("spec.storage.url", f"expected s3://, gs://, az://, file://, got {url!r}")
    secret = raw.get("secretRef")
    name = None
    if secret is not None:
        if not isinstance(secret, Mapping) or not isinstance(secret.get("name"), str):
            raise InvalidSpec("spec.storage.secretRef.name", "required")
        name = secret["name"]
    options = raw.get("options") or {}
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in options.items()
    ):
        raise InvalidSpec("spec.storage.options", "expected a map of strings")
    return StorageSpec(url, name, tuple(sorted(options.items())))


def _object(parent: Mapping[str, Any], key: str, where: str | None = None) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(where or f"spec.{key}", "expected an object")
    return value


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidSpec(where, "expected a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise InvalidSpec(where, "expected a list of strings")
    return [str(v) for v in value]


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSpec(where, f"expected a whole number in {low}..{high}, got {value!r}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidSpec(where, f"expected true or false, got {value!r}")
    return value


def _quantity(value: object, where: str) -> int:
    try:
        return parse_memory(str(value))
    except InvalidQuantity as exc:
        raise InvalidSpec(where, str(exc)) from None
