"""Memory cgroups, as the kubelet and the kernel see a container.

A child memory cgroup with a limit is a container's memory boundary: the kernel SIGKILLs a
process that exceeds it (exit 137) and counts the kill. The working set is what the kubelet
reports and evicts on: usage minus inactive file pages. Both cgroup v1 (memory controller
hierarchy) and v2 (unified hierarchy) are supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from oomforensics.errors import OomForensicsError

CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupError(OomForensicsError):
    """A memory cgroup cannot be created or read; the message says why."""


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, memory.events, memory.oom_control) as a dict."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value)
        except ValueError:
            continue
    return values


def own_cgroup(proc_cgroup: str, version: int) -> str:
    """This process's cgroup path from /proc/self/cgroup, for the memory controller."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if version == 2 and controllers == "":
            return path
        if version == 1 and "memory" in controllers.split(","):
            return path
    raise CgroupError(f"no {'unified' if version == 2 else 'memory'} cgroup in /proc/self/cgroup")


def detect_version(root: Path = CGROUP_ROOT) -> int:
    if (root / "cgroup.controllers").exists():
        return 2
    if (root / "memory").is_dir():
        return 1
    raise CgroupError(f"no memory cgroup hierarchy under {root}")


@dataclass(frozen=True, slots=True)
class MemoryCgroup:
    path: Path
    version: int

    @classmethod
    def at(cls, path: Path) -> MemoryCgroup:
        """An existing cgroup directory (v1 memory controller or v2)."""
        version = 2 if (path / "memory.current").exists() else 1
        if version == 1 and not (path / "memory.usage_in_bytes").exists():
            raise CgroupError(f"{path} is not a memory cgroup")
        return cls(path, version)

    @classmethod
    def create_child(cls, name: str, limit: int, root: Path = CGROUP_ROOT) -> MemoryCgroup:
        """A new child of this process's own memory cgroup, limited to `limit` bytes."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise CgroupError(f"invalid cgroup name {name!r}")
        version = detect_version(root)
        own = own_cgroup(Path("/proc/self/cgroup").read_text(), version)
        parent = (root / "memory" if version == 1 else root) / own.lstrip("/")
        path = parent / name
        try:
            path.mkdir(exist_ok=True)
            cgroup = cls(path, version)
            cgroup._write("memory.limit_in_bytes" if version == 1 else "memory.max", str(limit))
            if version == 2:
                # No swap: the kernel kills at the limit instead of swapping, as on a node.
                cgroup._write("memory.swap.max", "0", optional=True)
        except PermissionError as exc:
            raise CgroupError(
                f"cannot create a memory cgroup under {parent}: {exc.strerror} "
                "(needs root and a writable cgroup hierarchy)"
            ) from None
        except OSError as exc:
            raise CgroupError(f"cannot create memory cgroup {path}: {exc.strerror}") from None
        return cgroup

    def _write(self, name: str, value: str, optional: bool = False) -> None:
        target = self.path / name
        if optional and not target.exists():
            return
        target.write_text(value)

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text()
        except OSError as exc:
            raise CgroupError(f"cannot read {self.path / name}: {exc.strerror}") from None

    def add_process(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def limit(self) -> int | None:
        raw = self._read("memory.limit_in_bytes" if self.version == 1 else "memory.max").strip()
        if raw == "max":
            return None
        value = int(raw)
        return None if value >= 2**62 else value  # v1 reports "unlimited" as a huge number

    def usage(self) -> int:
        return int(self._read("memory.usage_in_bytes" if self.version == 1 else "memory.current"))

    def working_set(self) -> int:
        """usage - inactive file pages, floored at 0: the kubelet's container_memory_working_set."""
        stat = parse_flat_keyed(self._read("memory.stat"))
        inactive = stat.get("total_inactive_file" if self.version == 1 else "inactive_file", 0)
        return max(0, self.usage() - inactive)

    def rss(self) -> int:
        """Anonymous resident memory of the cgroup (v1 total_rss, v2 anon)."""
        stat = parse_flat_keyed(self._read("memory.stat"))
        return stat.get("total_rss" if self.version == 1 else "anon", 0)

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return parse_flat_keyed(self._read(name)).get("oom_kill", 0)

    def processes(self) -> list[int]:
        return [int(p) for p in self._read("cgroup.procs").split()]

    def remove(self) -> None:
        """Remove the (empty) cgroup; a cgroup with live processes stays."""
        try:
            self.path.rmdir()
        except OSError as exc:
            raise CgroupError(f"cannot remove {self.path}: {exc.strerror}") from None
