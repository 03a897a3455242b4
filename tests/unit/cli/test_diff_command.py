"""`oomforensics diff` as a user runs it: the installed console script, real files."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.profiles import ProfileBuilder

SCRIPT = Path(sys.executable).parent / "oomforensics"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def profile(path: Path, leak_bytes: int) -> Path:
    builder = ProfileBuilder()
    builder.sample([["main.init"], ["main.main"]], 1, 4096, 1, 4096)
    if leak_bytes:
        builder.sample(
            [["bytes.growSlice"], ["bytes.(*Buffer).grow"], ["main.appendAudit"], ["main.main"]],
            10,
            leak_bytes,
            10,
            leak_bytes,
        )
    path.write_bytes(builder.serialize())
    return path


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    return profile(tmp_path / "base.pb.gz", 0), profile(tmp_path / "new.pb.gz", 3 * 2**20)


def test_json_contract(pair):
    result = run("diff", "--json", str(pair[0]), str(pair[1]))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["sampleIndex"] == "inuse_space" and out["unit"] == "bytes"
    assert out["total"] == {"base": 4096, "new": 4096 + 3 * 2**20}
    assert out["functions"][0] == {"name": "bytes.growSlice", "flat": 3 * 2**20, "cum": 3 * 2**20}
    assert {"name": "main.appendAudit", "flat": 0, "cum": 3 * 2**20} in out["functions"]
    # main.main's cum grew; main.init did not change and is not listed.
    assert "main.init" not in {f["name"] for f in out["functions"]}
    assert out["goroutines"] == {"base": None, "new": None, "growth": []}
    for key in ("memory", "suspects", "findings", "verdict", "leakSuspected"):
        assert key in out


def test_top_limits_the_function_list(pair):
    out = json.loads(run("diff", "--json", "--top", "1", str(pair[0]), str(pair[1])).stdout)
    assert [f["name"] for f in out["functions"]] == ["bytes.growSlice"]


def test_human_output_is_a_pprof_style_table(pair):
    result = run("diff", str(pair[0]), str(pair[1]))
    assert result.returncode == 0
    assert "inuse_space: 4kB -> 3MB (+3MB)" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.endswith("bytes.growSlice"))
    # flat, flat% against the base total (pprof's -diff_base semantics), sum%, cum, cum%.
    assert row.split()[:5] == ["3MB", "76800.00%", "76800.00%", "3MB", "76800.00%"]


def test_objects_sample_index(pair):
    out = json.loads(
        run("diff", "--json", "--sample-index", "inuse_objects", str(pair[0]), str(pair[1])).stdout
    )
    assert out["unit"] == "count" and out["functions"][0]["flat"] == 10


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", "got an HTML page"),
        (gzip.compress(bytes(range(256)) * 64)[:200], "truncated gzip"),
        (b"", "empty profile"),
        (b"\x08\x96\x01garbage\xff\xff\xff", "not a pprof profile"),
    ],
    ids=["html", "truncated-gzip", "empty", "garbage"],
)
def test_bad_input_is_one_clear_line(tmp_path, pair, content, message):
    bad = tmp_path / "bad.pb.gz"
    bad.write_bytes(content)
    result = run("diff", str(pair[0]), str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("oomforensics: error: ") and message in lines[0]
    assert str(bad) in lines[0]


def test_missing_file(tmp_path, pair):
    result = run("diff", str(pair[0]), str(tmp_path / "nope.pb.gz"))
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr and "Traceback" not in result.stderr


def test_snapshot_directory_needs_a_heap_profile(tmp_path, pair):
    (tmp_path / "empty-snapshot").mkdir()
    result = run("diff", str(pair[0]), str(tmp_path / "empty-snapshot"))
    assert result.returncode == 1 and "no heap.pb.gz" in result.stderr


def test_bad_heap_text_in_a_snapshot_names_the_file(tmp_path, pair):
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "heap.pb.gz").write_bytes(pair[1].read_bytes())
    (snap / "heap.txt").write_text("<html>oops</html>")
    result = run("diff", str(pair[0]), str(snap))
    assert result.returncode == 1
    assert f"{snap}/heap.txt: not a heap profile" in result.stderr


def test_profiles_of_different_kinds_are_not_compared(tmp_path, pair):
    cpu = tmp_path / "cpu.pb.gz"
    cpu.write_bytes(
        ProfileBuilder(sample_types=[("samples", "count"), ("cpu", "nanoseconds")])
        .sample([["main.main"]], 1, 10_000_000)
        .serialize()
    )
    result = run("diff", str(pair[0]), str(cpu))
    assert result.returncode == 1 and "not comparable" in result.stderr


def test_usage_errors_exit_2():
    result = run("diff", "only-one-file")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_two_cpu_profiles_get_the_table_and_no_memory_analysis(tmp_path):
    paths = []
    for name, busy in (("a", 10_000_000), ("b", 30_000_000)):
        path = tmp_path / f"{name}.pb.gz"
        path.write_bytes(
            ProfileBuilder(sample_types=[("samples", "count"), ("cpu", "nanoseconds")])
            .sample([["main.spin"], ["main.main"]], 1, busy)
            .serialize()
        )
        paths.append(str(path))
    result = run("diff", *paths)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # pprof's default sample index (the builder names cpu, the last type), said as such.
    assert "sample index: cpu (pprof's default: the profile's default sample type)" in lines
    assert any(line.endswith("  main.spin") and "20000000" in line for line in lines)
    assert "verdict" not in result.stdout
    assert lines[-1].startswith("no memory analysis: it reads heap profiles' inuse_space")
    out = json.loads(run("diff", "--json", *paths).stdout)
    assert out["sampleIndex"] == "cpu" and out["sampleIndexSource"] == "default_sample_type"
    assert out["functions"][0] == {"name": "main.spin", "flat": 20_000_000, "cum": 20_000_000}
