"""`oomforensics diff` on bare profile files of every kind pprof diffs, as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.profiles import ProfileBuilder

SCRIPT = Path(sys.executable).parent / "oomforensics"
GENERIC = "crypto/internal/fips140/hmac.New[go.shape.interface { BlockSize() int; Reset() }]"
SHOWN = "crypto/internal/fips140/hmac.New[go.shape.interface { BlockSize int; Reset }]"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def heap(path: Path, leak: int, default: str = "") -> Path:
    builder = ProfileBuilder()
    builder.sample([[GENERIC], ["main.handshake"], ["main.main"]], 1, 64 + leak, 1, 64 + leak)
    builder._message.default_sample_type = builder._s(default)
    path.write_bytes(builder.serialize())
    return path


def test_generic_names_are_pprofs_with_the_full_name_beside_them_in_json(tmp_path: Path) -> None:
    base, new = heap(tmp_path / "a.pb.gz", 0), heap(tmp_path / "b.pb.gz", 4096)
    out = json.loads(run("diff", "--json", str(base), str(new)).stdout)
    assert out["functions"][0] == {"name": SHOWN, "flat": 4096, "cum": 4096, "fullName": GENERIC}
    assert "fullName" not in out["functions"][1]  # main.handshake: nothing shortened
    text = run("diff", str(base), str(new)).stdout
    assert f"  {SHOWN}" in text and GENERIC not in text


def test_the_default_sample_index_is_pprofs_and_is_said(tmp_path: Path) -> None:
    base = heap(tmp_path / "a.pb.gz", 0, default="alloc_space")
    new = heap(tmp_path / "b.pb.gz", 4096)
    result = run("diff", str(base), str(new))
    assert result.returncode == 0, result.stderr
    assert "sample index: alloc_space (pprof's default: the profile's default sample type)" in (
        result.stdout.splitlines()
    )
    out = json.loads(
        run("diff", "--json", "--sample-index", "inuse_space", str(base), str(new)).stdout
    )
    assert (out["sampleIndex"], out["sampleIndexSource"]) == ("inuse_space", "requested")


def test_bare_profiles_get_no_empty_memory_table(tmp_path: Path) -> None:
    base, new = heap(tmp_path / "a.pb.gz", 0), heap(tmp_path / "b.pb.gz", 4096)
    lines = run("diff", str(base), str(new)).stdout.splitlines()
    assert "memory: no MemStats (heap.txt, heap?debug=1) in the snapshots" in lines
    assert not any(line.split()[:4] == ["memory", "base", "new", "delta"] for line in lines)


def test_a_heap_profile_of_one_type_gets_its_table(tmp_path: Path) -> None:
    # Pyroscope keeps inuse_space alone: the table is pprof's, the memory analysis is not run.
    paths = []
    for name, size in (("a", 100), ("b", 300)):
        builder = ProfileBuilder(sample_types=[("inuse_space", "bytes")])
        builder.sample([["main.cache"], ["main.main"]], size)
        (tmp_path / name).write_bytes(builder.serialize())
        paths.append(str(tmp_path / name))
    result = run("diff", "--json", *paths)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["functions"][0] == {"name": "main.cache", "flat": 200, "cum": 200}
    assert out["analysis"].startswith("no memory analysis")
