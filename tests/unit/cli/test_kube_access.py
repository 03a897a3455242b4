"""The CLI reaches the cluster as the user: their kubeconfig (token, context namespace) and
their permissions; what the API server refuses becomes one line saying what to do."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from oomforensics.cli.errors import UsageError
from oomforensics.cli.kube import (
    InvestigationRef,
    Kube,
    KubeError,
    connect,
    get_investigation,
    resolve_storage,
)
from oomforensics.k8s.api import KubeApi

REF = InvestigationRef("shop", "checkout-oom")


def kubeconfig(path: Path, namespace: str | None) -> Path:
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "u", "user": {"token": "s3cr3t-token"}}],
        "contexts": [{"name": "ctx", "context": context}],
        "current-context": "ctx",
    }
    path.write_text(json.dumps(config))
    return path


async def test_the_current_context_gives_server_token_and_namespace(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", "shop")))
    kube = connect()
    try:
        assert kube.namespace == "shop"
        assert str(kube.api.http.base_url) == "https://127.0.0.1:6443"
        assert kube.api.http.headers["Authorization"] == "Bearer s3cr3t-token"
    finally:
        await kube.aclose()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "other", None)))
    kube = connect()
    assert kube.namespace == "default"
    await kube.aclose()


def test_a_broken_kubeconfig_is_a_usage_error(tmp_path, monkeypatch):
    (tmp_path / "config").write_text("current-context: nowhere\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    with pytest.raises(UsageError, match="cannot use the kubeconfig"):
        connect()


def answering(routes: dict[str, tuple[int, dict]]) -> Kube:
    """An API server that answers fixed paths: what RBAC and a missing object look like."""

    def handle(request: httpx.Request) -> httpx.Response:
        status, body = routes.get(request.url.path, (404, {"message": "not found"}))
        return httpx.Response(status, json=body)

    http = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handle))
    return Kube(KubeApi(http), "shop")


CR = "/apis/oomforensics.io/v1alpha1/namespaces/shop/memoryinvestigations/checkout-oom"
SECRET = "/api/v1/namespaces/shop/secrets/checkout-s3"
FORBIDDEN = {
    "kind": "Status",
    "message": 'secrets "checkout-s3" is forbidden: User "dev" cannot get resource "secrets"',
}


def body(storage: dict | None) -> dict:
    spec: dict = {"selector": {"matchLabels": {"app": "checkout"}}, "endpoint": {"port": 6060}}
    if storage is not None:
        spec["storage"] = storage
    return {"spec": spec, "status": {}}


async def test_a_user_who_may_not_read_the_secret_cannot_fetch():
    storage = {"url": "s3://bucket/p", "secretRef": {"name": "checkout-s3"}}
    kube = answering({SECRET: (403, FORBIDDEN)})
    with pytest.raises(KubeError) as caught:
        await resolve_storage(kube, REF, body(storage), {})
    message = str(caught.value)
    assert "Secret shop/checkout-s3" in message and "may not read it" in message
    assert "\n" not in message
    await kube.aclose()


async def test_the_secret_supplies_credentials_and_the_spec_options():
    storage = {
        "url": "s3://bucket/p",
        "secretRef": {"name": "checkout-s3"},
        "options": {"endpoint": "http://minio:9000"},
    }
    secret = {"data": {"access_key_id": "QUtJQQ==", "secret_access_key": "c2VjcmV0"}}
    kube = answering({SECRET: (200, secret)})
    source = await resolve_storage(kube, REF, body(storage), {"region": "eu-west-1"})
    assert source.url == "s3://bucket/p" and source.origin == "spec.storage"
    assert source.credentials == {"access_key_id": "AKIA", "secret_access_key": "secret"}
    assert source.options == {"endpoint": "http://minio:9000", "region": "eu-west-1"}
    await kube.aclose()


async def test_the_operators_default_storage_needs_the_status_or_archive():
    kube = answering({})
    with pytest.raises(KubeError, match=r"operator's default storage .* pass --archive URL"):
        await resolve_storage(kube, REF, body(None), {})
    recorded = {**body(None), "status": {"archive": "s3://default-bucket/oomf"}}
    source = await resolve_storage(kube, REF, recorded, {})
    assert (source.url, source.credentials, source.origin) == (
        "s3://default-bucket/oomf",
        None,  # from the user's environment, as obstore reads it
        "status.archive",
    )
    await kube.aclose()


async def test_no_such_investigation_and_forbidden_are_one_line_each():
    kube = answering({CR: (403, {"message": "memoryinvestigations is forbidden"})})
    with pytest.raises(KubeError, match="forbidden for your kube credentials"):
        await get_investigation(kube, REF)
    with pytest.raises(KubeError, match=r"^no MemoryInvestigation shop/other \(kubectl get"):
        await get_investigation(kube, InvestigationRef("shop", "other"))
    await kube.aclose()
