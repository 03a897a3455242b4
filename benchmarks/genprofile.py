"""Generate a deterministic pair of Go-heap-shaped pprof profiles (base and new) for benchmarks.

The profiles look like what `runtime/pprof.writeHeapProto` writes: sample types
alloc_objects/count, alloc_space/bytes, inuse_objects/count, inuse_space/bytes, period type
space/bytes with the default 512 KiB rate, values scaled by `scaleHeapSample`, a `bytes` num
label (the block size) on each sample, one main-binary mapping, locations with inlined frames
(several lines, innermost first), IDs assigned in order of first use, gzip at BestSpeed.

The call graph is layered: goroutine entry points at the root, generated service and library
functions below, and real standard-library / third-party allocation tails (bytes.makeSlice,
encoding/json recursion, protobuf, zap, pgx, ...) at the leaf. The new profile is the base
with some samples removed, some grown (a TLS/HTTP-transport leak among them), the rest
drifting, and as many new samples added, some through functions the base never saw.

Files are cached under benchmarks/.data/<key>/ so re-runs are instant:

    .venv/bin/python benchmarks/genprofile.py [--samples N] [--seed S]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oomforensics.pprof import profile_pb2

GENERATOR_VERSION = 1
# A stack is an application path plus an ending (own allocation or library tail): the
# ending adds this many locations beyond the path's last call site, on average.
ENDING_LOCATIONS = 2.6
DATA_DIR = Path(__file__).resolve().parent / ".data"

Frame = tuple[str, ...]
"""The function names of one location's lines, innermost (inlined) first."""
Stack = tuple[int, ...]
"""Global location indexes, leaf first."""

HEAP_TYPES = (
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
)
MEM_PROFILE_RATE = 512 * 1024
INUSE_SHARE = 0.05  # buckets with live objects
BINARY = "/usr/local/bin/orders-api"
BASE_TIME_NANOS = 1_717_000_000_000_000_000
HOUR_NANOS = 3600 * 10**9

SIZE_CLASSES = (
    8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
    2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472,
    9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264,
    28672, 32768, 40960, 65536, 131072, 1 << 20, 4 << 20,
)  # fmt: skip

ROOTS = (
    "net/http.(*conn).serve",
    "golang.org/x/net/http2.(*serverConn).runHandler",
    "google.golang.org/grpc.(*Server).serveStreams.func1.1",
    "github.com/segmentio/kafka-go.(*Reader).run",
    "k8s.io/client-go/tools/cache.(*processorListener).run",
    "k8s.io/apimachinery/pkg/util/wait.BackoffUntil.func1",
    "go.opentelemetry.io/otel/sdk/trace.(*batchSpanProcessor).processQueue",
    "database/sql.(*DB).connectionOpener",
    "github.com/acme/orders/internal/events.(*Consumer).loop",
    "github.com/acme/orders/internal/billing.(*Worker).run",
    "github.com/acme/orders/internal/report.(*Scheduler).Start.func1",
    "runtime.main",
)

THIRD_PARTY_PACKAGES = (
    "github.com/jackc/pgx/v5", "github.com/jackc/pgx/v5/pgconn", "github.com/jackc/pgx/v5/pgtype",
    "github.com/redis/go-redis/v9", "github.com/redis/go-redis/v9/internal/pool",
    "google.golang.org/grpc", "google.golang.org/grpc/internal/transport",
    "google.golang.org/protobuf/internal/impl", "go.uber.org/zap", "go.uber.org/zap/zapcore",
    "github.com/prometheus/client_golang/prometheus", "k8s.io/client-go/tools/cache",
    "k8s.io/apimachinery/pkg/runtime/serializer/json", "github.com/go-chi/chi/v5",
    "github.com/go-chi/chi/v5/middleware", "golang.org/x/net/http2",
    "github.com/aws/aws-sdk-go-v2/service/s3", "github.com/aws/smithy-go/middleware",
    "go.opentelemetry.io/otel/sdk/trace", "github.com/segmentio/kafka-go",
    "github.com/klauspost/compress/zstd",
)  # fmt: skip
APP_PACKAGES = (
    "main",
    *(f"github.com/acme/orders/{name}"
    for name in (
        "internal/api", "internal/store", "internal/billing", "internal/quota", "internal/cache",
        "internal/auth", "internal/events", "internal/search", "internal/ledger",
        "internal/notify", "internal/inventory", "internal/pricing", "internal/shipping",
        "internal/report", "pkg/ids", "pkg/money", "pkg/retry", "pkg/batch",
    )),
)  # fmt: skip
NOUNS = (
    "Order", "Item", "Cart", "Invoice", "Payment", "Customer", "Account", "Session", "Token",
    "Batch", "Event", "Record", "Row", "Query", "Request", "Response", "Header", "Body", "Conn",
    "Pool", "Cache", "Entry", "Index", "Shard", "Snapshot", "Stream", "Frame", "Message",
    "Buffer", "Chunk", "Page", "Cursor", "Plan", "Rule", "Price", "Quote", "Stock", "Shipment",
    "Label", "Report", "Metric", "Span", "Lease", "Job", "Task", "Queue", "Topic", "Partition",
    "Offset", "Schema", "Field", "Column", "Value", "Key", "Filter", "Route", "Tenant", "Quota",
)  # fmt: skip
VERBS = (
    "Get", "Put", "Load", "Save", "Fetch", "Find", "List", "Build", "Parse", "Encode", "Decode",
    "Marshal", "Unmarshal", "Read", "Write", "Flush", "Apply", "Merge", "Split", "Scan", "Exec",
    "Handle", "Serve", "Process", "Dispatch", "Publish", "Consume", "Refresh", "Sync",
    "Validate", "Resolve", "Compute", "Render", "Convert", "Collect", "Append", "Insert",
    "Update", "Delete", "Open", "Close", "Start", "Run", "Watch", "Poll", "Retry", "Send",
    "Recv", "Copy", "Clone", "Reset", "Register", "Lookup", "Match", "Group", "Compact", "Drain",
)  # fmt: skip
CALLS_PER_FUNCTION = (1, 2, 2, 3, 3, 3, 4, 4, 5, 6)
TYPE_SUFFIXES = ("", "Store", "Client", "Service", "Cache", "Handler", "Pool", "Set", "Builder")

_JSON = "encoding/json.(*decodeState)."
_PB = "google.golang.org/protobuf/internal/impl."
_ZAP = "go.uber.org/zap/zapcore."
_PGX = "github.com/jackc/pgx/v5/"
_GRPC = "google.golang.org/grpc."
_HTTP = "net/http."

# Library allocation chains, leaf first: what an application call ends in.
TAILS: tuple[tuple[Frame, ...], ...] = (
    (("bytes.makeSlice",), ("bytes.(*Buffer).grow",), ("bytes.(*Buffer).ReadFrom",),
     ("io.ReadAll",)),
    (("bytes.makeSlice",), ("bytes.(*Buffer).grow",), ("bytes.(*Buffer).Write",),
     ("encoding/json.(*Encoder).Encode",)),
    (("bufio.NewReaderSize", "bufio.NewReader"),),
    (("compress/flate.(*compressor).init",), ("compress/flate.NewWriter",),
     ("compress/gzip.(*Writer).Write",)),
    (("strings.(*Builder).grow",), ("strings.(*Builder).Grow", "strings.Join")),
    (("fmt.Sprintf",),),
    (("strconv.formatBits",), ("strconv.FormatInt", "strconv.Itoa")),
    (("reflect.New",), (_JSON + "object",), (_JSON + "value",), (_JSON + "unmarshal",),
     ("encoding/json.Unmarshal",)),
    ((_PB + "consumeBytesNoZero",), (_PB + "(*MessageInfo).unmarshalPointer",),
     (_PB + "(*MessageInfo).unmarshal",),
     ("google.golang.org/protobuf/proto.UnmarshalOptions.unmarshal",),
     ("google.golang.org/protobuf/proto.Unmarshal",)),
    ((_ZAP + "getJSONEncoder", _ZAP + "(*jsonEncoder).clone"),
     (_ZAP + "(*jsonEncoder).EncodeEntry",), (_ZAP + "(*ioCore).Write",),
     (_ZAP + "(*CheckedEntry).Write",), ("go.uber.org/zap.(*Logger).Info",)),
    ((_PGX + "pgproto3.(*chunkReader).Next",), (_PGX + "pgproto3.(*Frontend).Receive",),
     (_PGX + "pgconn.(*PgConn).receiveMessage",), (_PGX + "pgconn.(*ResultReader).NextRow",),
     (_PGX + "(*baseRows).Next",)),
    ((_GRPC + "(*parser).recvMsg",), (_GRPC + "recvAndDecompress",), (_GRPC + "recv",),
     (_GRPC + "(*csAttempt).recvMsg",), (_GRPC + "(*clientStream).RecvMsg.func1",),
     (_GRPC + "(*clientStream).withRetry",), (_GRPC + "(*clientStream).RecvMsg",),
     (_GRPC + "invoke",), (_GRPC + "(*ClientConn).Invoke",)),
    (("regexp.(*Regexp).FindStringSubmatch",),),
    (("context.WithDeadline",), ("context.WithTimeout",)),
    (("time.NewTimer",),),
    ((_HTTP + "Header.Clone",),),
    (("encoding/base64.(*Encoding).EncodeToString",),),
    *(
    # encoding/json decoding nested documents: value and object recur in one stack.
    ((_JSON + "literalStore",), (_JSON + "value",),
     *((_JSON + "object",), (_JSON + "value",)) * depth,
     (_JSON + "unmarshal",), ("encoding/json.Unmarshal",))
    for depth in range(1, 6)),
)  # fmt: skip

# Whole goroutine stacks (leaf first) outside the application graph; they leak in the new one.
SPECIAL_STACKS: tuple[tuple[Frame, ...], ...] = (
    (("runtime.malg",), ("runtime.newproc1",), ("runtime.newproc.func1",),
     ("runtime.systemstack",)),
    (("runtime.allocm",), ("runtime.newm",), ("runtime.startm",), ("runtime.wakep",),
     ("runtime.resetspinning",), ("runtime.schedule",), ("runtime.park_m",), ("runtime.mcall",)),
    (("bytes.makeSlice",), ("bytes.(*Buffer).grow",), ("bytes.(*Buffer).ReadFrom",),
     ("crypto/tls.(*Conn).readFromUntil",), ("crypto/tls.(*Conn).readRecordOrCCS",),
     ("crypto/tls.(*Conn).readRecord", "crypto/tls.(*Conn).Read"), (_HTTP + "(*persistConn).Read",),
     ("bufio.(*Reader).fill",), ("bufio.(*Reader).Peek",), (_HTTP + "(*persistConn).readLoop",)),
    (("bufio.NewReaderSize", _HTTP + "(*Transport).dialConn"),
     (_HTTP + "(*Transport).dialConnFor",)),
    (("bufio.NewWriterSize", _HTTP + "(*Transport).dialConn"),
     (_HTTP + "(*Transport).dialConnFor",)),
    ((_HTTP + "(*Transport).dialConn",), (_HTTP + "(*Transport).dialConnFor",)),
    (("crypto/tls.Client", _HTTP + "(*persistConn).addTLS"), (_HTTP + "(*Transport).dialConn",),
     (_HTTP + "(*Transport).dialConnFor",)),
    (("regexp.compile",), ("regexp.MustCompile",), ("github.com/acme/orders/internal/api.init",),
     ("runtime.doInit",), ("runtime.main",)),
)  # fmt: skip

# Only in the new profile: a quota client that leaks connections through net/http.
LEAK_TAIL: tuple[Frame, ...] = (
    (_HTTP + "(*Transport).queueForIdleConn",),
    (_HTTP + "(*Transport).getConn",),
    (_HTTP + "(*Transport).roundTrip",),
    (_HTTP + "(*Transport).RoundTrip",),
    (_HTTP + "send",),
    (_HTTP + "(*Client).send",),
    (_HTTP + "(*Client).do", _HTTP + "(*Client).Do"),
    ("github.com/acme/orders/internal/quota.(*Client).fetch",),
    ("github.com/acme/orders/internal/quota.(*Client).refresh",),
)


@dataclass(frozen=True)
class ProfileParams:
    samples: int = 100_000
    mean_depth: int = 28  # locations per sample, on average
    locations: int = 40_000  # distinct locations in the base profile (approximately)
    seed: int = 20_240_611
    inline_fraction: float = 0.12  # share of application call sites with inlined frames
    churn: float = 0.05  # share of base samples gone in new (and as many new samples)
    grown: float = 0.10  # share of kept samples that grow several times over
    leak_share: float = 0.3  # share of the new samples that go through the leaking client

    def key(self) -> str:
        # The generator's own source is part of the key: editing it regenerates the files.
        source = Path(__file__).read_bytes()
        digest = zlib.crc32(json.dumps(asdict(self), sort_keys=True).encode() + source)
        return (
            f"heap-v{GENERATOR_VERSION}-{self.samples}s-{self.locations}l-{self.mean_depth}d-"
            f"seed{self.seed}-{digest:08x}"
        )


@dataclass(frozen=True)
class ProfilePair:
    base: Path
    new: Path
    stats: dict[str, Any]


@dataclass(slots=True)
class Sample:
    stack: Stack
    size: int
    alloc: int  # sampled allocations (before scaling), as in a runtime.MemProfileRecord
    inuse: int


@dataclass
class AppFunction:
    name: str
    calls: list[tuple[int, int]] = field(default_factory=list)  # (location, callee)
    ends: list[Stack] = field(default_factory=list)  # leaf-first endings from this function


class Locations:
    """Global location table: one per (frame, call site), as one PC in one binary."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._index: dict[tuple[Frame, str], int] = {}

    def get(self, frame: Frame, site: str) -> int:
        key = (frame, site)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.frames)
            self.frames.append(frame)
        return index

    def chain(self, frames: Sequence[Frame], site: str) -> Stack:
        """Locations of a leaf-first chain; each is the call site of the frame below it."""
        ids = []
        below = site
        for frame in frames:
            ids.append(self.get(frame, below))
            below = frame[-1]  # the function this frame's location runs in
        return tuple(ids)


class NameFactory:
    """Unique, realistic Go function names (standard library names come from the tails)."""

    def __init__(self, rng: random.Random, reserved: set[str]) -> None:
        self._rng = rng
        self._used = set(reserved)

    def make(self) -> str:
        while True:
            name = self._candidate()
            if name not in self._used:
                self._used.add(name)
                return name

    def _candidate(self) -> str:
        rng = self._rng
        roll = rng.random()
        pkg = rng.choice(APP_PACKAGES if roll < 0.65 else THIRD_PARTY_PACKAGES)
        noun, verb = rng.choice(NOUNS), rng.choice(VERBS)
        kind = rng.random()
        if kind < 0.45:
            name = f"{pkg}.(*{noun}{rng.choice(TYPE_SUFFIXES)}).{verb}{rng.choice(NOUNS)}"
        elif kind < 0.6:
            name = f"{pkg}.{noun}{rng.choice(TYPE_SUFFIXES)}.{verb}"
        elif kind < 0.8:
            name = f"{pkg}.{verb}{noun}{rng.choice(TYPE_SUFFIXES)}"
        elif kind < 0.95:
            name = f"{pkg}.{verb.lower()}{noun}"
        else:
            name = f"{pkg}.(*{noun}{rng.choice(TYPE_SUFFIXES)}[...]).{verb}"
        if rng.random() < 0.12:
            name += f".func{rng.randint(1, 4)}"
        return name


class Model:
    """The layered call graph and every location a walk can reach."""

    def __init__(self, params: ProfileParams, functions: int) -> None:
        self.params = params
        self.rng = random.Random(f"{params.seed}:graph")
        self.locations = Locations()
        reserved = set(ROOTS) | {
            name for chain in TAILS + SPECIAL_STACKS for f in chain for name in f
        }
        self.names = NameFactory(self.rng, reserved)
        self.helpers = [self.names.make() for _ in range(max(50, functions // 8))]
        self.layers = self._layers(functions)
        self.specials = [self.locations.chain(chain, "alloc") for chain in SPECIAL_STACKS]
        self._wire()

    def _layers(self, functions: int) -> list[list[AppFunction]]:
        mean = self.params.mean_depth - ENDING_LOCATIONS
        survival = [_normal_survival(depth, mean, 7.0) for depth in range(round(2 * mean))]
        scale = functions / sum(survival)
        layers = [[AppFunction(name) for name in ROOTS]]
        for depth in range(1, len(survival)):
            count = max(1, min(round(scale * survival[depth]), len(layers[-1]) * 4))
            layers.append([AppFunction(self.names.make()) for _ in range(count)])
        return layers

    def _wire(self) -> None:
        for layer, below in zip(self.layers, [*self.layers[1:], []], strict=True):
            self._wire_calls(layer, below)
            for function in layer:
                self._wire_ends(function)

    def _wire_calls(self, layer: list[AppFunction], below: list[AppFunction]) -> None:
        if not below:
            return
        rng = self.rng
        owners = [i for i, _ in enumerate(layer) for _ in range(rng.choice(CALLS_PER_FUNCTION))]
        owners += [i % len(layer) for i in range(max(0, len(below) - len(owners)))]
        callees = list(range(len(below)))  # every function below is called from somewhere
        callees += [rng.randrange(len(below)) for _ in range(len(owners) - len(callees))]
        rng.shuffle(callees)
        for owner, callee in zip(owners, callees, strict=True):
            caller = layer[owner]
            site = f"{below[callee].name}#{len(caller.calls)}"
            caller.calls.append((self.locations.get(self._frame(caller.name), site), callee))

    def _wire_ends(self, function: AppFunction) -> None:
        rng = self.rng
        for end in range(rng.choice((1, 1, 2, 3))):
            if rng.random() < 0.35:
                own = self.locations.get(self._frame(function.name), f"alloc{end}")
                function.ends.append((own,))
            else:
                tail = TAILS[min(int(len(TAILS) * rng.random() ** 1.5), len(TAILS) - 1)]
                call = self.locations.get(self._frame(function.name), f"tail{end}")
                function.ends.append((*self.locations.chain(tail, "alloc"), call))

    def _frame(self, name: str) -> Frame:
        if self.rng.random() >= self.params.inline_fraction:
            return (name,)
        inlined = self.rng.sample(self.helpers, self.rng.choice((1, 1, 2)))
        return (*inlined, name)

    def leak_end(self, function: AppFunction) -> Stack:
        call = self.locations.get((function.name,), "leak")
        return (*self.locations.chain(LEAK_TAIL, "alloc"), call)


def _normal_survival(depth: int, mean: float, sd: float) -> float:
    """P(app depth > depth) for a normal app depth, as a layer's relative traffic."""
    return 0.5 * math.erfc((depth + 0.5 - mean) / (sd * math.sqrt(2)))


class Walker:
    """Random call stacks through a Model, skewed so that some paths are hot."""

    def __init__(self, model: Model, rng: random.Random) -> None:
        self.model = model
        self.rng = rng

    def stack(self, leak: bool = False) -> Stack:
        rng, layers = self.rng, self.model.layers
        target = max(1, round(rng.gauss(self.model.params.mean_depth - ENDING_LOCATIONS, 7.0)))
        function = layers[0][_skewed(rng, len(layers[0]))]
        path: list[int] = []
        for depth in range(1, target):
            if not function.calls:
                break
            location, callee = function.calls[_skewed(rng, len(function.calls))]
            path.append(location)
            function = layers[depth][callee]
        end = self.model.leak_end(function) if leak else rng.choice(function.ends)
        path.reverse()
        return (*end, *path)


def _skewed(rng: random.Random, n: int) -> int:
    return min(int(n * rng.random() ** 1.6), n - 1)


def _size(rng: random.Random) -> int:
    return SIZE_CLASSES[min(int(len(SIZE_CLASSES) * rng.random() ** 2.2), len(SIZE_CLASSES) - 1)]


def _counts(rng: random.Random, leaking: bool = False) -> tuple[int, int]:
    """Sampled allocations and how many are still live: most buckets of a long-running
    service hold nothing live (each sampled object stands for about 512 KiB allocated)."""
    alloc = min(int(rng.paretovariate(1.1)), 50_000)
    if leaking:
        return alloc, min(alloc, rng.randint(1, 3))
    inuse = rng.randint(1, min(alloc, 4)) if rng.random() < INUSE_SHARE else 0
    return alloc, inuse


def base_samples(model: Model, rng: random.Random, count: int) -> list[Sample]:
    walker = Walker(model, rng)
    seen: set[tuple[Stack, int]] = set()
    samples: list[Sample] = []
    specials = max(len(model.specials), count // 500)
    while len(samples) < count:
        if len(samples) < specials:
            stacks = [model.specials[len(samples) % len(model.specials)]]
        else:
            stack = walker.stack()
            stacks = [stack] * (1 if rng.random() < 0.9 else rng.randint(2, 3))
        for stack in stacks:
            size = _size(rng)
            if (stack, size) not in seen and len(samples) < count:
                seen.add((stack, size))
                samples.append(Sample(stack, size, *_counts(rng)))
    return samples


def new_samples(model: Model, rng: random.Random, base: list[Sample]) -> list[Sample]:
    """The base after time passed: churn, growth, a leak; Go lists new buckets first."""
    params = model.params
    removed = set(rng.sample(range(len(base)), round(len(base) * params.churn)))
    special_stacks = set(model.specials)
    kept = [
        _evolve(rng, sample, sample.stack in special_stacks, params.grown)
        for i, sample in enumerate(base)
        if i not in removed
    ]
    seen = {(s.stack, s.size) for s in base}
    walker = Walker(model, rng)
    added: list[Sample] = []
    while len(added) < len(removed):
        leak = rng.random() < params.leak_share
        stack = walker.stack(leak)
        size = _size(rng)
        if (stack, size) not in seen:
            seen.add((stack, size))
            added.append(Sample(stack, size, *_counts(rng, leak)))
    return added[::-1] + kept


def _evolve(rng: random.Random, sample: Sample, leaking: bool, grown: float) -> Sample:
    if leaking:
        factor = rng.uniform(3, 8)
        alloc = int(sample.alloc * factor) + 1
        return Sample(
            sample.stack, sample.size, alloc, min(alloc, int(max(sample.inuse, 1) * factor))
        )
    if rng.random() < grown:
        factor = rng.uniform(2, 25)
        alloc = int(sample.alloc * factor) + 1
        inuse = int(sample.inuse * factor) if sample.inuse else int(rng.random() < 0.2)
        return Sample(sample.stack, sample.size, alloc, min(alloc, inuse))
    alloc = sample.alloc + int(sample.alloc * rng.random() * 0.2)
    if rng.random() < 0.85:
        return Sample(sample.stack, sample.size, alloc, sample.inuse)
    inuse = rng.randint(1, min(alloc, 4)) if rng.random() < INUSE_SHARE else 0
    return Sample(sample.stack, sample.size, alloc, inuse)


def scale_heap_sample(count: int, size: int, rate: int = MEM_PROFILE_RATE) -> tuple[int, int]:
    """runtime/pprof.scaleHeapSample."""
    if count == 0 or size == 0:
        return 0, 0
    if rate <= 1:
        return count, size
    scale = 1 / (1 - math.exp(-(size / count) / rate))
    return int(count * scale), int(size * scale)


class ProtoWriter:
    """Encode samples the way runtime/pprof does: IDs and strings in order of first use."""

    def __init__(self, locations: Locations, time_nanos: int) -> None:
        self.frames = locations.frames
        self.msg = profile_pb2.Profile()
        self._strings: dict[str, int] = {"": 0}
        self._locations: dict[int, int] = {}
        self._functions: dict[str, int] = {}
        msg = self.msg
        msg.period_type.type, msg.period_type.unit = self._s("space"), self._s("bytes")
        msg.period = MEM_PROFILE_RATE
        for kind, unit in HEAP_TYPES:
            msg.sample_type.add(type=self._s(kind), unit=self._s(unit))
        self._bytes_key = self._s("bytes")
        msg.time_nanos = time_nanos

    def _s(self, text: str) -> int:
        index = self._strings.get(text)
        if index is None:
            index = self._strings[text] = len(self._strings)
        return index

    def add(self, sample: Sample) -> None:
        s = self.msg.sample.add()
        s.location_id.extend([self._location(g) for g in sample.stack])
        alloc = scale_heap_sample(sample.alloc, sample.alloc * sample.size)
        inuse = scale_heap_sample(sample.inuse, sample.inuse * sample.size)
        s.value.extend((*alloc, *inuse))
        s.label.add(key=self._bytes_key, num=sample.size)

    def _location(self, index: int) -> int:
        lid = self._locations.get(index)
        if lid is None:
            lid = self._locations[index] = len(self._locations) + 1
            loc = self.msg.location.add(id=lid, mapping_id=1, address=0x401000 + 0x1B * index)
            for depth, name in enumerate(self.frames[index]):
                fid, start = self._function(name)
                loc.line.add(function_id=fid, line=start + 3 + (index * 7 + depth) % 90)
        return lid

    def _function(self, name: str) -> tuple[int, int]:
        start = 20 + zlib.crc32(name.encode()) % 900
        fid = self._functions.get(name)
        if fid is None:
            fid = self._functions[name] = len(self._functions) + 1
            self.msg.function.add(
                id=fid,
                name=self._s(name),
                system_name=self._s(name),
                filename=self._s(_source_file(name)),
                start_line=start,
            )
        return fid, start

    def finish(self) -> bytes:
        self.msg.mapping.add(
            id=1,
            memory_start=0x400000,
            memory_limit=0x400000 + 0x1B * (len(self.frames) + 1) + 0x2000000,
            filename=self._s(BINARY),
            build_id=self._s("6f0a1c2e9d4b8a7f3e5d1c0b2a4f6e8d9c7b5a31"),
            has_functions=True,
            has_filenames=True,
            has_line_numbers=True,
            has_inline_frames=True,
        )
        self.msg.string_table.extend(self._strings)  # dicts keep insertion (= index) order
        return gzip.compress(self.msg.SerializeToString(), compresslevel=1, mtime=0)

    @property
    def counts(self) -> tuple[int, int]:
        return len(self._locations), len(self._functions)


def _source_file(name: str) -> str:
    pkg = name[: name.find(".", name.rfind("/") + 1)]
    stem = pkg.rsplit("/", 1)[-1]
    if pkg == "main":
        return "/src/orders/main.go"
    if pkg.startswith("github.com/acme/orders/"):
        return f"/src/orders/{pkg.removeprefix('github.com/acme/orders/')}/{stem}.go"
    if "." in pkg.split("/")[0]:
        return f"/go/pkg/mod/{pkg}/{stem}.go"
    return f"/usr/local/go/src/{pkg}/{stem}.go"


def encode(model: Model, samples: list[Sample], time_nanos: int) -> tuple[bytes, dict[str, int]]:
    writer = ProtoWriter(model.locations, time_nanos)
    for sample in samples:
        writer.add(sample)
    data = writer.finish()
    locations, functions = writer.counts
    return data, {"locations": locations, "functions": functions, "gzip_bytes": len(data)}


def _used_locations(samples: list[Sample]) -> int:
    return len({loc for s in samples for loc in s.stack})


def calibrated_model(params: ProfileParams) -> tuple[Model, list[Sample]]:
    """Size the graph so the base profile uses about `params.locations` locations."""
    functions = params.locations // 3
    for _ in range(4):
        model = Model(params, functions)
        samples = base_samples(model, random.Random(f"{params.seed}:base"), params.samples)
        used = _used_locations(samples)
        if abs(used - params.locations) <= 0.02 * params.locations:
            break
        functions = max(len(ROOTS), round(functions * params.locations / used))
    return model, samples


def _shape(samples: list[Sample], model: Model) -> dict[str, float]:
    frames = model.locations.frames
    depths = [len(s.stack) for s in samples]
    lines = [sum(len(frames[loc]) for loc in s.stack) for s in samples]
    used = {loc for s in samples for loc in s.stack}
    return {
        "samples": len(samples),
        "distinct_stacks": len({s.stack for s in samples}),
        "mean_locations_per_sample": round(sum(depths) / len(depths), 2),
        "mean_frames_per_sample": round(sum(lines) / len(lines), 2),
        "max_locations_per_sample": max(depths),
        "inlined_location_share": round(sum(len(frames[i]) > 1 for i in used) / len(used), 3),
    }


def generate_pair(params: ProfileParams) -> tuple[bytes, bytes, dict[str, Any]]:
    model, base = calibrated_model(params)
    new = new_samples(model, random.Random(f"{params.seed}:new"), base)
    base_data, base_counts = encode(model, base, BASE_TIME_NANOS)
    new_data, new_counts = encode(model, new, BASE_TIME_NANOS + HOUR_NANOS)
    stats = {
        "params": asdict(params),
        "base": {**_shape(base, model), **base_counts},
        "new": {**_shape(new, model), **new_counts},
    }
    return base_data, new_data, stats


def ensure_pair(params: ProfileParams, data_dir: Path = DATA_DIR) -> ProfilePair:
    """The cached pair for `params`, generated on first use."""
    folder = data_dir / params.key()
    base, new, stats = folder / "base.pb.gz", folder / "new.pb.gz", folder / "stats.json"
    if not (base.exists() and new.exists() and stats.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        base_data, new_data, stats_data = generate_pair(params)
        _write_atomic(base, base_data)
        _write_atomic(new, new_data)
        _write_atomic(stats, json.dumps(stats_data, indent=2).encode())
    return ProfilePair(base, new, json.loads(stats.read_text()))


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    temporary.write_bytes(data)
    temporary.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    defaults = ProfileParams()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=defaults.samples)
    parser.add_argument("--locations", type=int, default=defaults.locations)
    parser.add_argument("--mean-depth", type=int, default=defaults.mean_depth)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    params = ProfileParams(
        samples=args.samples, locations=args.locations, mean_depth=args.mean_depth, seed=args.seed
    )
    pair = ensure_pair(params)
    print(pair.base)
    print(pair.new)
    print(json.dumps(pair.stats, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
