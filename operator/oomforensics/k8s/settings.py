"""Operator settings, read once from the environment at startup.

OOMF_STORAGE_URL        default archive (s3://bucket/prefix, gs://, az://, file://, memory://)
OOMF_STORAGE_OPTIONS    default store options, `key=value,key=value` (endpoint, region, ...)
OOMF_STORAGE_SECRET     Secret (in OOMF_OPERATOR_NAMESPACE) with the default credentials;
                        without it, credentials come from the environment (AWS_*, ...)
OOMF_OPERATOR_NAMESPACE the operator's own namespace (default: default)
OOMF_SPOOL_DIR          durable local spool for snapshots while the store is down
OOMF_SPOOL_MAX_BYTES    its cap (a quantity, default 1Gi)
OOMF_MAX_PROFILE_BYTES  cap of one profile, as received and once gunzipped (default 64Mi)
OOMF_CAPTURE_TIMEOUT    seconds for one profile request (default 30)
OOMF_NAMESPACES         comma-separated namespaces to watch; empty: cluster-wide
OOMF_STANDALONE         "true" (default): no peering; "false": peering (one active operator)
OOMF_WATCH_TIMEOUT      server-side watch timeout in seconds (default 300)
OOMF_MAX_CAPTURES       captures in flight at once, all investigations together (default 4):
                        each holds up to three profiles in memory
OOMF_METRICS_PORT       port of the Prometheus page /metrics (default 8000; 0: none)
OOMF_METRICS_ADDRESS    address it listens on (default: every interface)
OOMF_NOTIFY             default notification sinks, for investigations without spec.notify:
                        JSON in spec.notify's shape, {"sinks": [{"type": "slack", "secretRef":
                        {"name": ..., "key": ...}}]}, the Secrets in OOMF_OPERATOR_NAMESPACE
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from oomforensics.errors import OomForensicsError
from oomforensics.k8s.spec import InvalidSpec, NotifySpec, parse_notify
from oomforensics.quantity import InvalidQuantity, parse_memory


class InvalidSettings(OomForensicsError, ValueError):
    """An environment variable the operator cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    storage_url: str | None = None
    storage_options: tuple[tuple[str, str], ...] = ()
    storage_secret: str | None = None
    operator_namespace: str = "default"
    spool_dir: Path = Path(tempfile.gettempdir()) / "oomforensics-spool"
    spool_max_bytes: int = 2**30
    max_profile_bytes: int = 64 * 2**20
    capture_timeout: float = 30.0
    namespaces: tuple[str, ...] = ()
    standalone: bool = True
    watch_timeout: int = 300
    max_captures: int = 4
    metrics_port: int = 8000
    metrics_address: str = ""  # every interface
    notify: NotifySpec | None = None  # the default sinks (Secrets in operator_namespace)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        defaults = cls()

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        options = []
        for item in (get("OOMF_STORAGE_OPTIONS") or "").split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise InvalidSettings(f"OOMF_STORAGE_OPTIONS: expected key=value, got {item!r}")
            options.append((key.strip(), value.strip()))
        operator_namespace = get("OOMF_OPERATOR_NAMESPACE") or defaults.operator_namespace
        return cls(
            storage_url=get("OOMF_STORAGE_URL"),
            storage_options=tuple(options),
            storage_secret=get("OOMF_STORAGE_SECRET"),
            operator_namespace=operator_namespace,
            spool_dir=Path(get("OOMF_SPOOL_DIR") or defaults.spool_dir),
            spool_max_bytes=_bytes(env, "OOMF_SPOOL_MAX_BYTES", defaults.spool_max_bytes),
            max_profile_bytes=_bytes(env, "OOMF_MAX_PROFILE_BYTES", defaults.max_profile_bytes),
            capture_timeout=_number(env, "OOMF_CAPTURE_TIMEOUT", defaults.capture_timeout),
            namespaces=tuple(
                n.strip() for n in (get("OOMF_NAMESPACES") or "").split(",") if n.strip()
            ),
            standalone=_flag(env, "OOMF_STANDALONE", defaults.standalone),
            watch_timeout=int(_number(env, "OOMF_WATCH_TIMEOUT", defaults.watch_timeout)),
            max_captures=_count(env, "OOMF_MAX_CAPTURES", defaults.max_captures),
            metrics_port=_port(env, "OOMF_METRICS_PORT", defaults.metrics_port),
            metrics_address=get("OOMF_METRICS_ADDRESS") or defaults.metrics_address,
            notify=_notify(get("OOMF_NOTIFY"), operator_namespace),
        )


def _notify(raw: str | None, namespace: str) -> NotifySpec | None:
    """OOMF_NOTIFY, checked as spec.notify is; its Secrets are the operator's own."""
    if raw is None:
        return None
    try:
        parsed = parse_notify(json.loads(raw), "OOMF_NOTIFY")
    except json.JSONDecodeError as exc:
        raise InvalidSettings(f"OOMF_NOTIFY: not JSON: {exc}") from None
    except InvalidSpec as exc:
        raise InvalidSettings(str(exc)) from None
    return dataclasses.replace(parsed, secret_namespace=namespace) if parsed else None


def _bytes(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_memory(raw)
    except InvalidQuantity as exc:
        raise InvalidSettings(f"{name}: {exc}") from None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSettings(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise InvalidSettings(f"{name}: must be positive, got {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default)
    if value != int(value):
        raise InvalidSettings(f"{name}: expected a whole number, got {env[name].strip()!r}")
    return int(value)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise InvalidSettings(f"{name}: expected a port number from 0 to 65535, got {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise InvalidSettings(f"{name}: expected true or false, got {raw!r}")
