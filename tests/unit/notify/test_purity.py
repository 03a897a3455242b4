"""Notification messages and the ledger are pure (pyproject's import-linter contracts): a
network import there breaks a contract that names the module, and notify sits below k8s."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.unit.test_layers import LINT_IMPORTS, ROOT, lint_imports

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("notify/messages.py", "import httpx\n", "Notification messages and their ledger are pure"),
        ("notify/ledger.py", "import kopf\n", "Notification messages and their ledger are pure"),
        ("notify/delivery.py", "from oomforensics.k8s import spec\n", "Layers"),
        ("notify/messages.py", "from oomforensics.archive import layout\n", "Layers"),
    ],
)
def test_a_notify_module_that_breaks_a_contract_is_named(tmp_path: Path, module, line, contract):
    shutil.copytree(ROOT / "operator" / "oomforensics", tmp_path / "src" / "oomforensics")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "src" / "oomforensics" / module
    path.write_text(path.read_text() + line)
    result = lint_imports(tmp_path / "src", tmp_path)
    assert result.returncode != 0
    assert "oomforensics." + module.removesuffix(".py").replace("/", ".") in result.stdout
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), result.stdout
