"""The user's own way into the cluster: their kubeconfig, their permissions.

`oomforensics list` and `fetch NS/NAME` read MemoryInvestigations (and the storage Secret a
spec names) as the user running them, never as the operator: someone who may not read the
Secret cannot fetch its snapshots. The kubeconfig is loaded by the kubernetes package's loader
($KUBECONFIG, else ~/.kube/config; the current context; embedded certificates, exec plugins),
and the requests go through the operator's own `KubeApi` over httpx.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from oomforensics.cli.errors import UsageError
from oomforensics.k8s.api import (
    GROUP,
    PLURAL,
    ApiFailure,
    ApiForbidden,
    ApiNotFound,
    ApiUnauthorized,
    ApiUnreachable,
    KubeApi,
    client_for,
)
from oomforensics.k8s.spec import InvalidSpec, StorageSpec, parse_spec

# A namespace or an object name as the API server accepts them (DNS-1123 subdomain).
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class KubeError(UsageError):
    """The cluster could not be asked, or said no; the message says what to do."""


@dataclass(frozen=True, slots=True)
class InvestigationRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_ref(text: str, default_namespace: str | None = None) -> InvestigationRef:
    """`NS/NAME`, or a bare `NAME` in `default_namespace` (when one is given)."""
    namespace, slash, name = text.partition("/")
    if not slash:
        namespace, name = default_namespace or "", text
        if not namespace:
            raise UsageError(f"{text!r}: expected NAMESPACE/NAME, e.g. default/checkout-oom")
    for value, what in ((namespace, "namespace"), (name, "name")):
        if not _NAME.fullmatch(value):
            raise UsageError(
                f"{text!r}: expected NAMESPACE/NAME, e.g. default/checkout-oom "
                f"({what} {value!r} is not a Kubernetes name)"
            )
    return InvestigationRef(namespace, name)


@dataclass(frozen=True, slots=True)
class Kube:
    """An API client as the user, and the namespace of their current context."""

    api: KubeApi
    namespace: str

    async def aclose(self) -> None:
        await self.api.aclose()


def connect(timeout: float = 30.0) -> Kube:
    """A client for the current kubeconfig context (KubeError if there is none to use)."""
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, list_kube_config_contexts, load_kube_config

    # Read now, not when the kubernetes package was imported (its default is fixed then).
    config_file = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    configuration = Configuration()
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file, client_configuration=configuration, persist_config=False
        )
        _, active = list_kube_config_contexts(config_file)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, TypeError, ValueError, KeyError) as exc:
        raise KubeError(
            f"cannot use the kubeconfig ($KUBECONFIG or ~/.kube/config): {exc}"
        ) from None
    namespace = str(((active or {}).get("context") or {}).get("namespace") or "default")
    return Kube(KubeApi(client_for(connection_info(configuration), timeout)), namespace)


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """The kubernetes client's Configuration as the ConnectionInfo `client_for` takes."""
    keys = configuration.api_key or {}
    # "BearerToken" in kubernetes 37 ("Bearer <token>"), "authorization" in older releases.
    authorization = str(keys.get("BearerToken") or keys.get("authorization") or "")
    scheme, _, token = authorization.partition(" ")
    if not token:
        scheme, token = "Bearer", authorization
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl or None,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme if token else None,
        token=token or None,
    )


def explain(failure: ApiFailure, what: str) -> KubeError:
    """One line a user can act on, by HTTP status."""
    if isinstance(failure, ApiUnreachable):
        return KubeError(f"{what}: the Kubernetes API server does not answer: {failure}")
    if isinstance(failure, ApiUnauthorized):
        return KubeError(f"{what}: not authenticated (log in again?): {failure}")
    if isinstance(failure, ApiForbidden):
        return KubeError(f"{what}: forbidden for your kube credentials: {failure}")
    return KubeError(f"{what}: {failure}")


async def get_investigation(kube: Kube, ref: InvestigationRef) -> dict[str, Any]:
    try:
        return await kube.api.get_investigation(ref.namespace, ref.name)
    except ApiNotFound:
        raise KubeError(
            f"no MemoryInvestigation {ref} (kubectl get {PLURAL}.{GROUP} -n {ref.namespace})"
        ) from None
    except ApiFailure as exc:
        raise explain(exc, f"MemoryInvestigation {ref}") from None


async def list_investigations(kube: Kube, namespace: str | None) -> list[dict[str, Any]]:
    where = f"in namespace {namespace}" if namespace else "in all namespaces"
    try:
        return await kube.api.list_investigations(namespace)
    except ApiNotFound:
        raise KubeError(
            f"MemoryInvestigations {where}: the API server does not serve {PLURAL}.{GROUP} "
            "(is the CRD installed?)"
        ) from None
    except ApiFailure as exc:
        raise explain(exc, f"MemoryInvestigations {where}") from None


@dataclass(frozen=True, slots=True)
class StorageSource:
    """Where an investigation's snapshots are, and how to open the store."""

    url: str
    options: Mapping[str, str]
    credentials: Mapping[str, str] | None  # None: from the environment (AWS_*, ...)
    origin: str  # for messages: "spec.storage", "status.archive", "--archive"


def storage_of(body: Mapping[str, Any], ref: InvestigationRef) -> tuple[StorageSpec, str | None]:
    """The spec's storage and the archive URL the operator recorded in the status."""
    try:
        spec = parse_spec(body.get("spec") or {})
    except InvalidSpec as exc:
        raise KubeError(f"MemoryInvestigation {ref}: {exc}") from None
    recorded = (body.get("status") or {}).get("archive")
    return spec.storage, recorded if isinstance(recorded, str) and recorded else None


async def resolve_storage(
    kube: Kube,
    ref: InvestigationRef,
    body: Mapping[str, Any],
    options: Mapping[str, str],
) -> StorageSource:
    """spec.storage (its Secret read as the user), else the URL the operator recorded.

    The operator's default storage (OOMF_STORAGE_URL in its environment) is invisible from
    here; the status records its URL, and the user's environment supplies the credentials.
    """
    storage, recorded = storage_of(body, ref)
    if storage.url is None:
        if recorded is None:
            raise KubeError(
                f"MemoryInvestigation {ref} uses the operator's default storage "
                "(OOMF_STORAGE_URL), which this CLI cannot see and the status does not record "
                "yet: pass --archive URL (and --option endpoint=... for S3-compatible stores)"
            )
        return StorageSource(recorded, dict(options), None, "status.archive")
    credentials: dict[str, str] | None = None
    if storage.secret_name is not None:
        try:
            credentials = await kube.api.secret_data(ref.namespace, storage.secret_name)
        except ApiFailure as exc:
            what = f"storage credentials: Secret {ref.namespace}/{storage.secret_name}"
            if isinstance(exc, ApiNotFound):
                raise KubeError(f"{what} (spec.storage.secretRef) does not exist") from None
            if isinstance(exc, ApiForbidden):
                raise KubeError(
                    f"{what}: your kube credentials may not read it (get secrets in "
                    f"{ref.namespace}); ask for access, or pass --archive URL with storage "
                    "credentials in the environment"
                ) from None
            raise explain(exc, what) from None
    return StorageSource(
        storage.url, {**dict(storage.options), **options}, credentials, "spec.storage"
    )


def parse_options(items: list[str]) -> dict[str, str]:
    """`--option key=value` (repeatable) into a mapping."""
    options: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option {item!r}: expected KEY=VALUE, e.g. endpoint=http://...")
        options[key.strip()] = value.strip()
    return options
