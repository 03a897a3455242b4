"""After a real OOM kill, an engineer asks the CLI: which investigations, which snapshots, and
"give me the baseline and the last snapshot before the kill" — verified, resumable, with the
pprof command that compares them, even after the custom resource is gone.

One scenario for the module, on the real one-node cluster: the classic leak (response bodies
of 403s never closed) runs as a pod with a memory limit on the real kubelet, in a namespace of
the module's own; the operator, as the chart's ServiceAccount with the chart's RBAC (the
investigation's Secret granted by `investigationSecrets`), archives snapshots into S3 (moto)
with credentials from that Secret until the kernel OOM-kills the container. Then the operator
stops, the pod is deleted, and every test runs the installed `oomforensics` (or `kubectl
oomforensics`) as a user would: with a kubeconfig of their own, a read-only user (a
ServiceAccount token) who may get and list MemoryInvestigations and get the investigations'
storage Secrets by name, and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pty
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import obstore
import pytest
import yaml
from obstore.store import S3Store

from tests.e2e.operator_harness import (
    apply_crd,
    kube_namespace,
    kube_operator_environment,
    poll,
    running_operator,
)
from tests.support.kube import KubeCluster
from tests.support.kube.cluster import KUBECTL_BIN, MERGE_PATCH
from tests.support.kube.images import fixture_image
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.kube.pods import leaky_pod
from tests.support.moto import MotoServer

# The scenario (set up by the first test) runs the leak until the kernel's kill: ~2-4 minutes
# on a loaded 2-core machine, with metrics-server reading every 10 s.
pytestmark = [pytest.mark.gotool, pytest.mark.timeout(600)]
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))
BIN = Path(sys.executable).parent
OOMFORENSICS = BIN / "oomforensics"
NAME = "checkout-oom"
USER = "investigator"  # the CLI's user: a ServiceAccount of the namespace, read-only
# Secrets the user may get by name: the scenario's and one that never exists; `vault-s3`
# exists but is not theirs.
USER_SECRETS = ("checkout-s3", "ledger-s3")
SUMMARY = re.compile(
    r"fetched (\d+) snapshot\(s\) into .*: (\d+) file\(s\) downloaded \(([^)]*)\), "
    r"(\d+) already present and verified"
)


@dataclass
class Scenario:
    kube: KubeCluster
    namespace: str
    s3: MotoServer
    url: str  # the investigation's own archive (spec.storage.url)
    default_url: str  # the operator's default archive (OOMF_STORAGE_URL)
    status: dict[str, Any]
    workdir: Path
    kubeconfig: Path  # the read-only user's
    user: str  # their user name in the audit log
    started: datetime  # when the user's first request could be

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{NAME}"

    @property
    def mi(self) -> str:
        return f"/apis/oomforensics.io/v1alpha1/namespaces/{self.namespace}/memoryinvestigations"

    def env(self, *, aws: bool = False) -> dict[str, str]:
        """A user's shell: their kubeconfig; storage credentials only when asked for."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OOMF_"))}
        env["KUBECONFIG"] = str(self.kubeconfig)
        if aws:
            env["AWS_ACCESS_KEY_ID"] = self.s3.credentials["access_key_id"]
            env["AWS_SECRET_ACCESS_KEY"] = self.s3.credentials["secret_access_key"]
            env["AWS_DEFAULT_REGION"] = "us-east-1"
        return env

    def cli(self, *args: str, aws: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(OOMFORENSICS), *args],
            env=self.env(aws=aws),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @property
    def endpoint(self) -> str:
        return f"endpoint={self.s3.endpoint}"


async def _run_until_oom(
    kube: KubeCluster, namespace: str, s3: MotoServer, url: str
) -> dict[str, Any]:
    image = fixture_image(kube, "leaky")
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    pods = f"/api/v1/namespaces/{namespace}/pods"
    async with kube.async_http() as http:
        await apply_crd(http)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "checkout-s3", "namespace": namespace},
            "stringData": dict(s3.credentials),
        }
        created = await http.post(f"/api/v1/namespaces/{namespace}/secrets", json=secret)
        assert created.status_code == 201, created.text
        pod = leaky_pod(
            "checkout",
            namespace,
            image,
            "tls403",
            labels={"app": "checkout"},
            memory_limit="160Mi",
            # The front published PodMetrics twice a second and this ran at 60; metrics-server
            # reads every 10 s: slow enough for a series of snapshots 30 s apart before the
            # kill (as in test_operator_classic_leak).
            rate=20,
        )
        created = await http.post(pods, json=pod)
        assert created.status_code == 201, created.text
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "checkout"}},
                "endpoint": {"portName": "http"},
                "sampling": {"interval": "1s"},
                "snapshots": {"interval": "30s"},
                "triggers": {"cooldown": "5s"},
                "storage": {
                    "url": url,
                    "secretRef": {"name": "checkout-s3"},
                    "options": s3.options,
                },
            },
        }
        created = await http.post(mi, json=investigation)
        assert created.status_code == 201, created.text
        async with running_operator([namespace]) as operator:

            async def told() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{mi}/{NAME}")).json()
                status = body.get("status") or {}
                summary = status.get("summary") or {}
                done = status.get("oomKills") and summary.get("leakSuspected")
                return status if done else None

            status = await poll(
                told, 420, "the OOM kill and a summary suspecting the leak", operator
            )
        # The evidence is in the archive and the custom resource: the pod, OOM-killed again and
        # again in CrashLoopBackOff, would only load the machine for the rest of the module.
        deleted = await http.delete(f"{pods}/checkout", params={"gracePeriodSeconds": "0"})
        assert deleted.status_code == 200, deleted.text
        return status


def _read_only_user(kube: KubeCluster, namespace: str, path: Path) -> tuple[Path, str]:
    """A user who may read MemoryInvestigations (every namespace, for `list -A`) and get the
    named storage Secrets of the namespace; their kubeconfig holds a token and the namespace."""
    cluster_name = f"oomf-cli-{namespace}"  # cluster-scoped: one per module run
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": USER}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name},
            "rules": [
                {
                    "apiGroups": ["oomforensics.io"],
                    "resources": ["memoryinvestigations"],
                    "verbs": ["get", "list"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": USER, "namespace": namespace}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "investigator-secrets"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": list(USER_SECRETS),
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "investigator-secrets"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "investigator-secrets",
            },
            "subjects": [{"kind": "ServiceAccount", "name": USER, "namespace": namespace}],
        },
    ]
    kube.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))
    with kube.http() as http:
        response = http.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{USER}/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )
    assert response.status_code == 201, response.text
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": kube.url, "certificate-authority": str(kube.ca_file)},
            }
        ],
        "users": [{"name": USER, "user": {"token": response.json()["status"]["token"]}}],
        "contexts": [
            {
                "name": "test",
                "context": {"cluster": "test", "user": USER, "namespace": namespace},
            }
        ],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path, f"system:serviceaccount:{namespace}:{USER}"


@pytest.fixture(scope="module")
def scenario(
    kube: KubeCluster, s3: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    workdir = tmp_path_factory.mktemp("cli")
    with kube_namespace(kube, "cli-fetch") as namespace, pytest.MonkeyPatch.context() as patch:
        cluster_rbac = f"oomf-cli-{namespace}"
        try:
            kubeconfig, _ = operator_kubeconfig(
                kube,
                workdir / "operator.kubeconfig",
                watch_namespaces=[namespace],
                values={
                    "investigationSecrets": [{"namespace": namespace, "names": ["checkout-s3"]}]
                },
            )
            default_url = kube_operator_environment(
                patch, kubeconfig, s3, "e2e-cli-default", workdir / "spool", namespace
            )
            url = s3.archive_url("e2e-cli")
            status = asyncio.run(_run_until_oom(kube, namespace, s3, url))
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "cli-status.json").write_text(json.dumps(status, indent=2))
            started = datetime.now(UTC)
            user_config, user = _read_only_user(kube, namespace, workdir / "user.kubeconfig")
            yield Scenario(
                kube,
                namespace,
                s3,
                url,
                default_url,
                status,
                workdir,
                user_config,
                user,
                started,
            )
        finally:
            kube.kubectl(
                "delete", "clusterrolebinding,clusterrole", cluster_rbac, "--ignore-not-found",
                check=False,
            )  # fmt: skip


def keep(name: str, result: subprocess.CompletedProcess[str]) -> None:
    """What the user saw, for a look after the run (like the other end-to-end tests)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(f"{result.stdout}\n--- stderr ---\n{result.stderr}")


def summary_of(output: str) -> tuple[int, int, int]:
    """(snapshots, files downloaded, files already present) from fetch's summary line."""
    match = SUMMARY.search(output)
    assert match, output
    return int(match.group(1)), int(match.group(2)), int(match.group(4))


def commands(output: str, tool: str) -> list[list[str]]:
    return [shlex.split(line) for line in output.splitlines() if line.strip().startswith(tool)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_verified(folder: Path) -> dict[str, Any]:
    """A local snapshot folder whose files match its manifest, byte for byte."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert digest(folder / name) == entry["sha256"], folder / name
        assert (folder / name).stat().st_size == entry["size"]
    assert not list(folder.glob("*.part"))
    return dict(manifest)


def test_the_operator_records_where_the_archive_is(scenario: Scenario) -> None:
    assert scenario.status["archive"] == scenario.url


def test_list_shows_the_investigation_its_kill_and_suspect(scenario: Scenario) -> None:
    result = scenario.cli("list")  # the namespace of the user's context
    keep("cli-list.txt", result)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "TARGETS", "SNAPSHOTS", "OOMKILLS", "SUSPECT"]
    row = next(r.split() for r in rows if r.startswith(NAME))
    suspect = scenario.status["summary"]["suspect"]
    assert row[3] == str(scenario.status["oomKillCount"]) and int(row[3]) >= 1
    assert int(row[2]) >= 3
    assert row[4] == suspect

    everywhere = scenario.cli("list", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    assert everywhere.stdout.splitlines()[0].startswith("NAMESPACE")
    lines = everywhere.stdout.splitlines()
    assert any(line.split()[:2] == [scenario.namespace, NAME] for line in lines)


def test_list_name_groups_the_snapshots_by_container_run(scenario: Scenario) -> None:
    result = scenario.cli("list", NAME)
    keep("cli-list-name.txt", result)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    kill = scenario.status["oomKills"][0]
    assert f"archive    {scenario.url}" in text
    assert f"pod checkout (uid {kill['uid'][:8]}, first snapshot " in text
    when = kill["time"].replace("T", " ").removesuffix("Z")
    assert f"container app, run 0, OOM-killed {when}" in text
    run0 = text.split("container app, run 0")[1].split("container app, run 1")[0]
    lines = [line.split() for line in run0.splitlines()[1:] if line.strip()]
    # The table follows what the kill line says about the kill (its cause, when judged).
    header = next(i for i, line in enumerate(lines) if line[:1] == ["TIME"])
    assert lines[header][:4] == ["TIME", "REASON", "%", "OF"]
    snapshots = lines[header + 1 :]
    assert snapshots[0][2] == "baseline"
    assert all(re.fullmatch(r"\d+\.\d%", s[3]) for s in snapshots), snapshots
    # The last snapshot of the run is the one the status calls pre-OOM, near the limit.
    assert snapshots[-1][-1] == "pre-OOM"
    assert kill["preOomSnapshot"].rstrip("/").endswith(snapshots[-1][2])
    assert float(snapshots[-1][3].rstrip("%")) >= 80
    assert sum(s[-1] == "pre-OOM" for s in snapshots) == 1


def test_fetch_the_oom_kill_then_compare_with_go_tool_pprof(scenario: Scenario) -> None:
    out = scenario.workdir / "oom0"
    result = scenario.cli("fetch", scenario.ref, "--oom", "0", "--out", str(out))
    keep("cli-fetch.txt", result)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no terminal: no progress line
    snapshots, downloaded, present = summary_of(result.stdout)
    assert snapshots >= 2 and downloaded >= 2 * 2 and present == 0
    kill = scenario.status["oomKills"][0]
    run0 = out / scenario.namespace / NAME / "checkout" / kill["uid"] / "app" / "run-0"
    fetched = sorted(p.name for p in run0.iterdir() if p.is_dir())
    assert len(fetched) == snapshots
    # how the run ended comes along, for the report's OOM marker
    assert json.loads((run0 / "oom.json").read_text())["preOomSnapshot"] == kill["preOomSnapshot"]
    assert fetched[0].endswith("-baseline")
    where = f"{scenario.ref}/checkout/{kill['uid']}/app/run-0"
    assert kill["preOomSnapshot"] == f"{where}/{fetched[-1]}/"
    for folder in run0.iterdir():
        if folder.is_dir():
            assert_verified(folder)
    assert not (run0.parent / "run-1").exists()

    assert "baseline vs pre-OOM" in result.stdout
    (pprof,) = commands(result.stdout, "go tool pprof")
    assert pprof[:4] == ["go", "tool", "pprof", "-diff_base"]
    assert pprof[4:] == [
        str(run0 / fetched[0] / "heap.pb.gz"),
        str(run0 / fetched[-1] / "heap.pb.gz"),
    ]
    go = shutil.which("go")
    assert go is not None
    top = subprocess.run(
        [go, "tool", "pprof", "-top", *pprof[3:]], capture_output=True, text=True, timeout=120
    )
    assert top.returncode == 0, top.stderr
    assert "flat%" in top.stdout

    (diff,) = commands(result.stdout, "oomforensics diff")
    compared = subprocess.run(
        [str(OOMFORENSICS), *diff[1:]], capture_output=True, text=True, timeout=120
    )
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.startswith(f"base: {run0 / fetched[0]}")
    assert str(run0 / fetched[-1]) in compared.stdout


def test_fetch_again_downloads_nothing_and_repairs_what_is_missing(scenario: Scenario) -> None:
    out = scenario.workdir / "resume"
    args = ("fetch", scenario.ref, "--oom", "0", "--out", str(out))
    first = scenario.cli(*args)
    assert first.returncode == 0, first.stderr
    snapshots, downloaded, _ = summary_of(first.stdout)

    again = scenario.cli(*args)
    keep("cli-fetch-again.txt", again)
    assert again.returncode == 0, again.stderr
    assert summary_of(again.stdout) == (snapshots, 0, downloaded)
    assert "0 file(s) downloaded (0B)" in again.stdout

    # A file lost locally (or cut short) is fetched again, and only that file.
    heap = next(out.rglob("heap.pb.gz"))
    heap.unlink()
    damaged = next(out.rglob("heap.txt"))
    damaged.write_bytes(damaged.read_bytes()[:10])
    repaired = scenario.cli(*args)
    assert repaired.returncode == 0, repaired.stderr
    assert summary_of(repaired.stdout) == (snapshots, 2, downloaded - 2)
    assert_verified(heap.parent)
    assert_verified(damaged.parent)


def test_progress_is_shown_on_a_terminal(scenario: Scenario) -> None:
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [str(OOMFORENSICS), "fetch", scenario.ref, "--out", str(scenario.workdir / "tty")],
            env=scenario.env(),
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=120,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert result.returncode == 0
    shown = b"".join(chunks).decode()
    _, downloaded, present = summary_of(result.stdout)
    files = downloaded + present
    assert "\r" in shown
    assert f"fetch: {files}/{files} files" in shown
    assert "fetch: 0/" in shown


def test_a_cluster_user_meets_clear_errors(scenario: Scenario) -> None:
    namespace = scenario.namespace
    missing = scenario.cli("fetch", f"{namespace}/nothing-here")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"oomforensics: error: no MemoryInvestigation {namespace}/nothing-here "
        f"(kubectl get memoryinvestigations.oomforensics.io -n {namespace})"
    ]

    bad = scenario.cli("fetch", f"{namespace}/Not_A_Name")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1
    assert "expected NAMESPACE/NAME" in bad.stderr

    # Set up as the cluster's admin (the user may only read): three more investigations, and
    # a Secret the user may not read.
    http = scenario.kube.http()
    vault = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "vault-s3", "namespace": namespace},
        "stringData": dict(scenario.s3.credentials),
    }
    created = http.post(f"/api/v1/namespaces/{namespace}/secrets", json=vault)
    assert created.status_code == 201, created.text
    spec = {"selector": {"matchLabels": {"app": "orders"}}, "endpoint": {"port": 6060}}
    for name, storage in (
        ("orders", None),
        ("ledger", {"url": scenario.url, "secretRef": {"name": "ledger-s3"}}),
        ("vault", {"url": scenario.url, "secretRef": {"name": "vault-s3"}}),
    ):
        body = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {**spec, **({"storage": storage} if storage else {})},
        }
        created = http.post(scenario.mi, json=body)
        assert created.status_code == 201, created.text

    # The operator's default storage is in its environment, not the user's: say what to do.
    default = scenario.cli("fetch", f"{namespace}/orders")
    assert default.returncode == 1 and len(default.stderr.splitlines()) == 1
    assert "operator's default storage" in default.stderr and "--archive" in default.stderr

    # Once the operator has recorded the archive URL, the user's environment does the rest.
    patch = {"status": {"archive": scenario.default_url}}
    patched = http.patch(f"{scenario.mi}/orders/status", json=patch, headers=MERGE_PATCH)
    assert patched.is_success, patched.text
    empty = scenario.cli("fetch", f"{namespace}/orders", "--option", scenario.endpoint, aws=True)
    assert empty.returncode == 1, empty.stdout
    assert empty.stderr.strip() == (
        f"oomforensics: error: no snapshots yet of {namespace}/orders in {scenario.default_url}"
    )

    bucket = scenario.cli(
        "fetch",
        "--archive",
        "s3://no-such-bucket/x",
        "--path",
        f"{namespace}/orders",
        "--option",
        scenario.endpoint,
        aws=True,
    )
    assert bucket.returncode == 1 and len(bucket.stderr.splitlines()) == 1, bucket.stderr
    assert "no-such-bucket" in bucket.stderr and "404" in bucket.stderr

    secret = scenario.cli("fetch", f"{namespace}/ledger")
    assert secret.returncode == 1 and len(secret.stderr.splitlines()) == 1
    assert f"Secret {namespace}/ledger-s3" in secret.stderr and "does not exist" in secret.stderr

    # The real authorizer's 403 on a Secret that exists but is not the user's.
    refused = scenario.cli("fetch", f"{namespace}/vault")
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert f"Secret {namespace}/vault-s3" in refused.stderr
    assert "your kube credentials may not read it" in refused.stderr
    http.close()


def test_kubectl_plugin_lists_the_investigations(scenario: Scenario) -> None:
    kubectl = str(KUBECTL_BIN)
    env = scenario.env()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    plugins = subprocess.run(
        [kubectl, "plugin", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "kubectl-oomforensics" in plugins.stdout, plugins.stderr
    result = subprocess.run(
        [kubectl, "oomforensics", "list", NAME],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"investigation {scenario.ref}" in result.stdout
    assert "pre-OOM" in result.stdout


def test_a_corrupted_object_is_reported_and_not_saved(scenario: Scenario) -> None:
    pre = scenario.status["oomKills"][0]["preOomSnapshot"]
    store = S3Store(
        scenario.s3.bucket,
        endpoint=scenario.s3.endpoint,
        region="us-east-1",
        access_key_id=scenario.s3.credentials["access_key_id"],
        secret_access_key=scenario.s3.credentials["secret_access_key"],
        client_options={"allow_http": True},
    )
    key = f"e2e-cli/{pre}heap.pb.gz"
    original = bytes(obstore.get(store, key).bytes())
    obstore.put(store, key, original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        out = scenario.workdir / "corrupt"
        result = scenario.cli("fetch", scenario.ref, "--oom", "0", "--out", str(out))
        keep("cli-fetch-corrupt.txt", result)
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert f"{pre}heap.pb.gz: checksum mismatch" in line
        assert "1 damaged, not saved" in result.stdout and "go tool" not in result.stdout
        folder = out.joinpath(*pre.strip("/").split("/"))
        assert not (folder / "heap.pb.gz").exists()
        assert not (folder / "manifest.json").exists()  # not a verified snapshot
        assert not list(folder.glob("*.part"))
        # The rest of the run is there, verified.
        others = [p for p in folder.parent.iterdir() if p != folder and p.is_dir()]
        assert others and all(assert_verified(p) for p in others)
    finally:
        obstore.put(store, key, original)


def test_report_of_an_investigation_fetches_it_and_marks_each_kill(scenario: Scenario) -> None:
    out = scenario.workdir / "report.html"
    env = {**scenario.env(), "OOMF_CACHE": str(scenario.workdir / "cache")}
    result = subprocess.run(
        [str(OOMFORENSICS), "report", scenario.ref, "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fetched" in result.stderr and f"wrote {out}" in result.stdout
    fetched = scenario.workdir / "cache" / "fetched" / scenario.namespace / NAME
    uid = scenario.status["oomKills"][0]["uid"]
    assert (fetched / "checkout" / uid / "app" / "run-0" / "oom.json").is_file()
    page = out.read_text()
    assert page.count('class="end oom-kill"') == len(scenario.status["oomKills"])
    assert "main.fetchReport" in page


def test_the_cli_only_reads_with_the_users_credentials(scenario: Scenario) -> None:
    """As the real API server's audit log tells it: the CLI reads investigations (a get, or a
    list) and gets Secrets by name; it writes nothing and never lists Secrets."""
    listed = scenario.cli("list")
    assert listed.returncode == 0, listed.stderr
    fetched = scenario.cli("fetch", scenario.ref, "--out", str(scenario.workdir / "audited"))
    assert fetched.returncode == 0, fetched.stderr
    requests = scenario.kube.audit_events(scenario.user, since=scenario.started)
    seen = {
        (e["verb"], e.get("objectRef", {}).get("resource"), e.get("objectRef", {}).get("name"))
        for e in requests
    }
    assert ("list", "memoryinvestigations", None) in seen, seen
    assert ("get", "memoryinvestigations", NAME) in seen, seen
    assert ("get", "secrets", "checkout-s3") in seen, seen
    assert {verb for verb, _, _ in seen} <= {"get", "list"}, seen
    assert {resource for _, resource, _ in seen} <= {"memoryinvestigations", "secrets"}, seen
    assert all(name is not None for verb, resource, name in seen if resource == "secrets"), seen
    refused = {
        (e["verb"], e["objectRef"].get("name"))
        for e in requests
        if e["responseStatus"]["code"] == 403
    }
    # Only the Secret the user was refused on purpose (test_a_cluster_user_meets_clear_errors).
    assert refused <= {("get", "vault-s3")}, refused


def test_fetch_from_the_archive_alone_after_the_investigation_is_deleted(
    scenario: Scenario,
) -> None:
    with scenario.kube.http() as http:
        # The operator is stopped: take its finalizer off, as it would on deletion.
        http.patch(
            f"{scenario.mi}/{NAME}", json={"metadata": {"finalizers": None}}, headers=MERGE_PATCH
        ).raise_for_status()
        assert http.delete(f"{scenario.mi}/{NAME}").is_success
        assert http.get(f"{scenario.mi}/{NAME}").status_code == 404
    gone = scenario.cli("fetch", scenario.ref, "--oom", "0")
    assert gone.returncode == 1 and "no MemoryInvestigation" in gone.stderr

    out = scenario.workdir / "archive-only"
    args = ["fetch", "--archive", scenario.url, "--option", scenario.endpoint]
    args += ["--path", scenario.ref, "--oom", "-1", "--last", "1", "--out", str(out)]
    result = scenario.cli(*args, aws=True)
    assert result.returncode == 0, result.stderr
    snapshots, _, _ = summary_of(result.stdout)
    kill = scenario.status["oomKills"][-1]
    pre, uid = kill["preOomSnapshot"], kill["uid"]
    run = out / scenario.namespace / NAME / "checkout" / uid / "app" / f"run-{kill['run']}"
    names = sorted(p.name for p in run.iterdir() if p.is_dir())
    assert (run / "oom.json").is_file()
    assert snapshots == 2 and len(names) == 2  # --last 1: the pre-OOM one and the baseline
    assert names[0].endswith("-baseline") and pre.endswith(f"/{names[1]}/")
    assert "baseline vs pre-OOM" in result.stdout  # the kill read from the archive's oom.json
    for folder in run.iterdir():
        if folder.is_dir():
            assert_verified(folder)
