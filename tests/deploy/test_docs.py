"""The deployment docs and the README quickstart say only what the code does: every
`oomforensics` flag they show exists, every `--set` names a chart value and passes its schema,
every OOMF_* variable is one the operator reads, and every page they link exists."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from oomforensics.cli.main import build_parser
from oomforensics.k8s import settings as settings_module
from tests.deploy.chart import CHART, render

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"


def quickstart() -> str:
    text = README.read_text()
    start = text.index("## Quickstart on a real cluster")
    return text[start : text.index("\n## ", start + 1)]


def texts() -> dict[str, str]:
    found = {p.name: p.read_text() for p in PAGES}
    found["README quickstart"] = quickstart()
    return found


def code(text: str) -> tuple[list[str], list[str]]:
    """The lines of fenced code blocks (continuations joined), and the inline code spans."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return lines, re.findall(r"`([^`\n]+)`", prose)


def commands(text: str, program: str) -> list[tuple[list[str], bool]]:
    """Commands starting with `program`, as the shell splits them (comments dropped), and
    whether each is a whole command line (a code block) or a mention (inline code)."""
    lines, spans = code(text)
    found = []
    for line, whole in [(line, True) for line in lines] + [(span, False) for span in spans]:
        for match in re.findall(rf"(?:^|[;&|])\s*{program}\s+([^#\n]*)", line):
            found.append((shlex.split(match.split("&&")[0]), whole))
    return found


def test_the_pages_are_there_and_linked() -> None:
    names = {p.name for p in PAGES}
    assert {
        "install.md",
        "triggers.md",
        "archive.md",
        "verdict.md",
        "security.md",
        "troubleshooting.md",
    } <= names
    for link in re.findall(r"\]\((docs/[^)]+)\)", quickstart()):
        assert (ROOT / link).is_file(), link


@pytest.mark.parametrize("name", sorted(texts()))
def test_every_oomforensics_command_parses(name: str) -> None:
    parser = build_parser()
    (subcommands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for words, whole in commands(texts()[name], "oomforensics"):
        if whole:
            try:
                parser.parse_args(words)
            except SystemExit as exc:
                pytest.fail(f"{name}: oomforensics {shlex.join(words)}: refused ({exc})")
        else:  # a mention: its subcommand and flags exist
            assert words[0] in subcommands.choices, f"{name}: oomforensics {words[0]}"
            known = subcommands.choices[words[0]]._option_string_actions
            flags = [w.split("=")[0] for w in words[1:] if re.match(r"-[-a-zA-Z]", w)]
            assert set(flags) <= set(known), f"{name}: oomforensics {shlex.join(words)}"


def values_paths(values: Any, prefix: str = "") -> set[str]:
    paths = set()
    if isinstance(values, dict):
        for key, value in values.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            paths |= values_paths(value, path)
    return paths


@pytest.mark.parametrize("name", sorted(texts()))
def test_every_helm_set_names_a_value_that_passes_the_schema(name: str) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    known = values_paths(defaults)
    maps = {p for p in known if isinstance(_get(defaults, p), dict) and not _get(defaults, p)}
    for words, _ in commands(texts()[name], "helm"):
        sets = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set"]
        overrides: dict[str, Any] = {}
        for item in sets:
            key, _, value = item.partition("=")
            assert key in known or any(key.startswith(f"{m}.") for m in maps), f"{name}: {key}"
            _put(overrides, key, value if value not in ("true", "false") else value == "true")
        if overrides:
            render(overrides)  # the schema accepts them


def _get(values: Any, path: str) -> Any:
    for key in path.split("."):
        values = values[key]
    return values


def _put(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        values = values.setdefault(key, {})
    values[last] = value


def harness_variables() -> set[str]:
    """Variables the set-up scripts and the test harness read (the test cluster's docs name
    them); the operator's own are documented in k8s/settings.py."""
    sources = [p for p in (ROOT / "hack").iterdir() if p.is_file()]
    sources += list((ROOT / "tests" / "support").rglob("*.py"))
    return {v for p in sources for v in re.findall(r"\bOOMF_[A-Z_]+\b", p.read_text())}


@pytest.mark.parametrize("name", sorted(texts()))
def test_every_variable_is_one_the_operator_reads(name: str) -> None:
    documented = set(re.findall(r"^(OOMF_[A-Z_]+)", settings_module.__doc__ or "", re.M))
    mentioned = set(re.findall(r"\bOOMF_[A-Z_]+\b", texts()[name])) - {"OOMF_CACHE"}
    if name == "test-cluster.md":  # the test cluster's own settings
        documented |= harness_variables()
    assert mentioned <= documented, mentioned - documented


@pytest.mark.parametrize("name", sorted(texts()))
def test_every_chart_value_in_backquotes_exists(name: str) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    known = values_paths(defaults)
    roots = {p.split(".")[0] for p in known}
    for path in re.findall(r"`([a-z][A-Za-z]+(?:\.[a-z][A-Za-z]+)+)`", texts()[name]):
        if path.split(".")[0] in roots and path.split(".")[0] not in ("spec", "status"):
            assert path in known, f"{name}: `{path}` is not a chart value"
