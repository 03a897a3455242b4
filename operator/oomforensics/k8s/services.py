"""What an investigation needs from the world (`Services`, a protocol the runner's parts are
written against and tests fake), and the operator's implementation, built once at startup and
shared by every investigation: the API client, PodMetrics lists (one per namespace per
interval), capture clients, archives and their spools."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from oomforensics.archive.spool import Spool
from oomforensics.archive.store import Archive, ArchiveError
from oomforensics.capture.client import CaptureResult, CaptureSettings, PprofClient
from oomforensics.errors import OomForensicsError
from oomforensics.k8s.api import JSON, ApiFailure, ApiNotFound, KubeApi, ObjectRef
from oomforensics.k8s.settings import OperatorSettings
from oomforensics.k8s.spec import InvestigationSpec, StorageSpec
from oomforensics.notify.delivery import WebhookClient
from oomforensics.notify.messages import Payload


class StorageReason(StrEnum):
    """Why the archive cannot take snapshots: the StorageReady condition's reasons."""

    NO_STORAGE_CONFIGURED = "NoStorageConfigured"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_UNREADABLE = "SecretUnreadable"
    INVALID_STORAGE = "InvalidStorage"
    STORAGE_UNAVAILABLE = "StorageUnavailable"


class StorageProblem(OomForensicsError):
    def __init__(self, reason: StorageReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Services(Protocol):
    """What a runner asks of the world. Failures: StorageProblem from `archive`, ApiFailure
    from the API calls, CaptureError from `fetch`; `capture` reports per file instead."""

    async def archive(self, storage: StorageSpec, namespace: str) -> Archive: ...

    def spool(self, archive: Archive) -> Spool: ...

    async def pod_metrics(self, namespace: str, max_age: float | None = None) -> list[JSON]: ...

    async def capture(self, spec: InvestigationSpec, base_url: str) -> CaptureResult: ...

    async def fetch(self, spec: InvestigationSpec, url: str, what: str) -> bytes: ...

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JSON: ...

    async def post_event(self, about: ObjectRef, reason: str, message: str, type_: str) -> None: ...

    # Notifications (only with spec.notify or the operator's default): ApiFailure from
    # secret_data, DeliveryFailed from post_notification.
    async def secret_data(self, namespace: str, name: str) -> dict[str, str]: ...

    async def post_notification(self, url: str, payload: Payload) -> None: ...


@dataclass
class OperatorServices:
    """What every runner shares: the API, the settings, archives, spools, pprof clients."""

    api: KubeApi
    settings: OperatorSettings
    archives: dict[tuple[Any, ...], Archive] = field(default_factory=dict)
    spools: dict[str, Spool] = field(default_factory=dict)
    clients: dict[CaptureSettings, PprofClient] = field(default_factory=dict)
    # One PodMetrics list per namespace, shared by its investigations while fresh enough.
    # metrics-server refreshes every 15 s (its resolution), so a few seconds cost nothing.
    metrics_max_age: float = 5.0
    _metrics: dict[str, tuple[float, list[JSON]]] = field(default_factory=dict)
    _metrics_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Bounds the profiles held in memory at once, whatever the number of investigations.
    capture_slots: asyncio.Semaphore = field(init=False)
    # First passes start at most this many per second: an operator starting with 100
    # investigations otherwise ran 100 first passes at once (bench_scale: RSS peak 238-291 MiB
    # in the first seconds; paced over 20 s, 174 MiB, every baseline still stored in 41 s).
    first_passes_per_second: float = 5.0
    _next_first_pass: float = 0.0
    _webhooks: WebhookClient | None = None

    def __post_init__(self) -> None:
        self.capture_slots = asyncio.Semaphore(self.settings.max_captures)

    def first_pass_delay(self, now: float | None = None) -> float:
        """Seconds a starting investigation waits before its first pass (0 when few start)."""
        now = time.monotonic() if now is None else now
        start = max(now, self._next_first_pass)
        self._next_first_pass = start + 1 / self.first_passes_per_second
        return start - now

    async def pod_metrics(self, namespace: str, max_age: float | None = None) -> list[JSON]:
        """The namespace's PodMetrics, listed again when older than `max_age` seconds."""
        age = self.metrics_max_age if max_age is None else min(max_age, self.metrics_max_age)
        lock = self._metrics_locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            cached = self._metrics.get(namespace)
            if cached is not None and time.monotonic() - cached[0] < age:
                return cached[1]
            items = await self.api.pod_metrics(namespace)
            self._metrics[namespace] = (time.monotonic(), items)
            return items

    def capture_settings(self, spec: InvestigationSpec) -> CaptureSettings:
        """What to capture (the spec) within the operator's limits (its settings)."""
        return CaptureSettings(
            profiles=spec.profiles,
            gc=spec.gc,
            read_timeout=self.settings.capture_timeout,
            max_body_bytes=self.settings.max_profile_bytes,
            # Gunzipping holds the output twice for a moment: a bomb costs twice this cap.
            max_decompressed_bytes=self.settings.max_profile_bytes,
        )

    async def capture(self, spec: InvestigationSpec, base_url: str) -> CaptureResult:
        """The profiles at `base_url`, at most `max_captures` at once across investigations."""
        proxy = spec.endpoint.access == "apiserver-proxy"
        client = self.client(self.capture_settings(spec), proxy)
        try:
            async with self.capture_slots:
                return await client.capture(base_url)
        finally:
            if proxy:
                await client.aclose()

    async def fetch(self, spec: InvestigationSpec, url: str, what: str) -> bytes:
        proxy = spec.endpoint.access == "apiserver-proxy"
        client = self.client(self.capture_settings(spec), proxy)
        try:
            return await client.fetch(url, what)
        finally:
            if proxy:
                await client.aclose()

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JSON:
        return await self.api.patch_status(namespace, name, patch)

    async def post_event(self, about: ObjectRef, reason: str, message: str, type_: str) -> None:
        await self.api.post_event(about, reason, message, type_)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        return await self.api.secret_data(namespace, name)

    async def post_notification(self, url: str, payload: Payload) -> None:
        if self._webhooks is None:  # made on first use: most operators notify nobody
            self._webhooks = WebhookClient()
        await self._webhooks.post(url, payload)

    def client(self, settings: CaptureSettings, proxy: bool) -> PprofClient:
        if proxy:  # through the API server, with its credentials: a client per capture
            return PprofClient(settings, http=self.api.http)
        if settings not in self.clients:
            self.clients[settings] = PprofClient(settings)
        return self.clients[settings]

    async def archive(self, storage: StorageSpec, namespace: str) -> Archive:
        """The archive for a spec's storage (or the operator's default), cached."""
        url = storage.url or self.settings.storage_url
        if not url:
            raise StorageProblem(
                StorageReason.NO_STORAGE_CONFIGURED,
                "set spec.storage.url, or OOMF_STORAGE_URL in the operator's environment",
            )
        options = dict(self.settings.storage_options if storage.url is None else ())
        options.update(storage.options)
        credentials: dict[str, str] | None = None
        secret_ns, secret = namespace, storage.secret_name
        if storage.url is None and secret is None and self.settings.storage_secret:
            secret_ns, secret = self.settings.operator_namespace, self.settings.storage_secret
        if secret is not None:
            try:
                credentials = await self.api.secret_data(secret_ns, secret)
            except ApiFailure as exc:
                reason = (
                    StorageReason.SECRET_NOT_FOUND
                    if isinstance(exc, ApiNotFound)
                    else StorageReason.SECRET_UNREADABLE
                )
                raise StorageProblem(
                    reason, f"storage credentials: Secret {secret_ns}/{secret}: {exc}"
                ) from None
        cache_key = (
            url,
            tuple(sorted(options.items())),
            tuple(sorted((credentials or {}).items())),
        )
        if cache_key not in self.archives:
            try:
                self.archives[cache_key] = Archive.from_url(
                    url, credentials=credentials, options=options
                )
            except ArchiveError as exc:
                raise StorageProblem(StorageReason.INVALID_STORAGE, str(exc)) from None
        return self.archives[cache_key]

    def spool(self, archive: Archive) -> Spool:
        digest = hashlib.sha256(archive.url.encode()).hexdigest()[:16]
        if digest not in self.spools:
            self.spools[digest] = Spool(
                self.settings.spool_dir / digest, self.settings.spool_max_bytes
            )
        return self.spools[digest]

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()
        if self._webhooks is not None:
            await self._webhooks.aclose()
            self._webhooks = None
        # obstore's stores are freed while the loop still runs: freed at interpreter exit,
        # after a failed request, they have been seen to abort the process (SIGABRT).
        self.archives.clear()
        self.spools.clear()
        gc.collect()
