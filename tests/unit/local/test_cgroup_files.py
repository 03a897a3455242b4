"""Reading memory cgroups the way the kubelet does, on cgroup v1 and v2 file layouts."""

import pytest

from oomforensics.local.cgroup import MemoryCgroup, own_cgroup, parse_flat_keyed
from oomforensics.quantity import InvalidQuantity, parse_memory

V1_STAT = "cache 1000\nrss 5000\ntotal_rss 7340032\ntotal_inactive_file 1048576\n"
V2_STAT = "anon 7340032\nfile 2097152\ninactive_file 1048576\nactive_file 1048576\n"


def test_v1_working_set_is_usage_minus_inactive_file(tmp_path):
    (tmp_path / "memory.usage_in_bytes").write_text("10485760\n")
    (tmp_path / "memory.stat").write_text(V1_STAT)
    (tmp_path / "memory.limit_in_bytes").write_text("209715200\n")
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    cgroup = MemoryCgroup.at(tmp_path)
    assert cgroup.version == 1
    assert cgroup.working_set() == 10485760 - 1048576
    assert cgroup.rss() == 7340032
    assert cgroup.limit() == 209715200
    assert cgroup.oom_kills() == 2


def test_v2_files(tmp_path):
    (tmp_path / "memory.current").write_text("10485760\n")
    (tmp_path / "memory.stat").write_text(V2_STAT)
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    cgroup = MemoryCgroup.at(tmp_path)
    assert cgroup.version == 2
    assert cgroup.working_set() == 10485760 - 1048576
    assert cgroup.rss() == 7340032
    assert cgroup.limit() is None  # "max": no limit
    assert cgroup.oom_kills() == 1


def test_v1_unlimited_is_no_limit(tmp_path):
    (tmp_path / "memory.usage_in_bytes").write_text("1\n")
    (tmp_path / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert MemoryCgroup.at(tmp_path).limit() is None


def test_working_set_never_negative(tmp_path):
    (tmp_path / "memory.current").write_text("100\n")
    (tmp_path / "memory.stat").write_text("inactive_file 4096\n")
    assert MemoryCgroup.at(tmp_path).working_set() == 0


def test_own_cgroup_from_proc_self_cgroup():
    v1 = "9:name=systemd:/\n4:memory:/process_api/abc\n3:cpuset:/\n0::/\n"
    assert own_cgroup(v1, 1) == "/process_api/abc"
    assert own_cgroup("0::/user.slice/session-1.scope\n", 2) == "/user.slice/session-1.scope"


def test_flat_keyed_skips_junk():
    assert parse_flat_keyed("a 1\nb x\nc 3") == {"a": 1, "c": 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256Mi", 256 * 2**20),
        ("1Gi", 2**30),
        ("500M", 500_000_000),
        ("1.5Gi", 3 * 2**29),
        ("134217728", 134217728),
        ("1k", 1000),
        ("7420Ki", 7420 * 1024),
    ],
)
def test_memory_quantities(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1Mi", "0", "12Q", "Mi", "5ki", "5mi"])
def test_bad_quantities_say_what_is_expected(text):
    with pytest.raises(InvalidQuantity):
        parse_memory(text)
