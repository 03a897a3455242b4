"""Opening an object store from an archive URL and the user's option strings.

The options come as strings (a custom resource or a command line gives them); this module
checks them against what each kind of store takes and turns durations and booleans into
obstore's types. The defaults make an outage show within seconds, so the spool takes over.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from obstore.exceptions import BaseError
from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store

from oomforensics.archive.errors import ArchiveError, first_line
from oomforensics.durations import InvalidDuration, parse_duration

if TYPE_CHECKING:
    from obstore.store import (
        AzureConfig,
        ClientConfig,
        GCSConfig,
        ObjectStore,
        RetryConfig,
        S3Config,
    )

# Fast outage detection: a refused connection fails in well under a second and a silent one
# within a few seconds, so the spool takes over instead of a capture waiting for minutes
# (obstore's defaults: 10 retries over up to 3 minutes). A healthy but slow upload of a large
# profile is still allowed `timeout` in total, and a stall is caught by `read_timeout`.
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=2)
DEFAULT_READ_TIMEOUT = timedelta(seconds=5)
DEFAULT_TIMEOUT = timedelta(seconds=60)
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_TIMEOUT = timedelta(seconds=5)
DEFAULT_INIT_BACKOFF = timedelta(milliseconds=100)
DEFAULT_MAX_BACKOFF = timedelta(seconds=1)

_CLIENT_OPTIONS = {"allow_http", "allow_invalid_certificates", "proxy_url"}
_DURATION_OPTIONS = {"connect_timeout", "read_timeout", "timeout"}
_RETRY_OPTIONS = {"max_retries", "retry_timeout"}
_BOOL_OPTIONS = {
    "allow_http",
    "allow_invalid_certificates",
    "virtual_hosted_style_request",
    "skip_signature",
    "use_emulator",
}
# "endpoint" is the common spelling; GCS calls it base_url.
_STORE_OPTIONS: dict[str, dict[str, str]] = {
    "s3": {
        "endpoint": "endpoint",
        "region": "region",
        "virtual_hosted_style_request": "virtual_hosted_style_request",
        "skip_signature": "skip_signature",
    },
    "gs": {"endpoint": "base_url", "skip_signature": "skip_signature"},
    "az": {
        "endpoint": "endpoint",
        "account_name": "account_name",
        "use_emulator": "use_emulator",
        "skip_signature": "skip_signature",
    },
}
_CREDENTIALS: dict[str, set[str]] = {
    "s3": {"access_key_id", "secret_access_key", "session_token"},
    "gs": {"service_account", "service_account_key", "application_credentials", "bearer_token"},
    "az": {"account_name", "account_key", "sas_key", "token", "client_id", "client_secret",
           "tenant_id"},
}  # fmt: skip
_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az",
            "abfss": "az", "adl": "az", "azure": "az"}  # fmt: skip


def open_store(
    url: str,
    credentials: Mapping[str, str] | None = None,
    options: Mapping[str, str] | None = None,
) -> tuple[ObjectStore, str]:
    """The object store at `url` and the root prefix inside it (memory:// only).

    - `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`: credentials come
      from the environment (obstore's default chain) unless given here: S3
      access_key_id/secret_access_key/session_token; GCS service_account_key,
      application_credentials, ...; Azure account_name/account_key/sas_key, ...
    - `file:///abs/path` or `file://./relative/path`: a local folder (created if missing).
    - `memory://` (or `memory:///prefix`): in this process only, for tests.

    `options` (strings, as a custom resource gives them): `endpoint` and `region` (S3-
    compatible stores such as MinIO or moto), `allow_http` (implied by an http://
    endpoint), `allow_invalid_certificates`, `virtual_hosted_style_request`,
    `skip_signature`, `proxy_url`, `connect_timeout`/`read_timeout`/`timeout` and
    `retry_timeout` (`"2s"`, `"500ms"`), `max_retries`.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        _reject_unused(url, credentials, options)
        return MemoryStore(), unquote(parts.path)
    if scheme == "file":
        _reject_unused(url, credentials, options)
        if parts.netloc not in ("", "localhost", "."):
            raise ArchiveError(
                f"archive URL {url!r}: use file:///absolute/path or file://./relative/path"
            )
        raw = unquote(parts.path)
        directory = Path("." + raw) if parts.netloc == "." else Path(raw)
        directory = directory.resolve()
        try:
            store = LocalStore(directory, mkdir=True, automatic_cleanup=True)
        except (BaseError, OSError) as exc:
            raise ArchiveError(f"archive {url!r}: cannot use {directory}: {exc}") from exc
        return store, ""
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise ArchiveError(
            f"archive URL {url!r}: unsupported scheme {scheme!r}; use s3://, gs://, az://, "
            "file:// or memory://"
        )
    if not parts.netloc:
        raise ArchiveError(f"archive URL {url!r} names no bucket or container")
    config, client, retry = _split_options(url, kind, credentials or {}, options or {})
    try:
        remote: ObjectStore
        if kind == "s3":
            remote = S3Store.from_url(
                url, config=cast("S3Config", config), client_options=client, retry_config=retry
            )
        elif kind == "gs":
            remote = GCSStore.from_url(
                url, config=cast("GCSConfig", config), client_options=client, retry_config=retry
            )
        else:
            remote = AzureStore.from_url(
                url,
                config=cast("AzureConfig", config),
                client_options=client,
                retry_config=retry,
            )
    except (BaseError, ValueError) as exc:
        raise ArchiveError(f"archive {url!r}: {first_line(exc)}") from exc
    return remote, ""


def _reject_unused(
    url: str, credentials: Mapping[str, str] | None, options: Mapping[str, str] | None
) -> None:
    if credentials or options:
        raise ArchiveError(f"archive {url!r}: credentials and options apply to s3, gs and az only")


def _split_options(
    url: str, kind: str, credentials: Mapping[str, str], options: Mapping[str, str]
) -> tuple[dict[str, Any], ClientConfig, RetryConfig]:
    """Store config, HTTP client options and retry policy from the user's strings."""
    unknown_credentials = set(credentials) - _CREDENTIALS[kind]
    if unknown_credentials:
        raise ArchiveError(
            f"archive {url!r}: unknown credential(s) {sorted(unknown_credentials)} for {kind}; "
            f"known: {sorted(_CREDENTIALS[kind])}"
        )
    store_names = _STORE_OPTIONS[kind]
    known = set(store_names) | _CLIENT_OPTIONS | _DURATION_OPTIONS | _RETRY_OPTIONS
    unknown = set(options) - known
    if unknown:
        raise ArchiveError(
            f"archive {url!r}: unknown option(s) {sorted(unknown)} for {kind}; known: "
            f"{sorted(known)}"
        )
    config: dict[str, Any] = dict(credentials)
    client: dict[str, Any] = {
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "read_timeout": DEFAULT_READ_TIMEOUT,
        "timeout": DEFAULT_TIMEOUT,
    }
    max_retries = DEFAULT_MAX_RETRIES
    retry_timeout = DEFAULT_RETRY_TIMEOUT
    for name, raw in options.items():
        value: Any = _parse_bool(url, name, raw) if name in _BOOL_OPTIONS else raw
        if name in store_names:
            config[store_names[name]] = value
        elif name in _CLIENT_OPTIONS:
            client[name] = value
        elif name in _DURATION_OPTIONS:
            client[name] = _parse_duration(url, name, raw)
        elif name == "max_retries":
            try:
                max_retries = int(raw)
            except ValueError:
                raise ArchiveError(
                    f"archive {url!r}: max_retries {raw!r} is not an integer"
                ) from None
        else:
            retry_timeout = _parse_duration(url, name, raw)
    endpoint = str(options.get("endpoint", ""))
    if endpoint.startswith("http://") and "allow_http" not in options:
        client["allow_http"] = True  # an http:// endpoint (moto, MinIO in a cluster) says so
    retry: RetryConfig = {
        "max_retries": max_retries,
        "retry_timeout": retry_timeout,
        "backoff": {
            "init_backoff": DEFAULT_INIT_BACKOFF,
            "max_backoff": DEFAULT_MAX_BACKOFF,
            "base": 2,
        },
    }
    return config, cast("ClientConfig", client), retry


def _parse_bool(url: str, name: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ArchiveError(f"archive {url!r}: option {name}={raw!r} must be true or false")


def _parse_duration(url: str, name: str, raw: object) -> timedelta:
    try:
        return timedelta(seconds=parse_duration(raw))
    except InvalidDuration:
        raise ArchiveError(
            f"archive {url!r}: option {name}={raw!r} must be a duration like 500ms, 5s or 1m"
        ) from None
