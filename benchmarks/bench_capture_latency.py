"""Benchmark: trigger -> durable snapshot in S3, for ~1 MB and ~20 MB heap profiles.

The path is the operator's own (`InvestigationRunner._capture`): `PprofClient.capture` with
the operator's capture settings (heap first and alone, then heap?debug=1 and
goroutine?debug=1 concurrently, each validated: the gzip protobuf is parsed), the MemStats
parsed from heap.txt, `build_manifest`, then `Spool.submit` into an `Archive` on S3 (moto's
server, tests/support/moto.py), which stores the files and then the manifest. The clock
starts when the capture is decided and stops when `submit` returns: the manifest is in S3.

The pprof endpoint is a real HTTP server in a separate process (this file with `--serve`,
a threading http.server), so serving costs nothing on the measured event loop. It serves:

- heap: Go-heap-shaped profiles from benchmarks/genprofile.py (valid gzip protobuf, the
  shapes of `runtime/pprof`); ~1 MB is one generated profile (17,000 samples), ~20 MB merges
  five generated profiles into one (their location, function and string tables appended),
  because generating one profile of that size takes the generator too long;
- heap?debug=1 and goroutine?debug=1: real Go 1.19 output (tests/fixtures/text).

Each snapshot is deleted after it is measured (outside the timing) so moto's memory stays
flat. Sizes are interleaved. Results go to the `<!-- bench:latency -->` section of
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_capture_latency.py [--repeat-small 100]
        [--repeat-large 40] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gzip
import http.server
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # tests.support (moto) lives at the repository root
    sys.path.insert(0, str(ROOT))

from bench_analysis import machine_line, update_results  # noqa: E402
from genprofile import ProfileParams, ensure_pair  # noqa: E402

from oomforensics.archive.layout import SnapshotKey  # noqa: E402
from oomforensics.archive.manifest import build_manifest  # noqa: E402
from oomforensics.archive.spool import Spool  # noqa: E402
from oomforensics.archive.store import Archive  # noqa: E402
from oomforensics.capture.client import CaptureSettings, PprofClient  # noqa: E402
from oomforensics.k8s.settings import OperatorSettings  # noqa: E402
from oomforensics.pprof import profile_pb2  # noqa: E402
from oomforensics.pprof.heaptext import parse_heap_text  # noqa: E402
from oomforensics.triggers.model import ContainerRun  # noqa: E402
from tests.support.moto import MotoServer  # noqa: E402

RESULTS = HERE / "RESULTS.md"
SECTION = "latency"
TEXTS = ROOT / "tests" / "fixtures" / "text"
MB = 10**6
SMALL = ProfileParams(samples=17_000, locations=12_000)  # ~0.9 MB gzipped
# ~20 MB: base and new of the 100,000-sample pair, the base of a second seed, and the small
# pair (234,000 samples in all).
LARGE_PARTS = ((ProfileParams(), "base"), (ProfileParams(), "new"), (ProfileParams(seed=7), "base"),
               (SMALL, "base"), (SMALL, "new"))  # fmt: skip


# --- the profiles ----------------------------------------------------------------------------


def merge_profiles(parts: Sequence[bytes]) -> bytes:
    """One valid heap profile holding every sample of `parts` (same sample types).

    Location, function and string tables are appended with their IDs and indexes shifted;
    every location points at the first profile's mapping (the same binary).
    """
    merged = profile_pb2.Profile()
    strings: dict[str, int] = {"": 0}
    table: list[str] = [""]

    def intern(text: str) -> int:
        if text not in strings:
            strings[text] = len(table)
            table.append(text)
        return strings[text]

    location_base = function_base = 0
    for index, data in enumerate(parts):
        part = profile_pb2.Profile()
        part.ParseFromString(gzip.decompress(data))
        s = list(part.string_table)

        def moved(i: int, s: list[str] = s) -> int:
            return intern(s[i])

        if index == 0:
            for st in part.sample_type:
                merged.sample_type.add(type=moved(st.type), unit=moved(st.unit))
            merged.default_sample_type = moved(part.default_sample_type)
            for m in part.mapping:
                merged.mapping.add(
                    id=m.id,
                    memory_start=m.memory_start,
                    memory_limit=m.memory_limit,
                    file_offset=m.file_offset,
                    filename=moved(m.filename),
                    build_id=moved(m.build_id),
                    has_functions=m.has_functions,
                )
            merged.period_type.type = moved(part.period_type.type)
            merged.period_type.unit = moved(part.period_type.unit)
            merged.period = part.period
            merged.time_nanos = part.time_nanos
        mapping_id = merged.mapping[0].id
        for f in part.function:
            merged.function.add(
                id=f.id + function_base,
                name=moved(f.name),
                system_name=moved(f.system_name),
                filename=moved(f.filename),
                start_line=f.start_line,
            )
        for loc in part.location:
            new = merged.location.add(
                id=loc.id + location_base,
                mapping_id=mapping_id,
                address=loc.address + (location_base << 4),
            )
            for line in loc.line:
                new.line.add(function_id=line.function_id + function_base, line=line.line)
        for sample in part.sample:
            new_sample = merged.sample.add()
            new_sample.location_id.extend(i + location_base for i in sample.location_id)
            new_sample.value.extend(sample.value)
            for label in sample.label:
                new_sample.label.add(key=moved(label.key), num=label.num)
        location_base = max((loc.id for loc in merged.location), default=0)
        function_base = max((f.id for f in merged.function), default=0)
    merged.string_table.extend(table)
    return gzip.compress(merged.SerializeToString(), compresslevel=1)  # Go: BestSpeed


def build_profiles(folder: Path) -> dict[str, Path]:
    """heap-small.pb.gz and heap-large.pb.gz in `folder` (cached by genprofile)."""
    small = folder / "heap-small.pb.gz"
    large = folder / "heap-large.pb.gz"
    if not small.exists():
        small.write_bytes(ensure_pair(SMALL).base.read_bytes())
    if not large.exists():
        pieces = [getattr(ensure_pair(params), which).read_bytes() for params, which in LARGE_PARTS]
        large.write_bytes(merge_profiles(pieces))
    return {"small": small, "large": large}


# --- the pprof server (a child process) ------------------------------------------------------


def serve(folder: Path) -> None:
    """GET /<name>/debug/pprof/{heap, heap?debug=1, goroutine?debug=1}; prints its port."""
    heap_text = (TEXTS / "heap-go1.19.txt").read_bytes()
    goroutines = (TEXTS / "goroutine-go1.19.txt").read_bytes()
    profiles = {p.name.removeprefix("heap-").removesuffix(".pb.gz"): p.read_bytes()
                for p in folder.glob("heap-*.pb.gz")}  # fmt: skip

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name, _, rest = self.path.lstrip("/").partition("/")
            body: bytes | None
            if rest == "debug/pprof/heap":
                body, kind = profiles.get(name), "application/octet-stream"
            elif rest == "debug/pprof/heap?debug=1":
                body, kind = heap_text, "text/plain; charset=utf-8"
            elif rest == "debug/pprof/goroutine?debug=1":
                body, kind = goroutines, "text/plain; charset=utf-8"
            else:
                body, kind = None, ""
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()


@contextlib.contextmanager
def pprof_server(folder: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(folder)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"the pprof server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        process.wait(10)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Series:
    label: str
    heap_bytes: int
    total: list[float] = field(default_factory=list)  # trigger -> manifest stored
    fetch: list[float] = field(default_factory=list)  # capture(): fetch + validate all three
    store: list[float] = field(default_factory=list)  # manifest + Spool.submit
    stored_bytes: int = 0
    failures: list[str] = field(default_factory=list)


async def capture_once(
    client: PprofClient,
    base: str,
    archive: Archive,
    spool: Spool,
    series: Series,
    index: int,
) -> SnapshotKey | None:
    """One capture, as InvestigationRunner._capture does it; timings appended to `series`."""
    decided = time.perf_counter()
    captured = await client.capture(base)
    fetched = time.perf_counter()
    if not captured.ok:
        series.failures.append("; ".join(f"{n}: {e}" for n, e in captured.errors.items()))
        return None
    run = ContainerRun("bench", f"pod-{series.label}", "0000", "app", index)
    key = SnapshotKey("latency", run, captured.started_at, "threshold-80")
    memstats = None
    if "heap.txt" in captured.files:
        heap = await asyncio.to_thread(parse_heap_text, captured.files["heap.txt"])
        memstats = heap.memstats.integers()
    manifest = build_manifest(
        key,
        captured.files,
        working_set_bytes=100 * 2**20,
        limit_bytes=128 * 2**20,
        node="node-1",
        image="registry.test/app:v1",
        memstats=memstats,
    )
    await spool.submit(archive, key, captured.files, manifest)
    done = time.perf_counter()
    series.total.append(done - decided)
    series.fetch.append(fetched - decided)
    series.store.append(done - fetched)
    series.stored_bytes = sum(len(b) for b in captured.files.values()) + len(manifest.to_json())
    if spool.pending():
        series.failures.append(f"{key.path()} went to the spool, not to S3")
    return key


async def measure(
    args: argparse.Namespace, profiles: dict[str, Path], base_url: str
) -> list[Series]:
    settings = OperatorSettings()  # the operator's defaults: 64 MiB cap, 30 s timeout
    capture = CaptureSettings(
        read_timeout=settings.capture_timeout,
        max_body_bytes=settings.max_profile_bytes,
        max_decompressed_bytes=settings.max_profile_bytes,
    )
    plan = {"small": args.repeat_small, "large": args.repeat_large}
    series = {name: Series(name, profiles[name].stat().st_size) for name in plan if plan[name] > 0}
    with MotoServer(persist=False) as s3, tempfile.TemporaryDirectory() as spool_dir:
        archive = Archive.from_url(
            s3.archive_url("bench-latency"), credentials=s3.credentials, options=s3.options
        )
        spool = Spool(Path(spool_dir), 2**30)
        async with PprofClient(capture) as client:
            # One warm-up capture per size: connection pools, imports, moto's first bucket I/O.
            for name, one in series.items():
                warm = Series(name, one.heap_bytes)
                key = await capture_once(client, f"{base_url}/{name}/debug/pprof", archive, spool,
                                         warm, 10_000)  # fmt: skip
                if key is None:
                    raise SystemExit(f"warm-up capture of {name} failed: {warm.failures}")
                await archive.verify(key)  # the stored snapshot reads back, checksums equal
                await archive.delete_snapshot(key)
            for index in range(max(plan.values())):
                for name, one in series.items():
                    if index >= plan[name]:
                        continue
                    key = await capture_once(
                        client, f"{base_url}/{name}/debug/pprof", archive, spool, one, index
                    )
                    if key is not None:
                        await archive.delete_snapshot(key)
                    if (index + 1) % 10 == 0:
                        print(f"  {name}: {index + 1}/{plan[name]}", file=sys.stderr, flush=True)
    return list(series.values())


# --- reporting -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:,.0f}"


def _mb(n: float) -> str:
    return f"{n / MB:.1f} MB"


def table(all_series: list[Series]) -> list[str]:
    lines = [
        "| heap profile | captures | trigger -> durable, ms: p50 / p95 / p99 / max | "
        "fetch + validate, ms: p50 / p95 / p99 | store in S3, ms: p50 / p95 / p99 | "
        "stored per snapshot | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in all_series:

        def trio(values: list[float]) -> str:
            return " / ".join(_ms(percentile(values, p)) for p in (50, 95, 99))

        lines.append(
            f"| {_mb(s.heap_bytes)} gzipped | {len(s.total)} | **{trio(s.total)}** / "
            f"{_ms(max(s.total, default=math.nan))} | {trio(s.fetch)} | {trio(s.store)} | "
            f"{_mb(s.stored_bytes)} | {len(s.failures)} |"
        )
    return lines


def profile_facts(path: Path) -> str:
    profile = profile_pb2.Profile()
    profile.ParseFromString(gzip.decompress(path.read_bytes()))
    return (
        f"{path.stat().st_size / MB:.2f} MB gzipped, {len(profile.sample):,} samples, "
        f"{len(profile.location):,} locations, {len(profile.function):,} functions"
    )


def section(args: argparse.Namespace, all_series: list[Series], profiles: dict[str, Path]) -> str:
    failures = [f for s in all_series for f in s.failures]
    lines = [
        f"<!-- bench:{SECTION} -->",
        "## Capture latency: trigger -> durable snapshot in S3",
        "",
        f"`.venv/bin/python benchmarks/bench_capture_latency.py --repeat-small "
        f"{args.repeat_small} --repeat-large {args.repeat_large}`, "
        f"{datetime.datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {machine_line()}. Load average (1 min) at the start and the end: "
        f"{args.load_start:.2f}, {os.getloadavg()[0]:.2f} (the machine was shared with other "
        "work: 2 cores).",
        "",
        "The operator's capture path (`InvestigationRunner._capture`): `PprofClient.capture` "
        "with the operator's default settings (64 MiB cap, 30 s timeout; heap first, then "
        "heap?debug=1 and goroutine?debug=1 concurrently; each response validated, the heap "
        "profile parsed), MemStats parsed from heap.txt, `build_manifest`, `Spool.submit` to "
        "an `Archive` on S3 (moto's server on loopback, tests/support/moto.py; files, then the "
        "manifest). Trigger -> durable: from the decision to capture until `submit` returns "
        "with the manifest stored. The pprof server is a separate process on loopback serving "
        "files from memory, so network and endpoint time are near zero: the figures are the "
        "operator's own cost plus moto's.",
        "",
        f"Profiles (benchmarks/genprofile.py, Go heap shape): ~1 MB: "
        f"{profile_facts(profiles['small'])}; ~20 MB: {profile_facts(profiles['large'])} "
        "(five generated profiles merged into one: 100,000 + 100,000 + 100,000 + 17,000 + 17,000 "
        "samples). heap.txt and "
        "goroutine.txt: real Go 1.19 output (tests/fixtures/text, ~1-2 KB each).",
        "",
        *table(all_series),
        "",
        "Nearest-rank percentiles (with fewer than 100 captures, p99 is the largest); one "
        "warm-up capture per size first (verified read back from "
        "S3: checksums equal), not counted; sizes interleaved; each snapshot deleted after "
        "its measurement, outside the timing.",
    ]
    if failures:
        lines += ["", "Failures: " + "; ".join(failures[:5])]
    lines.append(f"<!-- /bench:{SECTION} -->")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat-small", type=int, default=100, help="~1 MB captures")
    parser.add_argument("--repeat-large", type=int, default=40, help="~20 MB captures")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=HERE / ".data" / "latency",
                        help=argparse.SUPPRESS)  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    args.load_start = os.getloadavg()[0]
    args.data.mkdir(parents=True, exist_ok=True)
    print("Building the profiles ...", file=sys.stderr, flush=True)
    profiles = build_profiles(args.data)
    with pprof_server(args.data) as base_url:
        print(f"Capturing from {base_url} ...", file=sys.stderr, flush=True)
        results = asyncio.run(measure(args, profiles, base_url))
    print("\n".join(table(results)).replace("**", ""))
    if not args.no_write:
        update_results(RESULTS, SECTION, section(args, results, profiles))
        print(f"Updated {RESULTS}", file=sys.stderr)
    return 0 if not any(s.failures for s in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
