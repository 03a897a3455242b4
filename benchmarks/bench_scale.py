"""Benchmark: one operator process, 1,000 pods under 100 MemoryInvestigations.

On the real test cluster (hack/cluster: kube-apiserver with RBAC, controller-manager,
scheduler, metrics-server; shared with the test sessions through tests/support/kube's
shared_cluster()). The operator runs as its own process, `oomforensics run`, as the chart's
ServiceAccount with the chart's rendered RBAC (a token from the TokenRequest API), watching
the benchmark's own namespace, with OOMF_STORAGE_URL to S3 on moto and OOMF_SPOOL_DIR.

- Pods are real Pod objects created by the benchmark as the admin: `--pods` pods in
  `--namespaces` namespaces of the run's own (one by default), `--investigations`
  investigations each selecting the same number of pods by label. 1,000 real pods do not fit
  on the one 2-core node, so they are bound to the Node `scale-node`, which no kubelet runs:
  benchmarks/scale_node.py registers it, renews its Lease and writes each pod's status
  through pods/status as the kubelet would (Running, hostNetwork podIP 127.0.0.1, a port
  each). That is the only emulated part.
- Endpoints: one small server of the benchmark's listens on every pod's port; /debug/pprof/*
  goes to one of `--fixtures` real leaky Go fixture processes (`-mode steady`), so captures
  fetch real profiles; /metrics is a fixture's page with process_resident_memory_bytes set to
  the pod's emulated working set (35-60 % of its 256 MiB limit, drifting every 15 s).
  metrics-server reports none of these pods (no kubelet to scrape), so the operator reads
  each target's /metrics (operator/oomforensics/k8s/sampler.py), as it does without a
  metrics API.
- Threshold crossings: at times spread over the run, `--crossings` pods (in different
  investigations) jump to 85 % of their limit. The lag is measured from that moment to the
  threshold snapshot being listed in S3 and to it showing in the investigation's status
  (both polled every 0.25 s, S3 directly and the status as the admin, so these polls are not
  operator API calls).
- The operator process is sampled every second from /proc: CPU (utime + stime) and RSS.
- API requests per minute by verb and resource come from the real API server's audit log,
  the operator's ServiceAccount only (each request once, at the time it was received).

Targets: RSS under 200 MiB, under 10 % of one core on average, no per-pod polling of the API
(no GET of a single pod or PodMetrics; PodMetrics listed per namespace). `--py-spy PATH`
records a py-spy profile of the operator for the whole run (top functions in the output).
Results go to the `<!-- bench:scale -->` section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_scale.py [--pods 1000] [--investigations 100]
        [--namespaces 1] [--duration 600] [--fixtures 5] [--crossings 5] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import functools
import json
import math
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # tests.support (the cluster, moto) lives at the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402
from bench_analysis import machine_line, update_results  # noqa: E402
from scale_node import (  # noqa: E402
    MERGE_PATCH,
    NODE_NAME,
    NodeBusy,
    PodEndpoints,
    ScaleNode,
    bounded,
)

from oomforensics.archive.store import Archive, ArchiveError  # noqa: E402
from tests.deploy.dockerfile import stages  # noqa: E402
from tests.support.kube.cluster import (  # noqa: E402
    ClusterUnavailable,
    KubeCluster,
    shared_cluster,
)
from tests.support.kube.images import image_name  # noqa: E402
from tests.support.kube.operator_access import operator_kubeconfig  # noqa: E402
from tests.support.leaky import FIXTURE_BIN, LeakyService  # noqa: E402
from tests.support.moto import MotoServer  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION = "scale"
CRD = yaml.safe_load((ROOT / "crds" / "memoryinvestigations.oomforensics.io.yaml").read_text())
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GROUP_PATH = "/apis/oomforensics.io/v1alpha1"
MiB = 2**20
LIMIT = 256 * MiB
CROSSING = 0.85  # share of the limit a crossing pod jumps to
DRIFT_PERIOD = 15.0  # the working sets move at metrics-server's usual resolution
TICK = 1.0  # /proc sampling period
TARGET_RSS = 200 * MiB
TARGET_CPU = 10.0  # percent of one core, on average
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IMAGE = image_name("leaky")
# What the real kubelet reports for an image imported into containerd (a sha256 config id).
IMAGE_ID = "sha256:" + "0" * 64
SETUP_CONCURRENCY = 16  # the admin's requests in flight while creating the pods


# --- the cluster -----------------------------------------------------------------------------


def namespaces(args: argparse.Namespace) -> list[str]:
    if args.namespaces == 1:
        return [str(args.prefix)]
    return [f"{args.prefix}-{n}" for n in range(args.namespaces)]


def namespace_of(pod_index: int, args: argparse.Namespace) -> str:
    return namespaces(args)[pod_index % int(args.namespaces)]


def investigation_of(pod_index: int, args: argparse.Namespace) -> str:
    """Investigations are spread evenly over the namespaces, pods evenly over investigations."""
    return f"inv-{pod_index % args.investigations}"


def pod_body(index: int, args: argparse.Namespace, port: int) -> dict[str, Any]:
    """A leaky fixture's pod as the tests write them for the real node (hostNetwork, a port
    of its own), bound to the emulated node by name, so the scheduler has nothing to do."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"app-{index:04d}",
            "namespace": namespace_of(index, args),
            "labels": {"app": "bench", "investigation": investigation_of(index, args)},
        },
        "spec": {
            "nodeName": NODE_NAME,
            "hostNetwork": True,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "app",
                    "image": IMAGE,
                    "imagePullPolicy": "Never",
                    "args": ["-mode", "steady", "-listen", f"127.0.0.1:{port}"],
                    "resources": {"limits": {"memory": f"{LIMIT // MiB}Mi"}},
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                }
            ],
        },
    }


def investigation_body(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "oomforensics.io/v1alpha1",
        "kind": "MemoryInvestigation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "bench", "investigation": name}},
            "endpoint": {"portName": "http"},
            # Defaults otherwise (sampling every 15 s, thresholds 80/90/95 %, baseline
            # snapshot); periodic snapshots hourly so that the run measures steady state.
            "snapshots": {"interval": "1h"},
        },
    }


@dataclass
class Crossing:
    pod: str
    namespace: str
    investigation: str
    index: int  # the pod's index (its endpoint)
    at: float = math.nan  # wall clock: working set raised
    captured_at: float = math.nan  # the snapshot key's time (capture started)
    in_archive: float = math.nan  # first seen listed in S3
    in_status: float = math.nan  # first seen in the investigation's status
    reason: str = ""
    before: str = ""  # the target's lastSnapshot in the status when the memory rose


class Board:
    """The emulated working sets each pod's /metrics serves, moved every DRIFT_PERIOD."""

    def __init__(self, endpoints: PodEndpoints, seed: int = 1) -> None:
        self.endpoints = endpoints
        self.rng = random.Random(seed)
        self.shares = [self.rng.uniform(0.35, 0.6) for _ in range(endpoints.count)]
        self.raised: set[int] = set()
        self.publish()

    def publish(self) -> None:
        for index, share in enumerate(self.shares):
            if index not in self.raised:  # drift +-1 % of the limit, bounded
                share = min(0.65, max(0.3, share + self.rng.uniform(-0.01, 0.01)))
                self.shares[index] = share
            self.endpoints.levels[index] = int(share * LIMIT)

    def raise_to(self, index: int, share: float) -> None:
        self.raised.add(index)
        self.shares[index] = share
        self.endpoints.levels[index] = int(share * LIMIT)


# --- the operator process --------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # seconds since the operator started
    cpu: float  # seconds of CPU used so far
    rss: int  # bytes


def read_proc(pid: int) -> tuple[float, int]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return cpu, rss


def image_malloc_settings() -> dict[str, str]:
    """The allocator settings the image gives the operator (MALLOC_* in the Dockerfile)."""
    runtime = stages(ROOT / "Dockerfile")[-1]
    return {k: v for k, v in runtime.env().items() if k.startswith("MALLOC_")}


@contextlib.contextmanager
def operator_process(
    kubeconfig: Path,
    watched: Sequence[str],
    s3: MotoServer,
    spool: Path,
    log: Path,
    verbose: bool,
) -> Iterator[subprocess.Popen[bytes]]:
    """`oomforensics run` as the chart's Deployment configures it: the ServiceAccount's
    kubeconfig, the watched namespaces in OOMF_NAMESPACES, S3 on moto, the image's malloc."""
    env = dict(
        os.environ,
        KUBECONFIG=str(kubeconfig),
        OOMF_NAMESPACES=",".join(watched),
        OOMF_STORAGE_URL=s3.archive_url("bench-scale"),
        OOMF_STORAGE_OPTIONS=",".join(f"{k}={v}" for k, v in s3.options.items()),
        AWS_ACCESS_KEY_ID=s3.credentials["access_key_id"],
        AWS_SECRET_ACCESS_KEY=s3.credentials["secret_access_key"],
        OOMF_SPOOL_DIR=str(spool),
    )
    env.update(image_malloc_settings())
    command = [str(Path(sys.executable).with_name("oomforensics")), "run"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command + (["-v"] if verbose else []),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    minutes: list[Counter[tuple[str, str]]] = field(default_factory=list)
    target_minutes: list[Counter[str]] = field(default_factory=list)  # endpoint paths
    crossings: list[Crossing] = field(default_factory=list)
    per_pod_gets: int = 0
    metrics_lists: int = 0
    forbidden: Counter[tuple[str, str]] = field(default_factory=Counter)  # 403s, by call
    baseline_done_at: float = math.nan  # seconds after start: every pod had its baseline
    setup_seconds: float = math.nan  # creating the pods and writing their status
    snapshots: int = 0
    exit_code: int | None = None
    profile: str = ""
    events: Counter[str] = field(default_factory=Counter)  # Events posted, by reason
    errors: Counter[str] = field(default_factory=Counter)  # targets' lastError at the end
    endpoint_errors: Counter[str] = field(default_factory=Counter)  # fixtures unreachable
    forward_seconds: list[float] = field(default_factory=list)  # our server -> fixture
    bench_cpu: float = math.nan  # % of one core used by this process (endpoint server etc.)
    lease_renewals: int = 0
    node_ready_at_end: str = ""
    cleanup: str = ""


def call_key(event: dict[str, Any]) -> tuple[str, str]:
    """(verb, resource[/subresource][.group]) of an audit event, or its path (discovery)."""
    ref = event.get("objectRef") or {}
    resource = str(ref.get("resource") or "")
    if resource and ref.get("subresource"):
        resource += f"/{ref['subresource']}"
    if resource and ref.get("apiGroup"):
        resource += f".{ref['apiGroup']}"
    return str(event["verb"]), resource or str(event["requestURI"]).split("?", 1)[0]


def credential_id(kubeconfig: Path) -> str:
    """The audit log's credential id of the kubeconfig's token (its JWT id): other operators
    of the test sessions run as the same chart ServiceAccount, this token is the run's own."""
    token = json.loads(kubeconfig.read_text())["users"][0]["user"]["token"]
    claims = token.split(".")[1]
    claims += "=" * (-len(claims) % 4)
    return f"JTI={json.loads(base64.urlsafe_b64decode(claims))['jti']}"


def operator_requests(
    kube: KubeCluster, user: str, credential: str, since: float, until: float
) -> list[dict[str, Any]]:
    """The operator's requests (its user and token) received in [since, until), each once (a
    watch is logged when its response starts and again when it ends), oldest first, from the
    audit log."""
    seen: dict[str, dict[str, Any]] = {}
    for path in sorted((kube.directory / "logs").glob("audit*.log")):
        with path.open(errors="replace") as lines:
            for line in lines:
                if credential not in line:
                    continue
                event = json.loads(line)
                extra = event["user"].get("extra") or {}
                if (
                    event["user"]["username"] != user
                    or credential not in extra.get("authentication.kubernetes.io/credential-id", [])
                    or event["auditID"] in seen
                ):
                    continue
                received = datetime.datetime.fromisoformat(
                    event["requestReceivedTimestamp"].replace("Z", "+00:00")
                ).timestamp()
                if since <= received < until:
                    event["received"] = received
                    seen[event["auditID"]] = event
    return sorted(seen.values(), key=lambda e: float(e["received"]))


def count_requests(
    outcome: Outcome,
    events: list[dict[str, Any]],
    endpoints: PodEndpoints,
    start: float,
    end: float,
) -> None:
    minutes = max(1, math.ceil(round(end - start) / 60))  # 600.2 s: ten minutes
    outcome.minutes = [Counter() for _ in range(minutes)]
    for event in events:
        key = call_key(event)
        outcome.minutes[min(minutes - 1, int((event["received"] - start) // 60))][key] += 1
        code = (event.get("responseStatus") or {}).get("code")
        if code == 403:
            outcome.forbidden[key] += 1

    def ref(event: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = event.get("objectRef") or {}
        return found

    outcome.per_pod_gets = sum(
        1
        for e in events
        if e["verb"] == "get"
        and ref(e).get("resource") == "pods"
        and ref(e).get("name")
        and not ref(e).get("subresource")
    )
    metrics = [e for e in events if ref(e).get("apiGroup") == "metrics.k8s.io"]
    outcome.metrics_lists = sum(1 for e in metrics if e["verb"] == "list")
    outcome.per_pod_gets += sum(1 for e in metrics if ref(e).get("name"))
    outcome.target_minutes = [Counter() for _ in range(minutes)]
    for at, path in endpoints.requests:
        if start <= at < end:
            outcome.target_minutes[min(minutes - 1, int((at - start) // 60))][path] += 1


async def apply_crd(http: httpx.AsyncClient) -> None:
    response = await http.post(CRDS, json=CRD)
    if response.status_code == 409:  # keep the cluster's copy current, as the tests do
        name = CRD["metadata"]["name"]
        current = (await http.get(f"{CRDS}/{name}")).json()
        version = {"resourceVersion": current["metadata"]["resourceVersion"]}
        body = {**CRD, "metadata": {**CRD["metadata"], **version}}
        response = await http.put(f"{CRDS}/{name}", json=body)
    assert response.is_success, response.text
    for _ in range(240):
        if (await http.get(f"{GROUP_PATH}/memoryinvestigations")).status_code == 200:
            return
        await asyncio.sleep(0.25)
    raise RuntimeError("the MemoryInvestigation resource was not served within 60 s")


async def setup_cluster(
    http: httpx.AsyncClient,
    node: ScaleNode,
    args: argparse.Namespace,
    ports: list[int],
) -> list[tuple[str, str]]:
    """The CRD, investigations and pods (bound to the emulated node, Running); (ns, pod)."""
    await apply_crd(http)
    for i in range(args.investigations):
        namespace = namespace_of(i, args)
        body = investigation_body(f"inv-{i}", namespace)
        answer = await http.post(
            f"{GROUP_PATH}/namespaces/{namespace}/memoryinvestigations", json=body
        )
        assert answer.status_code == 201, answer.text
    bodies = [pod_body(index, args, ports[index]) for index in range(args.pods)]
    jobs = [
        functools.partial(node.run_pod, b["metadata"]["namespace"], b, IMAGE_ID) for b in bodies
    ]
    created = await bounded(jobs, SETUP_CONCURRENCY)
    return [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in created]


def check_layout(args: argparse.Namespace) -> None:
    """Every investigation must select pods of its own namespace only."""
    for index in range(args.pods):
        inv = int(investigation_of(index, args).split("-")[1])
        if inv % args.namespaces != index % args.namespaces:
            raise SystemExit(
                "--investigations must be a multiple of --namespaces (each investigation "
                "selects pods of its own namespace)"
            )


async def last_snapshot(direct: httpx.AsyncClient, crossing: Crossing) -> str:
    """The crossing pod's lastSnapshot in its investigation's status (from the API server)."""
    path = (
        f"{GROUP_PATH}/namespaces/{crossing.namespace}/memoryinvestigations/"
        f"{crossing.investigation}"
    )
    response = await direct.get(path)
    if response.status_code != 200:
        return ""
    for target in (response.json().get("status") or {}).get("targets") or []:
        if target.get("pod") == crossing.pod:
            return str(target.get("lastSnapshot") or "")
    return ""


async def watch_crossing(
    crossing: Crossing, archive: Archive, direct: httpx.AsyncClient, deadline: float
) -> None:
    """The first snapshot of the pod captured after the rise, in S3 and in the status."""

    def pending() -> bool:
        return math.isnan(crossing.in_archive) or math.isnan(crossing.in_status)

    crossing.before = await last_snapshot(direct, crossing)
    while time.time() < deadline and pending():
        if math.isnan(crossing.in_archive):
            with contextlib.suppress(ArchiveError):
                keys = await archive.list_snapshots(
                    crossing.namespace, crossing.investigation, crossing.pod, "app", 0
                )
                late = [k for k in keys if k.captured_at.timestamp() >= crossing.at - 0.01]
                if late:
                    crossing.in_archive = time.time()
                    crossing.captured_at = late[0].captured_at.timestamp()
                    crossing.reason = late[0].reason
        if math.isnan(crossing.in_status):
            last = await last_snapshot(direct, crossing)
            if last and last != crossing.before:
                crossing.in_status = time.time()
        await asyncio.sleep(0.25)


async def drive(
    args: argparse.Namespace,
    direct: httpx.AsyncClient,
    board: Board,
    pods: list[tuple[str, str]],
    archive: Archive,
    process: subprocess.Popen[bytes],
    outcome: Outcome,
) -> tuple[float, float]:
    """The measured run; returns its start and end, wall clock."""
    start = time.monotonic()
    start_wall = time.time()
    args.load_start = os.getloadavg()[0]
    next_drift = start + DRIFT_PERIOD
    rng = random.Random(2)
    chosen_investigations = rng.sample(range(args.investigations), args.crossings)
    for inv in chosen_investigations:
        index = next(i for i in range(args.pods) if i % args.investigations == inv)
        namespace, name = pods[index]
        outcome.crossings.append(Crossing(name, namespace, f"inv-{inv}", index))
    # Crossings at 30 % ... 80 % of the run, not on the drift cadence (+ 3.7 s offset).
    times = [
        start + args.duration * (0.3 + 0.5 * k / max(1, args.crossings - 1)) + 3.7
        for k in range(args.crossings)
    ]
    watchers: list[asyncio.Task[None]] = []
    baseline_probe = start + 10
    while time.monotonic() - start < args.duration:
        if process.poll() is not None:
            outcome.exit_code = process.returncode
            break
        now = time.monotonic()
        cpu, rss = read_proc(process.pid)
        outcome.samples.append(Sample(now - start, cpu, rss))
        if len(outcome.samples) % 10 == 1:  # the machine's load beside the figures
            args.loads.append(os.getloadavg()[0])
        if now >= next_drift:
            board.publish()
            next_drift += DRIFT_PERIOD
        for crossing, when in zip(outcome.crossings, times, strict=True):
            if math.isnan(crossing.at) and now >= when:
                board.raise_to(crossing.index, CROSSING)
                crossing.at = time.time()
                deadline = time.time() + max(120.0, args.duration)
                watchers.append(
                    asyncio.create_task(watch_crossing(crossing, archive, direct, deadline))
                )
        if math.isnan(outcome.baseline_done_at) and now >= baseline_probe:
            baseline_probe = now + 10
            with contextlib.suppress(ArchiveError):
                outcome.snapshots = len(await archive.list_snapshots())
            if outcome.snapshots >= len(pods):
                outcome.baseline_done_at = now - start
        await asyncio.sleep(max(0.0, start + len(outcome.samples) * TICK - time.monotonic()))
    end_wall = time.time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*watchers), 30 if watchers else 0.01)
    for task in watchers:
        task.cancel()
    return start_wall, end_wall


async def final_state(
    direct: httpx.AsyncClient, args: argparse.Namespace, outcome: Outcome
) -> None:
    """Events by reason and the targets' errors, as the admin reads them at the end."""
    for namespace in namespaces(args):
        listed = (await direct.get(f"/api/v1/namespaces/{namespace}/events")).json()
        outcome.events.update(str(e.get("reason")) for e in listed.get("items") or [])
        path = f"{GROUP_PATH}/namespaces/{namespace}/memoryinvestigations"
        for item in (await direct.get(path)).json().get("items") or []:
            for target in (item.get("status") or {}).get("targets") or []:
                if target.get("lastError"):
                    # The pod name out, so that equal errors count together.
                    error = str(target["lastError"]).replace(str(target.get("pod")), "POD")
                    error = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", error)  # a port each
                    outcome.errors[error[:200]] += 1
    node = (await direct.get(f"/api/v1/nodes/{NODE_NAME}")).json()
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    outcome.node_ready_at_end = ready[0]["status"] if ready else "?"


async def clean_up(
    direct: httpx.AsyncClient, node: ScaleNode | None, args: argparse.Namespace
) -> str:
    """Finalizers off the investigations (the operator has stopped), the pods deleted at once
    (no kubelet will confirm a graceful deletion), the namespaces, then the Node (None: the
    run never registered it)."""
    for namespace in namespaces(args):
        path = f"{GROUP_PATH}/namespaces/{namespace}/memoryinvestigations"
        for item in (await direct.get(path)).json().get("items") or []:
            await direct.patch(
                f"{path}/{item['metadata']['name']}",
                json={"metadata": {"finalizers": None}},
                headers=MERGE_PATCH,
            )
        await direct.delete(
            f"/api/v1/namespaces/{namespace}/pods", params={"gracePeriodSeconds": 0}
        )
        await direct.delete(f"/api/v1/namespaces/{namespace}")
    if node is not None:
        await node.remove()
    deadline = time.monotonic() + 120
    left = namespaces(args)
    while left and time.monotonic() < deadline:
        left = [n for n in left if (await direct.get(f"/api/v1/namespaces/{n}")).status_code != 404]
        await asyncio.sleep(1)
    text = f"namespaces {'still terminating: ' + ', '.join(left) if left else 'deleted'}"
    if node is not None:
        gone = (await direct.get(f"/api/v1/nodes/{NODE_NAME}")).status_code == 404
        text += f"; node {NODE_NAME} {'deleted' if gone else 'still there'}"
    return text


async def run(args: argparse.Namespace, kube: KubeCluster) -> Outcome:
    outcome = Outcome()
    check_layout(args)
    watched = namespaces(args)
    async with contextlib.AsyncExitStack() as stack:
        direct = await stack.enter_async_context(kube.async_http(timeout=60))
        say("starting moto and the fixtures ...")
        s3 = stack.enter_context(MotoServer(persist=False))
        services = [
            stack.enter_context(LeakyService("steady", "-listen", "127.0.0.1:0"))
            for _ in range(args.fixtures)
        ]
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        endpoints = PodEndpoints(args.pods, [s.base_url for s in services])
        await stack.enter_async_context(endpoints.serving())
        board = Board(endpoints)
        node = ScaleNode(direct, kube.node_name)
        registered = False
        stop_heartbeats = asyncio.Event()
        heartbeats: asyncio.Task[None] | None = None
        try:
            say(f"namespaces {', '.join(watched)}: the chart's RBAC and the operator's token ...")
            kubeconfig, user = await asyncio.to_thread(
                operator_kubeconfig, kube, workdir / "operator.kubeconfig", watch_namespaces=watched
            )
            say(f"registering node {NODE_NAME} (no kubelet) ...")
            await node.register()  # NodeBusy: another run's node, left alone
            registered = True
            heartbeats = asyncio.create_task(node.alive(stop_heartbeats))
            say(f"creating {args.investigations} investigations and {args.pods} pods ...")
            began = time.monotonic()
            pods = await setup_cluster(direct, node, args, endpoints.ports)
            outcome.setup_seconds = time.monotonic() - began
            say(f"  {len(pods)} pods Running after {outcome.setup_seconds:.0f} s")
            archive = Archive.from_url(
                s3.archive_url("bench-scale"), credentials=s3.credentials, options=s3.options
            )
            log = args.log or workdir / "operator.log"
            say(f"starting the operator (log {log}); measuring for {args.duration:g} s ...")
            with operator_process(
                kubeconfig, watched, s3, workdir / "spool", log, args.verbose
            ) as process:
                spy = None
                if args.py_spy:
                    spy = subprocess.Popen(
                        [str(args.py_spy), "record", "--pid", str(process.pid), "--format", "raw",
                         "--rate", "50", "--nonblocking", "--output", str(workdir / "spy.txt")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                try:
                    own = time.process_time()
                    start, end = await drive(args, direct, board, pods, archive, process, outcome)
                    outcome.bench_cpu = 100 * (time.process_time() - own) / (end - start)
                finally:
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            spy.wait(60)
                        outcome.profile = top_functions(workdir / "spy.txt")
            if outcome.exit_code is not None:
                say(f"the operator exited with {outcome.exit_code}; log tail:")
                say("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
            outcome.snapshots = len(await archive.list_snapshots())
            await final_state(direct, args, outcome)
            requests = await asyncio.to_thread(
                operator_requests, kube, user, credential_id(kubeconfig), start, end
            )
            count_requests(outcome, requests, endpoints, start, end)
            outcome.endpoint_errors = endpoints.errors
            outcome.forward_seconds = endpoints.forward_seconds
            outcome.lease_renewals = node.renewals
        finally:
            stop_heartbeats.set()
            if heartbeats is not None:
                await heartbeats
            say("cleaning up ...")
            outcome.cleanup = await clean_up(direct, node if registered else None, args)
            say(f"  {outcome.cleanup}")
    return outcome


def top_functions(path: Path, top: int = 15) -> str:
    """Self and total sample shares by function, from py-spy's raw (collapsed) output."""
    if not path.exists():
        return ""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return ""
    lines = [f"py-spy, {samples:,} samples (50/s, idle included):", "", "self:"]
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in own.most_common(top)]
    lines += ["", "total (inclusive):"]
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


# --- reporting -------------------------------------------------------------------------------


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_percent(samples: list[Sample], since: float = 0.0) -> float:
    window = [s for s in samples if s.at >= since]
    if len(window) < 2 or window[-1].at <= window[0].at:
        return math.nan
    return 100 * (window[-1].cpu - window[0].cpu) / (window[-1].at - window[0].at)


def minute_cpu(samples: list[Sample]) -> list[float]:
    out = []
    for m in range(int(samples[-1].at // 60) + 1 if samples else 0):
        window = [s for s in samples if m * 60 <= s.at <= (m + 1) * 60]
        if len(window) >= 2:
            out.append(100 * (window[-1].cpu - window[0].cpu) / (window[-1].at - window[0].at))
    return out


def quantiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return (
        statistics.median(ordered),
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        ordered[-1],
    )


def load_mean(loads: list[float]) -> float:
    return statistics.mean(loads) if loads else math.nan


def _mib(n: float) -> str:
    return f"{n / MiB:,.0f} MiB"


def _s(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f} s"


def verdicts(outcome: Outcome) -> list[tuple[str, str, str, bool]]:
    peak = max((s.rss for s in outcome.samples), default=0)
    cpu = cpu_percent(outcome.samples)
    return [
        ("RSS under 200 MiB", f"peak {_mib(peak)}", "", peak < TARGET_RSS),
        ("CPU under 10 % of one core on average", f"{cpu:.1f} %", "", cpu < TARGET_CPU),
        (
            "no per-pod polling (PodMetrics listed per namespace)",
            f"{outcome.per_pod_gets} GETs of one pod or PodMetrics; "
            f"{outcome.metrics_lists} PodMetrics lists",
            "",
            outcome.per_pod_gets == 0,
        ),
    ]


def summary_table(args: argparse.Namespace, outcome: Outcome) -> list[str]:
    samples = outcome.samples
    rss = [s.rss for s in samples]
    steady_from = min(120.0, args.duration / 2)  # the baseline burst is over by then
    lines = [
        "| measure | value |",
        "| --- | ---: |",
        f"| measured | {samples[-1].at:.0f} s |" if samples else "| measured | - |",
        f"| RSS: start / median / peak / end | {_mib(rss[0])} / {_mib(statistics.median(rss))} / "
        f"{_mib(max(rss))} / {_mib(rss[-1])} |"
        if rss
        else "| RSS | - |",
        f"| CPU, % of one core: whole run | **{cpu_percent(samples):.1f} %** |",
        f"| CPU, % of one core: after the first {steady_from:.0f} s (baseline burst over) | "
        f"{cpu_percent(samples, steady_from):.1f} % |",
        "| CPU per minute, % of one core | "
        + ", ".join(f"{c:.0f}" for c in minute_cpu(samples))
        + " |",
        f"| set-up: {args.pods:,} pods created and their status written (before the operator "
        f"starts) | {_s(outcome.setup_seconds)} |",
        f"| every pod's baseline snapshot in S3 after | {_s(outcome.baseline_done_at)} |",
        f"| snapshots in S3 at the end | {outcome.snapshots:,} |",
        "| Events posted, by reason | "
        + (", ".join(f"{r} {n:,}" for r, n in outcome.events.most_common()) or "none")
        + " |",
        "| targets with an error in the status at the end | "
        + (
            "; ".join(f"{n:,} x `{e}`" for e, n in outcome.errors.most_common(3))
            if outcome.errors
            else "none"
        )
        + " |",
        "| requests the real authorizer refused (403) | "
        + (", ".join(f"{v} {r} x{n}" for (v, r), n in outcome.forbidden.items()) or "none")
        + " |",
        "| pprof forwards that failed (fixture unreachable) | "
        + (", ".join(f"{n} x `{e}`" for e, n in outcome.endpoint_errors.items()) or "none")
        + " |",
        "| the benchmark's server forwarding /debug/pprof to a fixture: median / p99 / max | "
        + (
            " / ".join(f"{1000 * x:.0f} ms" for x in quantiles(outcome.forward_seconds))
            if outcome.forward_seconds
            else "-"
        )
        + " |",
        f"| this benchmark's process (endpoint server, polls), % of one core | "
        f"{outcome.bench_cpu:.1f} % |",
        f"| emulated node: Lease renewals; Ready at the end | {outcome.lease_renewals}; "
        f"{outcome.node_ready_at_end or '-'} |",
        f"| clean-up | {outcome.cleanup or '-'} |",
    ]
    return lines


def targets_table(outcome: Outcome) -> list[str]:
    """Requests to the pods' endpoints (our server) by path, per minute."""
    paths: Counter[str] = Counter()
    for minute in outcome.target_minutes:
        paths.update(minute)
    minutes = len(outcome.target_minutes)
    lines = [
        "| path | total | " + " | ".join(f"min {i + 1}" for i in range(minutes)) + " |",
        "| --- | ---: |" + " ---: |" * minutes,
    ]
    for path, total in paths.most_common():
        cells = " | ".join(str(m[path]) for m in outcome.target_minutes)
        lines.append(f"| `{path}` | {total:,} | {cells} |")
    return lines


def calls_table(outcome: Outcome, duration: float) -> list[str]:
    keys: Counter[tuple[str, str]] = Counter()
    for minute in outcome.minutes:
        keys.update(minute)
    full = outcome.minutes[:-1] if len(outcome.minutes) > 1 else outcome.minutes
    header = "| verb | resource | total | " + " | ".join(
        f"min {i + 1}" for i in range(len(outcome.minutes))
    )
    lines = [
        header + " | per minute, full minutes after the first |",
        "| --- | --- | ---: |" + " ---: |" * len(outcome.minutes) + " ---: |",
    ]
    for key, total in sorted(keys.items(), key=lambda kv: -kv[1]):
        later = [m[key] for m in full[1:]] or [m[key] for m in full]
        cells = " | ".join(str(m[key]) for m in outcome.minutes)
        lines.append(
            f"| {key[0]} | {key[1]} | {total:,} | {cells} | {statistics.mean(later):.1f} |"
        )
    return lines


def crossing_table(outcome: Outcome) -> list[str]:
    lines = [
        "| pod | first capture after the rise | raised -> capture started | "
        "raised -> listed in S3 | raised -> in the status |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for c in outcome.crossings:
        lines.append(
            f"| {c.namespace}/{c.pod} ({c.investigation}) | {c.reason or '-'} | "
            f"{_s(c.captured_at - c.at)} | {_s(c.in_archive - c.at)} | {_s(c.in_status - c.at)} |"
        )
    return lines


def section(args: argparse.Namespace, outcome: Outcome, notes: str) -> str:
    checks = verdicts(outcome)
    lines = [
        f"<!-- bench:{SECTION} -->",
        "## Scale: one operator, many pods",
        "",
        "`"
        + "".join(f"{k}={v} " for k, v in sorted(os.environ.items()) if k.startswith("OOMF_"))
        + f".venv/bin/python benchmarks/bench_scale.py --pods {args.pods} --investigations "
        f"{args.investigations} --namespaces {args.namespaces} --duration {args.duration:g} "
        f"--fixtures {args.fixtures} --crossings {args.crossings}`, "
        f"{datetime.datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {machine_line()}. Load average (1 min) at the start, the mean of the "
        f"run, the end: {args.load_start:.2f}, {load_mean(args.loads):.2f}, "
        f"{args.loads[-1] if args.loads else math.nan:.2f}: the 2 cores were shared with "
        "the test cluster (etcd, kube-apiserver, controller-manager, scheduler, metrics-server, "
        "containerd and the kubelet), moto, the fixtures, this benchmark's endpoint server and "
        "other sessions' work on the machine.",
        "",
        "Setup: `oomforensics run` as its own process against the real test cluster, as the "
        "chart's ServiceAccount with the chart's rendered RBAC (a TokenRequest token), "
        f"OOMF_NAMESPACES={','.join(namespaces(args))}, with the image's allocator settings ("
        + ", ".join(f"{k}={v}" for k, v in image_malloc_settings().items())
        + "): "
        f"{args.pods} pods in {args.namespaces} namespace(s), {args.investigations} "
        f"MemoryInvestigations ({args.pods // args.investigations} pods each; spec defaults: "
        "sampling every 15 s, thresholds 80/90/95 %, baseline snapshot; periodic snapshots "
        "hourly), storage S3 on moto. Pods are real Pod objects bound to the Node "
        f"`{NODE_NAME}`, which no kubelet runs (benchmarks/scale_node.py registers it, renews "
        "its Lease and writes each pod's status through pods/status as the kubelet does: the "
        "one emulated part). Each pod's port is served by one server of the benchmark's: "
        f"/debug/pprof/* forwarded to one of {args.fixtures} real leaky Go fixtures (`-mode "
        "steady`), so every capture fetches real profiles; /metrics a fixture's page with "
        "process_resident_memory_bytes at the pod's emulated working set (256 MiB limit, "
        "30-65 %, drifting every 15 s). metrics-server reports none of these pods (no kubelet "
        "to scrape), so the operator reads each target's /metrics. "
        f"{args.crossings} pods jump to {CROSSING:.0%} of their limit at moments spread over "
        "the run.",
        "",
        "| target | measured | met? |",
        "| --- | --- | --- |",
        *(f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, _, ok in checks),
        "",
        *summary_table(args, outcome),
        "",
        "Threshold crossing -> capture (S3 listed and status polled every 0.25 s; the "
        "snapshot key's time is when the capture started, millisecond resolution):",
        "",
        *crossing_table(outcome),
        "",
        "API requests by the operator, per minute of the run (the real API server's audit "
        "log: the operator's own token, whose id the log records, since the test sessions' "
        "operators use the same ServiceAccount; each request once, in the minute it was "
        "received, so a watch counts when opened):",
        "",
        *calls_table(outcome, args.duration),
        "",
        "Requests to the pods' endpoints (the benchmark's server), per minute: /metrics is the "
        "memory reading of every target at each sample, in place of PodMetrics:",
        "",
        *targets_table(outcome),
    ]
    if notes:
        lines += ["", notes]
    if outcome.profile:
        lines += [
            "",
            "<details><summary>py-spy profile of the operator</summary>",
            "",
            "```",
            outcome.profile,
            "```",
            "",
            "</details>",
        ]
    lines.append(f"<!-- /bench:{SECTION} -->")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--investigations", type=int, default=100)
    parser.add_argument(
        "--namespaces", type=int, default=1, help="namespaces of the run's own, all watched"
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds measured")
    parser.add_argument("--fixtures", type=int, default=5, help="real fixture processes")
    parser.add_argument("--crossings", type=int, default=5, help="pods crossing 80 %%")
    parser.add_argument("--py-spy", type=Path, help="py-spy binary: profile the operator")
    parser.add_argument("--notes", default="", help="a paragraph for RESULTS.md (findings)")
    parser.add_argument("--log", type=Path, help="keep the operator's log here")
    parser.add_argument("--verbose", action="store_true", help="the operator logs at debug")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if min(args.pods, args.investigations, args.namespaces, args.fixtures) < 1:
        parser.error("--pods, --investigations, --namespaces and --fixtures must be positive")
    if not 0 <= args.crossings <= args.investigations:
        parser.error("--crossings: between 0 and --investigations")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not FIXTURE_BIN.is_file():
        raise SystemExit(f"{FIXTURE_BIN}: fixture not built; run `make setup` first")
    args.prefix = f"bench-scale-{secrets.token_hex(3)}"
    args.load_start = os.getloadavg()[0]
    args.loads = []
    say("the test cluster (hack/cluster up when it is not running; shared lock) ...")
    try:
        with shared_cluster() as kube:
            outcome = asyncio.run(run(args, kube))
    except (ClusterUnavailable, NodeBusy) as exc:
        raise SystemExit(str(exc)) from None
    text = section(args, outcome, args.notes)
    print(text)
    if not args.no_write:
        update_results(RESULTS, SECTION, text)
        say(f"Updated {RESULTS}")
    return 0 if outcome.exit_code is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
