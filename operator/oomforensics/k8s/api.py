"""The few Kubernetes API calls the operator makes itself (kopf does watching and indexing).

PodMetrics lists (one per namespace per interval), the status merge patch, Events, Secrets
for storage credentials, and an httpx client for the API server's pods/proxy.
"""

from __future__ import annotations

import base64
import itertools
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import kopf

from oomforensics import __version__
from oomforensics.errors import OomForensicsError
from oomforensics.k8s.metrics import record_api_error

GROUP = "oomforensics.io"
VERSION = "v1alpha1"
PLURAL = "memoryinvestigations"
KIND = "MemoryInvestigation"
COMPONENT = "oomforensics"
MERGE_PATCH = "application/merge-patch+json"
JSON = dict[str, Any]  # a Kubernetes object or list, as the API serves it (decoded JSON)
_counter = itertools.count()


class ApiFailure(OomForensicsError):
    """An API call that failed; `status` is the HTTP status (0: no answer).

    `ApiFailure.of` picks the subclass for the status, so callers catch what they mean
    (`except ApiNotFound`) instead of comparing numbers.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @classmethod
    def of(cls, status: int, message: str) -> ApiFailure:
        kind = _BY_STATUS.get(status)
        if kind is None:
            kind = ApiServerError if status >= 500 else ApiFailure
        return kind(status, message)


class ApiUnreachable(ApiFailure):
    """No answer at all: refused, timed out, TLS failed."""


class ApiUnauthorized(ApiFailure):
    """401: the credentials are not accepted."""


class ApiForbidden(ApiFailure):
    """403: the credentials may not do this."""


class ApiNotFound(ApiFailure):
    """404: no such object (or the API does not serve that resource)."""


class ApiConflict(ApiFailure):
    """409: the object changed meanwhile, or already exists."""


class ApiServerError(ApiFailure):
    """5xx: the API server failed; worth trying again later."""


_BY_STATUS: dict[int, type[ApiFailure]] = {
    0: ApiUnreachable,
    401: ApiUnauthorized,
    403: ApiForbidden,
    404: ApiNotFound,
    409: ApiConflict,
}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """What an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectRef:
        meta = body.get("metadata") or {}
        return cls(
            str(body.get("apiVersion") or "v1"),
            str(body.get("kind") or "Pod"),
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
            str(meta.get("uid") or ""),
        )


def _pem(data: str | bytes) -> str:
    """PEM text from a kubeconfig's *-data field (base64 of the PEM, or the PEM itself)."""
    text = data.decode() if isinstance(data, bytes) else str(data)
    return text if "-----BEGIN" in text else base64.b64decode(text).decode()


def _load_client_certificate(context: ssl.SSLContext, info: kopf.ConnectionInfo) -> None:
    """The client certificate, from files or inline data (kind's kubeconfigs are inline)."""
    if info.certificate_path and info.private_key_path:
        context.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
    elif info.certificate_data and info.private_key_data:
        # ssl loads certificates from files only: a private temporary file, removed at once.
        with tempfile.TemporaryDirectory(prefix="oomf-cert-") as folder:
            chain = Path(folder) / "client.pem"
            chain.touch(mode=0o600)
            chain.write_text(_pem(info.certificate_data) + "\n" + _pem(info.private_key_data))
            context.load_cert_chain(str(chain))


def client_for(info: kopf.ConnectionInfo, timeout: float = 30.0) -> httpx.AsyncClient:
    """An httpx client authenticated as kopf is (token, client certificate, CA)."""
    context = ssl.create_default_context()
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif info.ca_path:
        context.load_verify_locations(cafile=str(info.ca_path))
    elif info.ca_data:
        context.load_verify_locations(cadata=_pem(info.ca_data))
    _load_client_certificate(context, info)
    headers = {"User-Agent": f"oomforensics/{__version__}"}
    auth: httpx.Auth | None = None
    if info.token:
        headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
    elif info.username and info.password:
        auth = httpx.BasicAuth(info.username, info.password)
    return httpx.AsyncClient(
        base_url=info.server.rstrip("/"),
        verify=context,
        headers=headers,
        auth=auth,
        timeout=timeout,
        follow_redirects=False,
    )


class KubeApi:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            record_api_error(method, 0)
            raise ApiFailure.of(0, f"{method} {path}: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            record_api_error(method, response.status_code)
            # A Status object's message, else the text (the API server answers a path nothing
            # serves with "404 page not found\n" as text/plain): one line either way.
            text = response.text[:300].strip()
            try:
                message = str(response.json().get("message") or text)
            except ValueError:
                message = text
            raise ApiFailure.of(response.status_code, f"{method} {path}: {message}")
        return response

    async def pod_metrics(self, namespace: str) -> list[dict[str, Any]]:
        """Every PodMetrics of the namespace in one list (never one GET per pod)."""
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
        items = (await self._request("GET", path)).json().get("items") or []
        return [i for i in items if isinstance(i, dict)]

    async def get_investigation(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        body: dict[str, Any] = (await self._request("GET", path)).json()
        return body

    async def list_investigations(self, namespace: str | None) -> list[dict[str, Any]]:
        """The MemoryInvestigations of one namespace, or of every namespace (None)."""
        where = f"/namespaces/{namespace}" if namespace is not None else ""
        path = f"/apis/{GROUP}/{VERSION}{where}/{PLURAL}"
        items = (await self._request("GET", path)).json().get("items") or []
        return [i for i in items if isinstance(i, dict)]

    async def patch_status(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        response = await self._request(
            "PATCH", path, json={"status": patch}, headers={"Content-Type": MERGE_PATCH}
        )
        body: dict[str, Any] = response.json()
        return body

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
        body = (await self._request("GET", path)).json()
        data = body.get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items() if isinstance(v, str)}

    async def post_event(
        self, about: ObjectRef, reason: str, message: str, type_: str = "Normal"
    ) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = f"{about.name}.{time.time_ns():x}{next(_counter)}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name[:253], "namespace": about.namespace},
            "involvedObject": {
                "apiVersion": about.api_version,
                "kind": about.kind,
                "namespace": about.namespace,
                "name": about.name,
                "uid": about.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._request("POST", f"/api/v1/namespaces/{about.namespace}/events", json=body)
