"""A session's cluster: `hack/cluster up` in a directory of the tests' own (not the one
`make demo` uses), the admin's credentials, and small helpers (namespaces, kubectl, images).

The cluster is started once when it is not running yet and shared by every test session of
the machine that runs meanwhile: each session holds a shared lock on `sessions.lock` in the
cluster's directory, and the last one to leave stops the cluster if a test session started it
(not if `make cluster-up` or a person did; `OOMF_KEEP_TEST_CLUSTER=1` leaves it running).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
CLUSTER_SCRIPT = ROOT / "hack" / "cluster"
CACHE_DIR = Path(os.environ.get("OOMF_CACHE") or Path.home() / ".cache" / "oomforensics")
KUBE_BIN = CACHE_DIR / "kube" / "bin"
KUBECTL_BIN = CACHE_DIR / "k8s" / "bin" / "kubectl"
TEST_CLUSTER_DIR = Path(os.environ.get("OOMF_TEST_CLUSTER_DIR") or CACHE_DIR / "test-cluster")
KUBE_HINT = "run hack/build-kube.sh (make setup does)"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "metrics-server",
    "kubelet",
    "containerd",
    "runc",
)
UP_TIMEOUT = 600.0  # a cold start on a loaded machine: etcd, five components, the node
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def kube_binaries_missing() -> list[str]:
    missing = [name for name in BINARIES if not os.access(KUBE_BIN / name, os.X_OK)]
    if not os.access(KUBECTL_BIN, os.X_OK):
        missing.append(str(KUBECTL_BIN))
    return missing


@dataclass(frozen=True)
class KubeCluster:
    """How to reach the running cluster as its admin (group system:masters)."""

    directory: Path
    url: str  # https://127.0.0.1:PORT
    node_name: str  # the one node, named after its address

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the cluster's CA only and presents the admin client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        pki = self.directory / "pki"
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    def http(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=timeout)

    def async_http(self, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, verify=self.ssl_context(), timeout=timeout)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """kubectl as the admin; a failure fails the test with kubectl's own message."""
        result = subprocess.run(
            [str(KUBECTL_BIN), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def ensure_namespace(self, name: str) -> None:
        with self.http() as http:
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace"}
            body["metadata"] = {"name": name}
            response = http.post("/api/v1/namespaces", json=body)
            assert response.status_code in (201, 409), response.text

    def audit_events(self, user: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """The API server's audit log entries (stage ResponseComplete) of requests by `user`,
        received at `since` or later (the log outlives a test and the cluster's restarts)."""
        found: list[dict[str, Any]] = []
        for path in sorted((self.directory / "logs").glob("audit*.log"), reverse=True):
            for line in path.read_text().splitlines():
                if f'"{user}"' not in line:
                    continue
                event = json.loads(line)
                if event.get("stage") != "ResponseComplete" or event["user"]["username"] != user:
                    continue
                received = datetime.fromisoformat(event["requestReceivedTimestamp"])
                if since is None or received >= since:
                    found.append(event)
        return found

    def image(self, name: str, binary: Path) -> None:
        """Make a static binary runnable as the pod image `name` (imagePullPolicy: Never)."""
        run_script("image", name, str(binary), directory=self.directory)


def run_script(*args: str, directory: Path, timeout: float = UP_TIMEOUT) -> str:
    environment = {**os.environ, "OOMF_CLUSTER_DIR": str(directory)}
    try:
        result = subprocess.run(
            [str(CLUSTER_SCRIPT), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"hack/cluster {' '.join(args)} took over {timeout:g}s") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"hack/cluster {' '.join(args)} failed (exit {result.returncode}):\n"
            + "\n".join(result.stderr.strip().splitlines()[-30:])
        )
    return result.stdout


def _ports(directory: Path) -> dict[str, str]:
    lines = (directory / "ports.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def cluster_running(directory: Path) -> bool:
    status = run_script("status", directory=directory, timeout=30)
    return "stopped" not in status


def cluster_up(directory: Path = TEST_CLUSTER_DIR) -> KubeCluster:
    kubeconfig = Path(run_script("up", directory=directory).strip().splitlines()[-1])
    assert kubeconfig == directory / "admin.kubeconfig", kubeconfig
    port = _ports(directory)["APISERVER_PORT"]
    return KubeCluster(directory=directory, url=f"https://127.0.0.1:{port}", node_name="127.0.0.1")


def cluster_down(directory: Path = TEST_CLUSTER_DIR) -> None:
    run_script("down", directory=directory, timeout=120)


STARTED_BY_TESTS = "started-by-tests"  # marker: a test session brought the cluster up


class ClusterUnavailable(RuntimeError):
    """The test cluster cannot be had: binaries missing, or `hack/cluster up` failed."""


@contextlib.contextmanager
def shared_cluster(directory: Path = TEST_CLUSTER_DIR) -> Iterator[KubeCluster]:
    """The machine's test cluster, running (started here if it was not), held with a shared
    lock while the block runs: what the `kube` fixture gives a test session, for a plain
    script (a benchmark) that must share the cluster the same way."""
    missing = kube_binaries_missing()
    if missing:
        raise ClusterUnavailable(
            f"the test cluster's binaries are missing ({', '.join(missing)}): {KUBE_HINT}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    # Two locks: `sessions.lock` is held shared for the session's life (so no session takes
    # the cluster down under another: the last to leave gets it exclusively), `up.lock`
    # exclusively while starting it (so two sessions never start it at once). Waiting for the
    # exclusive sessions lock to start the cluster would wait for every other session to end.
    with (directory / "sessions.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # blocks only while a leaving session stops it
        try:
            with (directory / "up.lock").open("a") as starting:
                fcntl.flock(starting, fcntl.LOCK_EX)
                if not (directory / "ports.env").is_file() or not cluster_running(directory):
                    (directory / STARTED_BY_TESTS).touch()
                cluster = cluster_up(directory)
        except RuntimeError as exc:
            fcntl.flock(lock, fcntl.LOCK_UN)
            raise ClusterUnavailable(str(exc)) from exc
        try:
            yield cluster
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            _leave(lock, directory)


@pytest.fixture(scope="session", name="kube")
def kube_fixture() -> Iterator[KubeCluster]:
    """The machine's test cluster, running (started here if it was not), shared between the
    test sessions that run at the same time."""
    try:
        with shared_cluster(TEST_CLUSTER_DIR) as cluster:
            yield cluster
    except ClusterUnavailable as exc:
        pytest.fail(str(exc))


def _leave(lock: Any, directory: Path = TEST_CLUSTER_DIR) -> None:
    """Stop the cluster if this is the last session using it and a test session started it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no other session holds it shared
    except BlockingIOError:
        return  # another session still uses it: the last to leave decides
    marker = directory / STARTED_BY_TESTS
    if marker.exists() and os.environ.get("OOMF_KEEP_TEST_CLUSTER") != "1":
        cluster_down(directory)
        marker.unlink(missing_ok=True)
    fcntl.flock(lock, fcntl.LOCK_UN)
