"""`diff` inflates its gzipped profiles in a thread while it imports: the snapshots are
those read the ordinary way, and whatever does not inflate cleanly is read (and reported)
the ordinary way."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomforensics.cli import prefetch
from oomforensics.cli.errors import UsageError
from oomforensics.cli.files import load_snapshot
from oomforensics.pprof.compression import DEFAULT_MAX_DECOMPRESSED
from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge
from oomforensics.pprof.legacy import read_profile
from tests.support.profiles import heap_profile


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    prefetch.finish()
    prefetch._inflated.clear()
    yield
    prefetch.finish()
    prefetch._inflated.clear()


def test_a_profile_is_inflated_ahead_and_decodes_as_read_from_disk(tmp_path: Path) -> None:
    path = heap_profile(tmp_path / "new.pb.gz", 1 << 20)
    prefetch.start(["--json", "--top", "5", str(path)])
    assert prefetch.take(path, DEFAULT_MAX_DECOMPRESSED) == gzip.decompress(path.read_bytes())
    assert threading.active_count() == 1  # joined: the diff may fork

    prefetch.start([str(path)])
    ahead = load_snapshot(path)  # takes the inflated bytes
    assert prefetch._inflated == {}
    assert ahead.profile == load_snapshot(path).profile  # read from disk this time


def test_a_snapshot_directory_has_its_heap_profile_inflated(tmp_path: Path) -> None:
    heap_profile(tmp_path / "heap.pb.gz", 0)
    prefetch.start([str(tmp_path)])
    prefetch.finish()
    assert list(prefetch._inflated) == [(tmp_path / "heap.pb.gz").absolute()]


def test_a_file_changed_since_is_read_again(tmp_path: Path) -> None:
    path = heap_profile(tmp_path / "new.pb.gz", 0)
    prefetch.start([str(path)])
    prefetch.finish()
    heap_profile(path, 1 << 20)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert prefetch.take(path, DEFAULT_MAX_DECOMPRESSED) is None
    assert load_snapshot(path).profile.samples.values[0, 1] == 4096 + (1 << 20)


def test_more_than_the_cap_allows_is_read_the_ordinary_way(tmp_path: Path) -> None:
    path = heap_profile(tmp_path / "new.pb.gz", 0)
    prefetch.start([str(path)])
    assert prefetch.take(path, 10) is None


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (gzip.compress(b"\x08\x96\x01garbage")[:-6], InvalidProfile, "truncated gzip"),
        (b"\x1f\x8b" + b"\x00" * 30, InvalidProfile, "corrupt gzip"),
        (gzip.compress(gzip.compress(b"")), InvalidProfile, "empty profile"),
    ],
    ids=["truncated", "corrupt", "gzip twice"],
)
def test_what_does_not_inflate_cleanly_fails_as_it_always_did(
    tmp_path: Path, content: bytes, error: type[Exception], message: str
) -> None:
    path = tmp_path / "bad.pb.gz"
    path.write_bytes(content)
    prefetch.start([str(path)])
    prefetch.finish()
    assert prefetch._inflated == {}
    with pytest.raises(error, match=message):
        load_snapshot(path)


def test_a_gzip_bomb_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.pb.gz"
    path.write_bytes(gzip.compress(b"\x00" * (1 << 20)))
    monkeypatch.setattr("oomforensics.pprof.compression.DEFAULT_MAX_DECOMPRESSED", 1 << 16)
    prefetch.start([str(path)])
    prefetch.finish()
    assert prefetch._inflated == {}
    with pytest.raises(ProfileTooLarge):
        read_profile(path.read_bytes(), 1 << 16)


def test_words_that_name_no_file_start_nothing(tmp_path: Path) -> None:
    prefetch.start(["--json", "inuse_space", str(tmp_path / "missing.pb.gz"), ""])
    assert prefetch._thread is None
    with pytest.raises(UsageError, match="no such file"):
        load_snapshot(tmp_path / "missing.pb.gz")


def test_the_console_script_diff_reads_prefetched_profiles(tmp_path: Path) -> None:
    # The console script prefetches; its JSON is that of main() in a fresh interpreter,
    # which does not.
    base = heap_profile(tmp_path / "a.pb.gz", 0)
    new = heap_profile(tmp_path / "b.pb.gz", 1 << 20)
    script = Path(sys.executable).parent / "oomforensics"
    argv = ["diff", "--json", str(base), str(new)]
    scripted = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=60)
    plain = subprocess.run(
        [sys.executable, "-c", "import sys; from oomforensics.cli.main import main; main()", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scripted.returncode == plain.returncode == 0, scripted.stderr + plain.stderr
    assert scripted.stdout == plain.stdout
    assert '"suspects"' in scripted.stdout
