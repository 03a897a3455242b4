"""Run the ``leaky`` Go fixture service (tests/fixtures/go/leaky) from tests.

The binary is built by ``hack/build-go-fixtures.sh`` into
``${OOMF_CACHE:-~/.cache/oomforensics}/bin/leaky``.

    with LeakyService("mapcache", "-rate", "50") as svc:
        heap = svc.get("/debug/pprof/heap")
        rss = svc.metrics()["process_resident_memory_bytes"]
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

CACHE_DIR = Path(os.environ.get("OOMF_CACHE") or Path.home() / ".cache" / "oomforensics")
FIXTURE_BIN: Path = CACHE_DIR / "bin" / "leaky"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_LISTENING = b"LISTENING "


class LeakyService:
    """Context manager that starts the fixture and stops it on exit."""

    base_url: str
    pprof_url: str
    pid: int

    def __init__(self, mode: str, *extra_args: str, binary: Path | None = None) -> None:
        self.mode = mode
        self.binary = binary if binary is not None else FIXTURE_BIN
        self.argv = [str(self.binary), "-mode", mode, *extra_args]
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def __enter__(self) -> Self:
        if not self.binary.is_file():
            raise RuntimeError(
                f"leaky fixture binary not found at {self.binary}; "
                "run hack/build-go-fixtures.sh (or make setup)"
            )
        # stderr goes to a file, not a pipe, so the child can never block on it
        # and its tail is still readable when something goes wrong.
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self.pid = self._proc.pid
        try:
            line = self._read_listening_line(START_TIMEOUT)
        except BaseException:
            self._stop()
            raise
        self.base_url = line[len(_LISTENING) :].decode().strip().rstrip("/")
        self.pprof_url = self.base_url + "/debug/pprof"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        """GET ``base_url + path`` and return the body (raises on HTTP errors)."""
        with urllib.request.urlopen(self.base_url + path, timeout=timeout) as resp:
            body: bytes = resp.read()
        return body

    def metrics(self) -> dict[str, float]:
        """Fetch /metrics and parse the Prometheus text format.

        Keys are the series as written (``name`` or ``name{labels}``).
        """
        return parse_prometheus_text(self.get("/metrics").decode())

    def _read_listening_line(self, timeout: float) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.startswith(_LISTENING):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(
                        f"leaky did not report LISTENING within {timeout:g}s: {self._stderr_tail()}"
                    )
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    code = self._proc.wait(timeout=STOP_TIMEOUT)
                    raise RuntimeError(
                        f"leaky exited with code {code} before listening: {self._stderr_tail()}"
                    )
                buf += chunk

    def _stderr_tail(self, limit: int = 4000) -> str:
        if self._stderr is None:
            return "(no stderr)"
        self._stderr.flush()
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - limit))
        tail = self._stderr.read().decode(errors="replace").strip()
        return f"stderr tail:\n{tail}" if tail else "(stderr empty)"

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def parse_prometheus_text(text: str) -> dict[str, float]:
    """Parse Prometheus text exposition into ``{series: value}``; comments are skipped."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            end = line.rindex("}") + 1
            series, rest = line[:end], line[end:]
        else:
            series, _, rest = line.partition(" ")
        fields = rest.split()
        if fields:
            out[series] = float(fields[0])
    return out
