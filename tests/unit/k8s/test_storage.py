"""Storage for an investigation: its own URL and Secret, or the operator's default; what is
missing becomes a reason a user can act on."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest

from oomforensics.k8s.api import ApiFailure, KubeApi
from oomforensics.k8s.services import OperatorServices, StorageProblem
from oomforensics.k8s.settings import InvalidSettings, OperatorSettings
from oomforensics.k8s.spec import StorageSpec


def services(tmp_path: Path, **settings: object) -> tuple[OperatorServices, list[str]]:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/secrets/s3-creds"):
            data = {
                k: base64.b64encode(v.encode()).decode()
                for k, v in {"access_key_id": "AK", "secret_access_key": "SK"}.items()
            }
            return httpx.Response(200, json={"kind": "Secret", "data": data})
        return httpx.Response(404, json={"kind": "Status", "message": "secrets not found"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://api")
    config = OperatorSettings(spool_dir=tmp_path, **settings)  # type: ignore[arg-type]
    return OperatorServices(KubeApi(http), config), seen


async def test_without_any_storage_the_user_is_told_where_to_set_it(tmp_path: Path) -> None:
    svc, _ = services(tmp_path)
    with pytest.raises(StorageProblem) as caught:
        await svc.archive(StorageSpec(), "shop")
    assert caught.value.reason == "NoStorageConfigured"
    assert "spec.storage.url" in str(caught.value)


async def test_a_missing_secret_is_named(tmp_path: Path) -> None:
    svc, seen = services(tmp_path)
    with pytest.raises(StorageProblem) as caught:
        await svc.archive(StorageSpec("s3://bucket/x", "gone"), "shop")
    assert caught.value.reason == "SecretNotFound"
    assert "shop/gone" in str(caught.value)
    assert seen == ["/api/v1/namespaces/shop/secrets/gone"]


async def test_the_secret_of_the_crs_namespace_gives_the_credentials(tmp_path: Path) -> None:
    svc, seen = services(tmp_path)
    spec = StorageSpec("s3://bucket/x", "s3-creds", (("endpoint", "http://127.0.0.1:9"),))
    archive = await svc.archive(spec, "shop")
    assert archive.url == "s3://bucket/x"
    assert await svc.archive(spec, "shop") is archive  # cached
    assert seen[0] == "/api/v1/namespaces/shop/secrets/s3-creds"


async def test_the_default_storage_and_its_secret_come_from_the_operator(tmp_path: Path) -> None:
    svc, seen = services(
        tmp_path,
        storage_url="file://" + str(tmp_path / "archive"),
        operator_namespace="oomforensics",
    )
    archive = await svc.archive(StorageSpec(), "shop")
    assert archive.url.startswith("file://") and seen == []


def test_settings_from_the_environment() -> None:
    settings = OperatorSettings.from_env(
        {
            "OOMF_STORAGE_URL": "s3://evidence/oom",
            "OOMF_STORAGE_OPTIONS": "endpoint=http://minio:9000, region=eu-west-1",
            "OOMF_NAMESPACES": "shop, payments",
            "OOMF_SPOOL_MAX_BYTES": "512Mi",
            "OOMF_STANDALONE": "false",
            "OOMF_MAX_CAPTURES": "2",
        }
    )
    assert settings.max_captures == 2
    assert settings.storage_options == (("endpoint", "http://minio:9000"), ("region", "eu-west-1"))
    assert settings.namespaces == ("shop", "payments") and not settings.clusterwide
    assert settings.spool_max_bytes == 512 * 2**20 and settings.standalone is False
    assert OperatorSettings.from_env({}).clusterwide
    with pytest.raises(InvalidSettings, match="OOMF_SPOOL_MAX_BYTES"):
        OperatorSettings.from_env({"OOMF_SPOOL_MAX_BYTES": "much"})
    with pytest.raises(InvalidSettings, match="OOMF_STORAGE_OPTIONS"):
        OperatorSettings.from_env({"OOMF_STORAGE_OPTIONS": "endpoint"})
    with pytest.raises(InvalidSettings, match="OOMF_MAX_CAPTURES: expected a whole number"):
        OperatorSettings.from_env({"OOMF_MAX_CAPTURES": "1.5"})


async def test_a_namespace_s_pod_metrics_list_is_shared_while_fresh(tmp_path: Path) -> None:
    shared, seen = services(tmp_path)
    with pytest.raises(ApiFailure):  # the mock serves no metrics: each real list is a 404
        await shared.pod_metrics("shop", max_age=5.0)
    lists = len(seen)
    shared._metrics["shop"] = (time.monotonic(), [{"metadata": {"name": "a"}}])
    assert await shared.pod_metrics("shop", max_age=5.0) == [{"metadata": {"name": "a"}}]
    assert len(seen) == lists  # a second investigation of the namespace: no second list
    with pytest.raises(ApiFailure):
        await shared.pod_metrics("shop", max_age=0.0)  # one sampling fast: a fresh list
    assert len(seen) == lists + 1
