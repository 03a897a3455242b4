"""How local mode learns that the watched process ended, and whether the kernel killed it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from oomforensics.local.cgroup import CgroupError, MemoryCgroup
from oomforensics.local.watcher import Exit

SIGKILL_EXIT = 128 + signal.SIGKILL  # 137, what a container runtime reports


class ChildExit:
    """A child we started: its exit status is ours to read; the cgroup (if any) says OOM."""

    def __init__(self, process: asyncio.subprocess.Process, cgroup: MemoryCgroup | None) -> None:
        self.process = process
        self.cgroup = cgroup
        self.kills_before = _oom_kills(cgroup)

    async def __call__(self) -> Exit | None:
        code = self.process.returncode
        if code is None:
            return None
        exit_code = SIGKILL_EXIT if code == -signal.SIGKILL else (128 - code if code < 0 else code)
        return _judge(exit_code, self.cgroup, self.kills_before)


class CgroupExit:
    """A process we did not start: gone when its cgroup is empty (or /proc/PID vanished)."""

    def __init__(self, cgroup: MemoryCgroup | None, pid: int | None = None) -> None:
        self.cgroup = cgroup
        self.pid = pid
        self.kills_before = _oom_kills(cgroup)

    async def __call__(self) -> Exit | None:
        if self.pid is not None and Path(f"/proc/{self.pid}").exists():
            return None
        if self.pid is None and self.cgroup is not None and self.cgroup.processes():
            return None
        return _judge(None, self.cgroup, self.kills_before)


def _oom_kills(cgroup: MemoryCgroup | None) -> int:
    if cgroup is None:
        return 0
    try:
        return cgroup.oom_kills()
    except CgroupError:
        return 0


def _judge(exit_code: int | None, cgroup: MemoryCgroup | None, kills_before: int) -> Exit:
    if cgroup is not None:
        kills = _oom_kills(cgroup) - kills_before
        if kills > 0:
            return Exit(
                exit_code,
                True,
                f"the kernel OOM-killed it: {cgroup.path.name} counts {kills} new oom_kill"
                + (f", exit code {exit_code}" if exit_code is not None else ""),
            )
    if exit_code == SIGKILL_EXIT:
        return Exit(exit_code, False, "killed by SIGKILL (exit 137), but no OOM kill was counted")
    if exit_code is None:
        return Exit(None, False, "the process is gone; no OOM kill was counted")
    return Exit(exit_code, False, f"exited with code {exit_code}; no OOM kill")
