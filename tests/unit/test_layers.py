"""The house's layers, kept by import-linter's contracts in pyproject.toml: the package keeps
them, and a module that breaks one is named by the checker."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def lint_imports(source_root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env={"PYTHONPATH": str(source_root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_package_keeps_every_contract():
    result = lint_imports(ROOT / "operator", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "operator" / "oomforensics", tmp_path / "src" / "oomforensics")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("analysis/leaky.py", "import httpx\n", "pure core"),
        ("report/leaky.py", "def f() -> None:\n    import kopf\n", "pure core"),
        ("pprof/leaky.py", "from oomforensics.analysis import units\n", "Layers"),
        ("archive/leaky.py", "from oomforensics.capture import client\n", "Layers"),
        ("k8s/leaky.py", "import kubernetes.client\n", "kubernetes client"),
        ("k8s/spec.py", "from oomforensics.capture import client\n", "spec model is pure"),
    ],
)
def test_a_module_that_breaks_a_layer_is_named(package_copy: Path, module, line, contract):
    path = package_copy / "src" / "oomforensics" / module
    path.write_text((path.read_text() if path.exists() else "") + line)
    result = lint_imports(package_copy / "src", package_copy)
    assert result.returncode != 0
    dotted = "oomforensics." + module.removesuffix(".py").replace("/", ".")
    assert dotted in result.stdout
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), result.stdout
