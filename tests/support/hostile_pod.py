"""A pod's process that serves a hostile pprof endpoint (standard library only, run by the
test kubelet as `python hostile_pod.py`, listening on $PORT):

- /metrics: a plain Prometheus page (so memory is read and the triggers fire);
- /debug/pprof/heap: a gzip bomb (a few hundred KiB that inflate to 256 MiB of zeros);
- /debug/pprof/heap?debug=1: a slowloris, one byte a second, forever;
- /debug/pprof/goroutine?debug=1: an HTML login page with status 200.

Each request's path is appended to the file $HOSTILE_LOG, when set, as it arrives.
"""

from __future__ import annotations

import gzip
import io
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def bomb(size: int = 256 * 2**20) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as packed:
        block = b"\0" * 2**20
        for _ in range(size // len(block)):
            packed.write(block)
    return out.getvalue()


BOMB = bomb()


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if os.environ.get("HOSTILE_LOG"):
            with Path(os.environ["HOSTILE_LOG"]).open("a") as log:
                log.write(self.path + "\n")
        if self.path == "/metrics":
            self._send(b"process_resident_memory_bytes 31457280\n", "text/plain")
        elif self.path.startswith("/debug/pprof/heap?"):
            self._trickle()
        elif self.path.startswith("/debug/pprof/heap"):
            self._send(BOMB, "application/octet-stream")
        elif self.path.startswith("/debug/pprof/goroutine"):
            self._send(b"<html><body><form>login</form></body></html>", "text/html")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"h")
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            return

    def log_message(self, format: str, *args: object) -> None:
        return


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hostile).serve_forever()
