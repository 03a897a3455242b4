"""Pod images of our own Go fixtures for the test cluster's node: each fixture under
tests/fixtures/go/<name> built static (CGO_ENABLED=0: an image holds the one binary and no
libc) into the cache, then `hack/cluster image` makes it the image `oomforensics.test/<name>:v1`
in the node's containerd. Pods use it with `imagePullPolicy: Never` (no registry here)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.support.kube.cluster import CACHE_DIR, ROOT, KubeCluster

FIXTURES = ROOT / "tests" / "fixtures" / "go"
STATIC_BIN = CACHE_DIR / "kube" / "fixtures"
REGISTRY = "oomforensics.test"


def image_name(fixture: str) -> str:
    return f"{REGISTRY}/{fixture}:v1"


def _sources_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum", ".env"):
            digest.update(str(path.relative_to(directory)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def static_fixture(fixture: str) -> Path:
    """The fixture's static binary, rebuilt when its sources changed."""
    source = FIXTURES / fixture
    if not (source / "go.mod").is_file():
        raise RuntimeError(f"no Go fixture named {fixture!r} under {FIXTURES}")
    STATIC_BIN.mkdir(parents=True, exist_ok=True)
    binary = STATIC_BIN / fixture
    stamp = STATIC_BIN / f"{fixture}.stamp"
    want = _sources_digest(source)
    if binary.is_file() and stamp.is_file() and stamp.read_text() == want:
        return binary
    environment = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GOCACHE": str(CACHE_DIR / "go-build"),
        "GOPATH": str(CACHE_DIR / "gopath"),
    }
    env_file = source / "build.env"  # e.g. GOEXPERIMENT=..., as hack/build-go-fixtures.sh reads
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if line.strip() and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                environment[key.strip()] = value.strip()
    result = subprocess.run(
        ["go", "build", "-trimpath", "-o", str(binary) + ".tmp", "."],
        cwd=source,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the static {fixture} fixture failed:\n{result.stderr}")
    Path(str(binary) + ".tmp").replace(binary)
    stamp.write_text(want)
    return binary


def fixture_image(kube: KubeCluster, fixture: str) -> str:
    """Build (if needed) and import the fixture's image; return its name."""
    name = image_name(fixture)
    kube.image(name, static_fixture(fixture))
    return name
