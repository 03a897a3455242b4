"""Where local mode reads a process's memory: its cgroup, /proc, or its own /metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from oomforensics.capture.prometheus import resident_bytes
from oomforensics.local.cgroup import CgroupError, MemoryCgroup


@dataclass(frozen=True, slots=True)
class MemoryReading:
    working_set: int  # what the OOM killer and the kubelet go by
    rss: int | None  # resident set, for the memory accounting (None when unknown)


class MemorySource(Protocol):
    description: str

    async def read(self) -> MemoryReading | None:
        """Memory in use now, or None when the target is gone."""
        ...


class CgroupMemory:
    """The kubelet's working set: cgroup usage minus inactive file pages."""

    def __init__(self, cgroup: MemoryCgroup) -> None:
        self.cgroup = cgroup
        self.description = f"cgroup {cgroup.path} (working set)"

    async def read(self) -> MemoryReading | None:
        try:
            if not self.cgroup.processes():
                return None
            return MemoryReading(self.cgroup.working_set(), self.cgroup.rss())
        except CgroupError:
            return None


class ProcMemory:
    """A process's resident set from /proc/PID/status (VmRSS)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.description = f"pid {pid} (VmRSS)"

    async def read(self) -> MemoryReading | None:
        rss = proc_rss(self.pid)
        return MemoryReading(rss, rss) if rss is not None else None


class MetricsMemory:
    """process_resident_memory_bytes from the target's Prometheus /metrics."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http
        self.description = f"{url} (process_resident_memory_bytes)"

    async def read(self) -> MemoryReading | None:
        try:
            response = await self.http.get(self.url, timeout=5.0)
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        rss = resident_bytes(response.text)
        return MemoryReading(rss, rss) if rss is not None else None


def proc_rss(pid: int) -> int | None:
    """VmRSS of a live process; None when it is gone (a zombie has no VmRSS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None
