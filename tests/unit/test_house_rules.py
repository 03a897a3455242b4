"""The house rule: pprof/, analysis/ and triggers/ are pure. They import no network or
Kubernetes library, so they can be tested without servers and reused anywhere."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "oomforensics"
PURE = ["pprof", "analysis", "triggers", "report"]
FORBIDDEN = {"kopf", "kubernetes", "httpx", "obstore", "aiohttp", "urllib", "socket", "requests"}
# The pure core may not reach the edges either.
FORBIDDEN_INTERNAL = (
    "oomforensics.cli",
    "oomforensics.capture",
    "oomforensics.archive",
    "oomforensics.k8s",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):  # walks function bodies too: lazy imports count
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def pure_sources() -> list[Path]:
    return [p for pkg in PURE if (PACKAGE / pkg).is_dir() for p in (PACKAGE / pkg).rglob("*.py")]


def test_there_is_pure_code_to_check():
    assert len(pure_sources()) >= 5


@pytest.mark.parametrize("path", pure_sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_packages_import_no_network_or_kubernetes_library(path):
    bad = sorted(
        name
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN or name.startswith(FORBIDDEN_INTERNAL)
    )
    assert not bad, f"{path.name} imports {bad}: keep I/O at the edges (capture, archive, k8s, cli)"


def test_the_checker_sees_lazy_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import httpx\n    from kopf import on\n")
    assert imported_modules(sample) == {"httpx", "kopf"}
