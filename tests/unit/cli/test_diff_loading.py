"""`diff` reads its snapshots side by side (the last one in a forked child): the same
snapshots, and the same first error, as reading them one after the other."""

import os
import select
from pathlib import Path

import pytest

from oomforensics.analysis import frames
from oomforensics.analysis.snapshot import Snapshot
from oomforensics.cli import diff
from oomforensics.cli.diff import load_snapshots
from oomforensics.cli.files import load_snapshot
from oomforensics.pprof.errors import InvalidProfile
from tests.support.profiles import ProfileBuilder


def profile(path: Path, leak: int) -> Path:
    builder = ProfileBuilder()
    builder.sample([["main.init"], ["main.main"]], 1, 4096, 1, 4096)
    builder.sample([["bytes.growSlice"], ["main.leak"], ["main.main"]], 3, leak, 3, leak)
    path.write_bytes(builder.serialize())
    return path


def force_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child even for small profiles, whatever the machine's load."""
    monkeypatch.setattr(diff, "_CHILD_FROM", 0)
    monkeypatch.setattr(diff, "_idle_core", lambda: True)


def test_the_snapshots_equal_those_read_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [profile(tmp_path / f"{i}.pb.gz", 4096 * (i + 1)) for i in range(3)]
    read_here: list[Path] = []

    def recorded(path: Path) -> Snapshot:
        read_here.append(path)  # in the child, this list is the child's copy
        return load_snapshot(path)

    monkeypatch.setattr(diff, "load_snapshot", recorded)
    force_child(monkeypatch)
    together = load_snapshots(paths)
    assert read_here == paths[:-1]  # the last one came from the child, not read again here
    alone = [load_snapshot(path) for path in paths]
    assert [s.source for s in together] == [str(p) for p in paths]
    assert [s.profile for s in together] == [s.profile for s in alone]
    # What the child computed beforehand came back with the profile.
    assert "function table 3" in together[-1].profile.samples.memo
    # Meanwhile this process hashed the base's stacks for the joint index.
    assert "stack hashes 128" in together[0].profile.samples.memo
    assert "stack hashes 128" not in alone[0].profile.samples.memo


def test_a_bad_new_profile_raises_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_child(monkeypatch)
    base = profile(tmp_path / "base.pb.gz", 4096)
    bad = tmp_path / "bad.pb.gz"
    bad.write_bytes(b"<html>forbidden</html>")
    with pytest.raises(InvalidProfile, match="got an HTML page") as raised:
        load_snapshots([base, bad])
    assert str(bad) in str(raised.value)


def test_the_first_bad_path_in_order_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    force_child(monkeypatch)
    first, second = tmp_path / "first.pb.gz", tmp_path / "second.pb.gz"
    first.write_bytes(b"\x08\x96\x01garbage\xff\xff\xff")
    second.write_bytes(b"<html>forbidden</html>")
    with pytest.raises(InvalidProfile, match="not a pprof profile") as raised:
        load_snapshots([first, second])
    assert str(first) in str(raised.value)


def no_fork() -> int:
    raise AssertionError("forked")


def test_small_profiles_are_read_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [profile(tmp_path / f"{i}.pb.gz", 4096 * (i + 1)) for i in range(2)]
    monkeypatch.setattr(diff, "_idle_core", lambda: True)
    monkeypatch.setattr(os, "fork", no_fork)
    assert [s.source for s in load_snapshots(paths)] == [str(p) for p in paths]


def test_no_child_on_a_busy_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [profile(tmp_path / f"{i}.pb.gz", 4096 * (i + 1)) for i in range(2)]
    monkeypatch.setattr(diff, "_CHILD_FROM", 0)
    monkeypatch.setattr(diff, "_runnable_now", lambda: 64)  # tasks runnable now
    monkeypatch.setattr(os, "fork", no_fork)
    assert [s.source for s in load_snapshots(paths)] == [str(p) for p in paths]


def test_a_core_is_idle_by_what_runs_now_not_by_the_minutes_average(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.2, 0.8))  # just after a busy spell
    monkeypatch.setattr(diff, "_runnable_now", lambda: 1)  # this process alone
    assert diff._idle_core()
    monkeypatch.setattr(diff, "_runnable_now", lambda: 2)
    assert not diff._idle_core()
    # Where the count is not known, the average decides.
    monkeypatch.setattr(diff, "_runnable_now", lambda: None)
    assert not diff._idle_core()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.4, 1.2, 0.8))
    assert diff._idle_core()


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="Linux's /proc/loadavg")
def test_the_runnable_count_includes_this_process() -> None:
    running = diff._runnable_now()
    assert running is not None and running >= 1


def test_a_snapshot_too_large_to_hand_over_is_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [profile(tmp_path / f"{i}.pb.gz", 4096 * (i + 1)) for i in range(2)]
    read_here: list[Path] = []

    def recorded(path: Path) -> Snapshot:
        read_here.append(path)
        return load_snapshot(path)

    monkeypatch.setattr(diff, "load_snapshot", recorded)
    monkeypatch.setattr(diff, "_SHARED_BYTES", 64)  # no room for the child's pickle
    force_child(monkeypatch)
    together = load_snapshots(paths)
    assert read_here == paths  # the base here, then the new one again after the child
    assert [s.profile for s in together] == [load_snapshot(p).profile for p in paths]


def test_a_garbled_hand_over_is_read_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The child's pickle refers to buffers it never wrote: the parent reads the path again.
    paths = [profile(tmp_path / f"{i}.pb.gz", 4096 * (i + 1)) for i in range(2)]
    monkeypatch.setattr(diff, "_decode_for_parent", garbled_hand_over)
    force_child(monkeypatch)
    together = load_snapshots(paths)
    assert [s.profile for s in together] == [load_snapshot(p).profile for p in paths]


def garbled_hand_over(path: Path, shared: object) -> None:  # pragma: no cover - in the child
    import mmap
    import pickle

    assert isinstance(shared, mmap.mmap)
    header = pickle.dumps((b"not a pickle", [(64, 8)]))
    shared[64 : 64 + len(header)] = header
    shared[:16] = (64).to_bytes(8, "little") + len(header).to_bytes(8, "little")
    os._exit(0)


def test_the_base_names_are_classified_while_the_child_decodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child decodes only once the parent has classified a slice of the base's names: the
    # parent does that while the child is at work, then waits for it (and reads its result).
    paths = [profile(tmp_path / f"{i}.pb.gz", 4096 * (i + 1)) for i in range(2)]
    go_on, wait = os.pipe()[::-1]
    classified: list[tuple[str, ...]] = []

    def classify(names: tuple[str, ...]) -> None:
        classified.append(tuple(names))
        os.write(go_on, b"x")

    def decode_when_told(path: Path, shared: object) -> None:  # pragma: no cover - the child
        select.select([wait], [], [], 60)  # bounded: without the parent's word, go on
        real_decode(path, shared)

    real_decode = diff._decode_for_parent
    monkeypatch.setattr(frames, "classify", classify)
    monkeypatch.setattr(diff, "_decode_for_parent", decode_when_told)
    force_child(monkeypatch)
    together = load_snapshots(paths)
    assert classified == [together[0].profile.samples.names]
    assert [s.profile for s in together] == [load_snapshot(p).profile for p in paths]
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the child was waited for, once
