"""After a real OOM kill, an engineer asks the CLI: which investigations, which snapshots, and
"give me the baseline and the last snapshot before the kill" — verified, resumable, with the
pprof command that compares them, even after the custom resource is gone.

One scenario for the module: the classic leak (response bodies of 403s never closed) runs as
a pod with a memory limit on the test cluster, the operator archives snapshots into S3 (moto)
with credentials from a Secret until the kernel OOM-kills the container; then the operator
stops and every test runs the installed `oomforensics` (or `kubectl oomforensics`) as a
user would, with the front's kubeconfig.
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
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest
from obstore.store import S3Store

from tests.e2e.operator_harness import (
    MI,
    PODS,
    apply_crd,
    operator_environment,
    poll,
    running_operator,
)
from tests.support.apiserver import KUBECTL_BIN, kubectl_present
from tests.support.cluster import ClusterFront, Kubelet, cgroups_available
from tests.support.cluster.front import optional_apiserver
from tests.support.cluster.pods import leaky_pod
from tests.support.leaky import FIXTURE_BIN
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.gotool, pytest.mark.timeout(420)]
ARTIFACTS = Path(os.environ.get("OOMF_E2E_ARTIFACTS", "/tmp/oomf-e2e"))
BIN = Path(sys.executable).parent
OOMFORENSICS = BIN / "oomforensics"
NAME = "checkout-oom"
SECRETS = "/api/v1/namespaces/default/secrets"
SUMMARY = re.compile(
    r"fetched (\d+) snapshot\(s\) into .*: (\d+) file\(s\) downloaded \(([^)]*)\), "
    r"(\d+) already present and verified"
)


@dataclass
class Scenario:
    front: ClusterFront
    s3: MotoServer
    url: str  # the investigation's own archive (spec.storage.url)
    default_url: str  # the operator's default archive (OOMF_STORAGE_URL)
    status: dict[str, Any]
    workdir: Path

    def env(self, *, aws: bool = False) -> dict[str, str]:
        """A user's shell: their kubeconfig; storage credentials only when asked for."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OOMF_"))}
        env["KUBECONFIG"] = str(self.front.kubeconfig)
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


async def _run_until_oom(front: ClusterFront, s3: MotoServer, url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
        await apply_crd(http)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "checkout-s3", "namespace": "default"},
            "stringData": dict(s3.credentials),
        }
        assert (await http.post(SECRETS, json=secret)).status_code == 201
        pod = leaky_pod(
            "checkout", "tls403", labels={"app": "checkout"}, memory_limit="160Mi", rate=60
        )
        assert (await http.post(PODS, json=pod)).status_code == 201
        investigation = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": NAME, "namespace": "default"},
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
        created = await http.post(MI, json=investigation)
        assert created.status_code == 201, created.text
        async with running_operator() as operator:

            async def told() -> dict[str, Any] | None:
                body: dict[str, Any] = (await http.get(f"{MI}/{NAME}")).json()
                status = body.get("status") or {}
                summary = status.get("summary") or {}
                done = status.get("oomKills") and summary.get("leakSuspected")
                return status if done else None

            return await poll(told, 300, "the OOM kill and a summary suspecting the leak", operator)


@pytest.fixture(scope="module")
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    upstream = optional_apiserver(request)
    if upstream is None:
        pytest.skip("the real API server is not built (hack/): custom resources need it")
    if not FIXTURE_BIN.is_file():
        pytest.skip(f"{FIXTURE_BIN} is not built (hack/build-go-fixtures.sh)")
    reason = cgroups_available()
    if reason is not None:
        pytest.skip(f"the test kubelet needs memory cgroups: {reason}")
    workdir = tmp_path_factory.mktemp("cli")
    with (
        MotoServer() as s3,
        ClusterFront(upstream) as front,
        Kubelet(front, metrics_interval=0.5, backoff_initial=1.0, backoff_max=10.0),
        pytest.MonkeyPatch.context() as monkeypatch,
    ):
        default_url = operator_environment(monkeypatch, front, s3, "e2e-cli-default", workdir)
        url = s3.archive_url("e2e-cli")
        status = asyncio.run(_run_until_oom(front, s3, url))
        (workdir / "status.json").write_text(json.dumps(status, indent=2))
        yield Scenario(front, s3, url, default_url, status, workdir)


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
    result = scenario.cli("list")
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
    assert any(line.split()[:2] == ["default", NAME] for line in everywhere.stdout.splitlines())


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
    assert lines[0][:4] == ["TIME", "REASON", "%", "OF"]
    snapshots = lines[1:]
    assert snapshots[0][2] == "baseline"
    assert all(re.fullmatch(r"\d+\.\d%", s[3]) for s in snapshots), snapshots
    # The last snapshot of the run is the one the status calls pre-OOM, near the limit.
    assert snapshots[-1][-1] == "pre-OOM"
    assert kill["preOomSnapshot"].rstrip("/").endswith(snapshots[-1][2])
    assert float(snapshots[-1][3].rstrip("%")) >= 80
    assert sum(s[-1] == "pre-OOM" for s in snapshots) == 1


def test_fetch_the_oom_kill_then_compare_with_go_tool_pprof(scenario: Scenario) -> None:
    out = scenario.workdir / "oom0"
    result = scenario.cli("fetch", f"default/{NAME}", "--oom", "0", "--out", str(out))
    keep("cli-fetch.txt", result)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no terminal: no progress line
    snapshots, downloaded, present = summary_of(result.stdout)
    assert snapshots >= 2 and downloaded >= 2 * 2 and present == 0
    kill = scenario.status["oomKills"][0]
    run0 = out / "default" / NAME / "checkout" / kill["uid"] / "app" / "run-0"
    fetched = sorted(p.name for p in run0.iterdir() if p.is_dir())
    assert len(fetched) == snapshots
    # how the run ended comes along, for the report's OOM marker
    assert json.loads((run0 / "oom.json").read_text())["preOomSnapshot"] == kill["preOomSnapshot"]
    assert fetched[0].endswith("-baseline")
    where = f"default/{NAME}/checkout/{kill['uid']}/app/run-0"
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
    args = ("fetch", f"default/{NAME}", "--oom", "0", "--out", str(out))
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
            [str(OOMFORENSICS), "fetch", f"default/{NAME}", "--out", str(scenario.workdir / "tty")],
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
    missing = scenario.cli("fetch", "default/nothing-here")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "oomforensics: error: no MemoryInvestigation default/nothing-here "
        "(kubectl get memoryinvestigations.oomforensics.io -n default)"
    ]

    bad = scenario.cli("fetch", "default/Not_A_Name")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1
    assert "expected NAMESPACE/NAME" in bad.stderr

    http = httpx.Client(base_url=scenario.front.url, timeout=30)
    spec = {"selector": {"matchLabels": {"app": "orders"}}, "endpoint": {"port": 6060}}
    for name, storage in (
        ("orders", None),
        ("ledger", {"url": scenario.url, "secretRef": {"name": "ledger-s3"}}),
    ):
        body = {
            "apiVersion": "oomforensics.io/v1alpha1",
            "kind": "MemoryInvestigation",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {**spec, **({"storage": storage} if storage else {})},
        }
        assert http.post(MI, json=body).status_code == 201

    # The operator's default storage is in its environment, not the user's: say what to do.
    default = scenario.cli("fetch", "default/orders")
    assert default.returncode == 1 and len(default.stderr.splitlines()) == 1
    assert "operator's default storage" in default.stderr and "--archive" in default.stderr

    # Once the operator has recorded the archive URL, the user's environment does the rest.
    patch = {"status": {"archive": scenario.default_url}}
    assert http.patch(
        f"{MI}/orders/status",
        json=patch,
        headers={"Content-Type": "application/merge-patch+json"},
    ).is_success
    empty = scenario.cli("fetch", "default/orders", "--option", scenario.endpoint, aws=True)
    assert empty.returncode == 1, empty.stdout
    assert empty.stderr.strip() == (
        f"oomforensics: error: no snapshots yet of default/orders in {scenario.default_url}"
    )

    bucket = scenario.cli(
        "fetch",
        "--archive",
        "s3://no-such-bucket/x",
        "--path",
        "default/orders",
        "--option",
        scenario.endpoint,
        aws=True,
    )
    assert bucket.returncode == 1 and len(bucket.stderr.splitlines()) == 1, bucket.stderr
    assert "no-such-bucket" in bucket.stderr and "404" in bucket.stderr

    secret = scenario.cli("fetch", "default/ledger")
    assert secret.returncode == 1 and len(secret.stderr.splitlines()) == 1
    assert "Secret default/ledger-s3" in secret.stderr and "does not exist" in secret.stderr
    http.close()


def test_kubectl_plugin_lists_the_investigations(scenario: Scenario) -> None:
    kubectl = str(KUBECTL_BIN) if kubectl_present() else shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (hack/get-kubectl.sh)")
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
    assert f"investigation default/{NAME}" in result.stdout
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
        result = scenario.cli("fetch", f"default/{NAME}", "--oom", "0", "--out", str(out))
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
        [str(OOMFORENSICS), "report", f"default/{NAME}", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fetched" in result.stderr and f"wrote {out}" in result.stdout
    fetched = scenario.workdir / "cache" / "fetched" / "default" / NAME
    uid = scenario.status["oomKills"][0]["uid"]
    assert (fetched / "checkout" / uid / "app" / "run-0" / "oom.json").is_file()
    page = out.read_text()
    assert page.count('class="end oom-kill"') == len(scenario.status["oomKills"])
    assert "main.fetchReport" in page


def test_fetch_from_the_archive_alone_after_the_investigation_is_deleted(
    scenario: Scenario,
) -> None:
    with httpx.Client(base_url=scenario.front.url, timeout=30) as http:
        # The operator is stopped: take its finalizer off, as it would on deletion.
        http.patch(
            f"{MI}/{NAME}",
            json={"metadata": {"finalizers": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
        assert http.delete(f"{MI}/{NAME}").is_success
        assert http.get(f"{MI}/{NAME}").status_code == 404
    gone = scenario.cli("fetch", f"default/{NAME}", "--oom", "0")
    assert gone.returncode == 1 and "no MemoryInvestigation" in gone.stderr

    out = scenario.workdir / "archive-only"
    args = ("fetch", "--archive", scenario.url, "--option", scenario.endpoint)
    args += ("--path", f"default/{NAME}", "--oom", "-1", "--last", "1", "--out", str(out))
    result = scenario.cli(*args, aws=True)
    assert result.returncode == 0, result.stderr
    snapshots, _, _ = summary_of(result.stdout)
    pre = scenario.status["oomKills"][-1]["preOomSnapshot"]
    uid = scenario.status["oomKills"][-1]["uid"]
    run = out / "default" / NAME / "checkout" / uid / "app" / "run-0"
    names = sorted(p.name for p in run.iterdir() if p.is_dir())
    assert (run / "oom.json").is_file()
    assert snapshots == 2 and len(names) == 2  # --last 1: the pre-OOM one and the baseline
    assert names[0].endswith("-baseline") and pre.endswith(f"/{names[1]}/")
    assert "baseline vs pre-OOM" in result.stdout  # the kill read from the archive's oom.json
    for folder in run.iterdir():
        if folder.is_dir():
            assert_verified(folder)
