"""Memory readings without PodMetrics: when the PodMetrics list fails (a cluster without
metrics-server, whose API server answers 404 for metrics.k8s.io; or RBAC refusing the list,
403), the operator reads each target's own /metrics page (process_resident_memory_bytes), and
the triggers run on that. One pass of `InvestigationRunner.step()` against the fakes of
test_step.py, except for PodMetrics: the operator's real API client (`KubeApi`) meets the
answers below, copied from the real kube-apiserver v1.36.3 of the test cluster (hack/cluster).

(The 403 case runs end to end on the real cluster: tests/e2e/test_operator_pod_metrics_forbidden.py.
The 404 one cannot there: the cluster is shared, and its metrics-server APIService stays.)"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from oomforensics.capture.errors import CaptureError
from oomforensics.k8s import sampler as sampler_module
from oomforensics.k8s.api import KubeApi
from oomforensics.k8s.sampler import READING_GRACE
from oomforensics.k8s.spec import InvestigationSpec
from tests.unit.k8s.test_step import HEAP, JSON, MiB, World, body, conditions, pod, runner_for


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the API server, as it sent it."""

    status: int
    content_type: str
    body: bytes


# GET /apis/nometrics.example.io/v1beta1/namespaces/shop/pods on the real API server, as its
# admin: the answer for an API group nothing serves, which metrics.k8s.io is without
# metrics-server (no APIService). Not a Status object: plain text.
NOT_SERVED = Answer(404, "text/plain; charset=utf-8", b"404 page not found\n")
# GET /apis/metrics.k8s.io/v1beta1/namespaces/shop/pods as a ServiceAccount without a
# metrics.k8s.io rule there (the admin impersonating it): a Status object.
FORBIDDEN = Answer(
    403,
    "application/json",
    json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'pods.metrics.k8s.io is forbidden: User "system:serviceaccount:'
            'oomforensics:oomf-oomforensics" cannot list resource "pods" in API group '
            '"metrics.k8s.io" in the namespace "shop"',
            "reason": "Forbidden",
            "details": {"group": "metrics.k8s.io", "kind": "pods"},
            "code": 403,
        },
        indent=2,
    ).encode(),
)
PODMETRICS = "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods"
METRICS_PAGE = "http://127.0.0.1:6060/metrics"


@dataclass
class WithoutPodMetrics(World):
    """World (test_step.py) whose PodMetrics come from the real API client meeting `answer`,
    and whose target serves a /metrics page with `rss` (None: without that metric)."""

    answer: Answer = NOT_SERVED
    rss: int | None = 10 * MiB
    requests: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            self.requests.append(f"{request.method} {request.url.path}")
            headers = {"Content-Type": self.answer.content_type}
            return httpx.Response(self.answer.status, content=self.answer.body, headers=headers)

        transport = httpx.MockTransport(answer)
        self.api = KubeApi(httpx.AsyncClient(transport=transport, base_url="https://api"))

    async def pod_metrics(self, namespace: str, max_age: float | None = None) -> list[JSON]:
        return await self.api.pod_metrics(namespace)

    async def fetch(self, spec: InvestigationSpec, url: str, what: str) -> bytes:
        self.fetched.append(url)
        if what != "metrics":
            raise CaptureError("not served", url, what)
        page = "# TYPE go_goroutines gauge\ngo_goroutines 12\n"
        if self.rss is not None:
            page += "# TYPE process_resident_memory_bytes gauge\n"
            page += f"process_resident_memory_bytes {float(self.rss)!r}\n"
        return page.encode()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    if not HEAP.is_file():
        pytest.skip(f"{HEAP} is not there (the shared pprof corpus)")
    return tmp_path


@pytest.mark.parametrize("answer", [NOT_SERVED, FORBIDDEN], ids=["no-metrics-server", "rbac"])
async def test_without_pod_metrics_the_targets_own_page_is_the_reading(
    tmp: Path, answer: Answer
) -> None:
    world = WithoutPodMetrics(tmp, answer=answer, rss=12 * MiB)
    await runner_for(world).step(body(), [pod()])
    assert world.requests == [f"GET {PODMETRICS}"]  # one list for the namespace, never a GET
    assert world.fetched == [METRICS_PAGE]
    (key,) = await world.archive_.list_snapshots("shop", "db")
    assert key.reason == "baseline"
    manifest = await world.archive_.read_manifest(key)
    assert manifest.working_set_bytes == 12 * MiB
    (target,) = world.status["targets"]
    assert target["workingSetBytes"] == 12 * MiB and "lastError" not in target, target
    assert conditions(world)["Capturing"]["status"] == "True"


async def test_readings_from_the_page_cross_the_thresholds_without_a_metrics_server(
    tmp: Path,
) -> None:
    world = WithoutPodMetrics(tmp)
    runner = runner_for(world)
    await runner.step(body(), [pod()])
    world.rss = 85 * MiB  # past 80 % of the 100Mi limit
    await runner.step(body(), [pod()])
    keys = await world.archive_.list_snapshots("shop", "db")
    assert [k.reason for k in keys] == ["baseline", "threshold-80"]
    threshold = await world.archive_.read_manifest(keys[1])
    assert threshold.working_set_bytes == 85 * MiB
    assert world.status["snapshots"]["lastReason"] == "threshold-80"
    assert world.status["targets"][0]["percentOfLimit"] == "85.0%"


async def test_with_no_reading_at_all_the_target_says_why_in_the_api_servers_words(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = WithoutPodMetrics(tmp, rss=None)  # no metrics-server, no RSS on the page
    runner = runner_for(world)
    now = [time.time()]
    monkeypatch.setattr(sampler_module, "time", SimpleNamespace(time=lambda: now[0]))
    await runner.step(body(), [pod()])
    # A container that has just started may not listen yet: told once that has lasted.
    assert conditions(world)["Capturing"]["status"] == "True"
    now[0] += READING_GRACE
    await runner.step(body(), [pod()])
    assert await world.archive_.list_snapshots("shop", "db") == []  # nothing to trigger on
    capturing = conditions(world)["Capturing"]
    assert (capturing["status"], capturing["reason"]) == ("False", "CaptureFailed")
    assert capturing["message"] == (
        f"db-0/app: no memory reading: metrics.k8s.io: GET {PODMETRICS}: 404 page not found; "
        f"{METRICS_PAGE}: no process_resident_memory_bytes"
    ), capturing
