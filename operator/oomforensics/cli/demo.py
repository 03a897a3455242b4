"""`oomforensics demo`: the classic leak, caught in two snapshots and explained.

Starts the leaking Go fixture (HTTPS client that never closes 403 response bodies), takes a
snapshot, waits, takes another, and prints the diff. Network access is plain HTTP to a
process on loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from oomforensics.analysis.comparison import compare
from oomforensics.analysis.snapshot import GOROUTINE_TEXT, HEAP_PROFILE, HEAP_TEXT, MANIFEST
from oomforensics.cli.errors import UsageError
from oomforensics.cli.files import load_snapshot
from oomforensics.cli.render import render_comparison

CACHE = Path(os.environ.get("OOMF_CACHE", Path.home() / ".cache" / "oomforensics"))
FIXTURE = CACHE / "bin" / "leaky"
_CAPTURES = {
    HEAP_PROFILE: "/debug/pprof/heap",
    HEAP_TEXT: "/debug/pprof/heap?debug=1",
    GOROUTINE_TEXT: "/debug/pprof/goroutine?debug=1",
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo", help="run a leaking Go service, snapshot it twice and show what grew"
    )
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="the leaky fixture binary")
    parser.add_argument("--mode", default="tls403", help="fixture leak mode (default tls403)")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds between snapshots")
    parser.add_argument(
        "--out", type=Path, default=Path("demo-output"), help="where to keep the snapshots"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.fixture.is_file():
        raise UsageError(f"{args.fixture}: fixture not built; run `make setup` first")
    with _service(args.fixture, args.mode) as base_url:
        say(f"started {args.fixture.name} -mode {args.mode} at {base_url}")
        first = snapshot(base_url, args.out / "snapshot-1")
        deadline = time.monotonic() + args.wait
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(5.0, left))
            metrics = _metrics(base_url)
            say(
                f"  waiting: RSS {metrics.get('process_resident_memory_bytes', 0) / 2**20:.1f} MiB,"
                f" goroutines {metrics.get('go_goroutines', 0):.0f}"
            )
        second = snapshot(base_url, args.out / "snapshot-2")
    comparison = compare(load_snapshot(first), load_snapshot(second))
    print()
    print(render_comparison(comparison, 10))
    print()
    print("Reproduce the top table with pprof:")
    print(
        f"  go tool pprof -top -sample_index=inuse_space -diff_base "
        f"{first / HEAP_PROFILE} {second / HEAP_PROFILE}"
    )
    print(f"  oomforensics diff --json {first} {second}")
    return 0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def snapshot(base_url: str, directory: Path) -> Path:
    """Capture heap (proto), heap?debug=1 and goroutine?debug=1, plus a manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, object]] = {}
    for name, path in _CAPTURES.items():
        body = _get(base_url + path)
        (directory / name).write_bytes(body)
        files[name] = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
    rss = int(_metrics(base_url).get("process_resident_memory_bytes", 0))
    manifest = {
        "capturedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": base_url,
        "rssBytes": rss,
        "files": files,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    say(f"snapshot {directory}: RSS {rss / 2**20:.1f} MiB")
    return directory


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


def _metrics(base_url: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in _get(base_url + "/metrics").decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


@contextmanager
def _service(binary: Path, mode: str) -> Iterator[str]:
    process = subprocess.Popen([str(binary), "-mode", mode], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("LISTENING "):
            raise UsageError(f"{binary.name} did not start (said {line!r})")
        yield line.removeprefix("LISTENING ")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
