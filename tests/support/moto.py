"""A real S3 API for tests: moto's server, run from its own virtual environment.

botocore (under moto) and kubernetes need incompatible python-dateutil versions, so moto lives
in `${OOMF_CACHE:-~/.cache/oomforensics}/moto-venv` (hack/moto-server.sh, run by make setup)
and this module only starts its `moto_server` as a process and talks HTTP to it.

moto keeps everything in memory. To make `stop()`/`start()` an outage of a durable store (S3
does not forget objects during a network outage), the server records every request it accepts
(moto's recorder writes each request before handling it, so anything it acknowledged is in the
recording) and a restart replays the recording before it is used again. moto_launch.py starts
the server with the recorder serialised (it is not thread-safe on its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.support.waiting import eventually

REGION = "us-east-1"
SETUP_HINT = "run hack/moto-server.sh (make setup does)"
LAUNCHER = Path(__file__).with_name("moto_launch.py")


def moto_venv() -> Path:
    cache = Path(os.environ.get("OOMF_CACHE", Path.home() / ".cache" / "oomforensics"))
    return cache / "moto-venv"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """`with MotoServer() as s3:` a running S3 endpoint with one bucket.

    `archive_url(prefix)`, `options` and `credentials` are what `Archive.from_url` needs.
    `stop()` kills the server (an outage: connections are refused); `start()` brings it back on
    the same port with the objects it held (`persist=False`: empty, bucket recreated).
    """

    def __init__(self, bucket: str = "oomforensics-test", *, persist: bool = True) -> None:
        self.bucket = bucket
        self.persist = persist
        self.binary = moto_venv() / "bin" / "moto_server"
        self.python = moto_venv() / "bin" / "python"
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"moto_server not found at {self.binary}: {SETUP_HINT}")
        self.port = free_port()
        self._workdir = Path(tempfile.mkdtemp(prefix="oomf-moto-"))
        self.recording = self._workdir / "recording.jsonl"
        self.log = self._workdir / "moto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def options(self) -> dict[str, str]:
        return {"endpoint": self.endpoint, "region": REGION, "allow_http": "true"}

    @property
    def credentials(self) -> dict[str, str]:
        return {"access_key_id": "testing", "secret_access_key": "testing"}

    def archive_url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}".rstrip("/")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        replay = self.persist and self._repair_recording()
        env = dict(os.environ, AWS_DEFAULT_REGION=REGION)
        if self.persist:
            env.update(MOTO_ENABLE_RECORDING="true", MOTO_RECORDER_FILEPATH=str(self.recording))
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.python),
                    "-I",
                    str(LAUNCHER),  # -I: not our tests/support/moto.py
                    "-H",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our own process group: stop() ends it and only it
            )
        try:
            eventually(self._answers, timeout=timeout, what=f"moto_server on {self.endpoint}")
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; its log:\n{self._log_tail()}") from exc
        if replay:
            # The recording starts with this bucket's creation, so a replay recreates both.
            self._request("POST", "/moto-api/recorder/replay-recording")
        else:
            self._request("PUT", f"/{self.bucket}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> MotoServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _repair_recording(self) -> bool:
        """Drop a request line that a kill cut in half; True if there is anything to replay.

        moto records a request before handling it, so a torn line is a request that was never
        answered: the client saw an error and will retry it.
        """
        if not self.recording.exists():
            return False
        lines = self.recording.read_bytes().splitlines()
        whole = []
        for line in lines:
            try:
                json.loads(line)
            except ValueError:
                continue
            whole.append(line)
        self.recording.write_bytes(b"".join(line + b"\n" for line in whole))
        return bool(whole)

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with {self._process.returncode}; its log:\n{self._log_tail()}"
            )
        try:
            # Under /moto-api/recorder/ so that the probe itself is not recorded; any HTTP
            # answer (a 404 too) means the server is serving.
            self._request("GET", "/moto-api/recorder/ready", timeout=1.0)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def _request(self, method: str, path: str, timeout: float = 30.0) -> bytes:
        request = urllib.request.Request(self.endpoint + path, method=method, data=b"")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
