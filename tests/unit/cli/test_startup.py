"""Start-up: a command imports what it uses and nothing else; output into a closed pipe."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from oomforensics.cli.main import COMMANDS, build_parser
from tests.support.profiles import ProfileBuilder, heap_profile

SCRIPT = Path(sys.executable).parent / "oomforensics"
EDGE_LIBRARIES = ("kopf", "kubernetes", "httpx", "obstore")

_PROBE = """
import json, sys
from oomforensics.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
"""


def imported_by(*argv: str, libraries: tuple[str, ...] = EDGE_LIBRARIES) -> dict[str, object]:
    """Run `oomforensics ARGV` in a fresh interpreter; its exit code and which libraries loaded."""
    probe = _PROBE % (libraries,)
    result = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return report


def test_diff_imports_no_kubernetes_or_network_library(tmp_path: Path) -> None:
    base, new = heap_profile(tmp_path / "a.pb.gz", 0), heap_profile(tmp_path / "b.pb.gz", 1 << 20)
    for argv in (["diff", str(base), str(new)], ["diff", "--json", str(base), str(new)]):
        assert imported_by(*argv) == {"code": 0, "loaded": []}


def test_diff_of_well_formed_profiles_does_without_protobuf(tmp_path: Path) -> None:
    # The C kernels split the profile's top level: protobuf (20 ms to import) is for what
    # they leave to upb.
    base, new = heap_profile(tmp_path / "a.pb.gz", 0), heap_profile(tmp_path / "b.pb.gz", 1 << 20)
    probe = ("google.protobuf", "google.protobuf.message")
    report = imported_by("diff", "--json", str(base), str(new), libraries=probe)
    assert report == {"code": 0, "loaded": []}


def test_version_and_help_import_no_command() -> None:
    assert imported_by("--version") == {"code": 0, "loaded": []}
    assert imported_by("--help") == {"code": 0, "loaded": []}


def test_fetch_still_gets_its_libraries() -> None:
    # The lazy dispatch must hand a command its real parser, imports included.
    report = imported_by("fetch", "--help")
    assert report["code"] == 0 and "kopf" in report["loaded"]  # type: ignore[operator]


def test_command_list_matches_the_commands_own_parsers() -> None:
    full = build_parser()
    (sub,) = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {action.dest: action.help for action in sub._choices_actions}
    assert helps == {name: help_line for name, (_, help_line) in COMMANDS.items()}


def test_help_texts_have_no_literal_percent_escapes() -> None:
    full = build_parser()
    (sub,) = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    for name, parser in sub.choices.items():
        assert "%%" not in parser.format_help(), name


def test_diff_imports_neither_the_text_output_nor_shutil_for_json(tmp_path: Path) -> None:
    # The text renderer is for text output; shutil (and its compression modules) is what
    # argparse imports to find the terminal's width, which the CLI's formatter finds itself.
    base, new = heap_profile(tmp_path / "a.pb.gz", 0), heap_profile(tmp_path / "b.pb.gz", 1 << 20)
    probe = ("shutil", "oomforensics.cli.render", "oomforensics.pprof.heaptext")
    report = imported_by("diff", "--json", str(base), str(new), libraries=probe)
    assert report == {"code": 0, "loaded": []}
    assert imported_by("--version", libraries=probe) == {"code": 0, "loaded": []}
    text = imported_by("diff", str(base), str(new), libraries=probe)
    assert text["loaded"] == ["oomforensics.cli.render"]  # what text output needs, only


def test_help_is_wrapped_as_argparse_wraps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for columns in ("52", "130", "", "0", "wide"):  # set, unset or unusable, as shutil reads it
        monkeypatch.setenv("COLUMNS", columns)
        parser = build_parser(["diff"])
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        diff_parser = sub.choices["diff"]
        assert diff_parser.formatter_class is not argparse.HelpFormatter
        ours = diff_parser.format_help()
        diff_parser.formatter_class = argparse.HelpFormatter  # sized through shutil
        assert ours == diff_parser.format_help(), columns
    assert max(map(len, ours.splitlines())) <= 80 - 2
    monkeypatch.setenv("COLUMNS", "52")
    assert max(map(len, build_parser(["diff"]).format_help().splitlines())) <= 52 - 2


def wide_profile(path: Path, functions: int) -> Path:
    builder = ProfileBuilder()
    for i in range(functions):
        builder.sample([[f"main.grow{i:05d}"], ["main.main"]], 1, 4096 * (i + 1), 1, 4096 * (i + 1))
    path.write_bytes(builder.serialize())
    return path


def test_diff_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    base = heap_profile(tmp_path / "a.pb.gz", 0)
    new = wide_profile(tmp_path / "b.pb.gz", 3000)  # ~250 KB of table: more than a pipe holds
    # `| head -1`: the reader closes after one line, long before the output ends.
    command = f"{SCRIPT} diff --top 3000 {base} {new} | head -1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("base: ")
    assert result.stderr == ""
    assert result.returncode == 0


def test_the_console_script_ends_a_diff_with_all_its_output_and_its_code(tmp_path: Path) -> None:
    # `diff` ends its process without the interpreter's teardown: what it printed must all be
    # out (more than any buffer holds), and its exit code must be main's.
    base = heap_profile(tmp_path / "a.pb.gz", 0)
    new = wide_profile(tmp_path / "b.pb.gz", 3000)
    done = subprocess.run(
        [str(SCRIPT), "diff", "--json", str(base), str(new)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    names = {row["name"] for row in json.loads(done.stdout)["functions"]}
    assert {f"main.grow{i:05d}" for i in range(3000)} <= names
    missing = subprocess.run(
        [str(SCRIPT), "diff", str(base), str(tmp_path / "missing.pb.gz")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("oomforensics: error: ")
    assert "missing.pb.gz" in missing.stderr


def test_the_console_script_module_leaves_argparse_for_later() -> None:
    # A diff starts reading its profiles in entry(), before the parser (and argparse, 10 ms
    # of imports) is built.
    probe = "import sys, oomforensics.cli.main; print('argparse' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
