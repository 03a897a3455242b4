"""Start a process the way a container starts: inside its memory cgroup, before it runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

from oomforensics.errors import OomForensicsError
from oomforensics.local.cgroup import MemoryCgroup
from oomforensics.local.memory import MemoryReading, ProcMemory
from oomforensics.local.watcher import Exit


class LaunchError(OomForensicsError):
    """The process did not start or did not announce where it listens."""


@contextlib.asynccontextmanager
async def spawn(
    command: list[str], cgroup: MemoryCgroup | None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    def join_cgroup() -> None:  # runs in the child before exec: it starts inside the limit
        if cgroup is not None:
            (cgroup.path / "cgroup.procs").write_text(str(os.getpid()))

    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, preexec_fn=join_cgroup
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        if not line.startswith("LISTENING "):
            raise LaunchError(f"{command[0]} did not start (said {line!r})")
        yield process, line.removeprefix("LISTENING ")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


class KillAtLimit:
    """Without a cgroup, play the kernel: SIGKILL the process once it reaches the limit."""

    def __init__(self, inner: ProcMemory, process: asyncio.subprocess.Process, limit: int) -> None:
        self.inner, self.process, self.limit = inner, process, limit
        self.description = inner.description + ", killed by oomforensics at the limit"

    async def read(self) -> MemoryReading | None:
        reading = await self.inner.read()
        if reading is not None and reading.working_set >= self.limit:
            self.process.kill()
            await self.process.wait()
            return None
        return reading


class StandInExit:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def __call__(self) -> Exit | None:
        if self.process.returncode is None:
            return None
        killed = self.process.returncode == -signal.SIGKILL
        return Exit(
            137 if killed else self.process.returncode,
            killed,
            "SIGKILL at the limit by oomforensics (standing in for the kernel)"
            if killed
            else f"exited with code {self.process.returncode}",
        )
