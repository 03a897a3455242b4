"""`oomforensics diff BASE NEW`: what grew between two snapshots, with pprof's exact numbers."""

from __future__ import annotations

import argparse
import io
import json
import mmap
import os
import pickle
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

# Before numpy is imported: its OpenBLAS would start a thread per core, which spin for a tenth
# of a second of CPU, and a diff does no linear algebra.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from oomforensics.analysis.snapshot import HEAP_PROFILE, Snapshot
from oomforensics.cli import prefetch
from oomforensics.cli.errors import UsageError
from oomforensics.cli.files import load_snapshot
from oomforensics.cli.sample_index import SampleIndexChoice
from oomforensics.pprof.diff import (
    BaseMode,
    FunctionValue,
    HeapDiff,
    diff_profiles,
    pair_sample_index,
)
from oomforensics.pprof.profile import Profile
from oomforensics.pprof.stacks import prepare_hashes

HUMAN_TOP_DEFAULT = 20


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "diff",
        help="compare two profiles or snapshots (numbers equal to go tool pprof -diff_base)",
        description=(
            "Compare snapshots. Each is a profile file (profile.proto, gzipped or not, or a Go "
            "heap profile in debug=1 text) or a snapshot directory holding heap.pb.gz and "
            "optionally heap.txt, goroutine.txt, manifest.json. The first is the base and the "
            "last the new one; with three or more, per-function trends (growth per hour and "
            "steadiness) rank the suspects. Profiles other than heap profiles (CPU, "
            "contention, goroutine) get pprof's table alone."
        ),
    )
    parser.add_argument("base", type=Path, metavar="BASE")
    parser.add_argument("new", type=Path, nargs="+", metavar="NEW")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--sample-index",
        default=None,
        metavar="X",
        help=(
            "a sample type (inuse_space, alloc_space, cpu, ...) or its number; default: as "
            "pprof, the profile's default sample type, else its last one"
        ),
    )
    parser.add_argument(
        "--base-mode",
        choices=[m.value for m in BaseMode],
        default=BaseMode.DIFF_BASE.value,
        help="pprof semantics: -diff_base (default) or -base",
    )
    parser.add_argument(
        "--top",
        type=_positive,
        metavar="N",
        help=f"show N functions (JSON: all by default; text: {HUMAN_TOP_DEFAULT})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    snapshots = load_snapshots([args.base, *args.new])
    base, new = snapshots[0].profile, snapshots[-1].profile
    mode = BaseMode(args.base_mode)
    index = pair_sample_index(base, new, args.sample_index)
    chosen = SampleIndexChoice(new.sample_types[index].type, _index_source(base, new, args))
    _print_names_as_pprof()
    missing = _not_analysable(snapshots)
    if missing is not None:
        # Any pair pprof diffs (CPU, contention, goroutine, a heap profile of one type) gets
        # pprof's table; the memory analysis reads inuse_space and inuse_objects.
        heap = diff_profiles(base, new, index, mode)
        names = _full_names(snapshots)
        if args.json:
            _dump(table_json(heap, chosen, missing), _top(heap.functions, args.top), names)
        else:
            from oomforensics.cli.render import render_table_only  # text only: 5 ms of imports

            print(render_table_only(snapshots[0], snapshots[-1], heap, chosen, args.top, missing))
        return 0
    # Imported here: the memory analysis is a tenth of a second of imports that the table of
    # a CPU or contention profile does not need.
    from oomforensics.analysis.comparison import compare_series, comparison_json

    try:
        comparison = compare_series(snapshots, chosen.name, mode)
    except ValueError as exc:  # trends need distinct capture times
        raise UsageError(str(exc)) from None
    if args.json:
        out = comparison_json(comparison, args.top, function_rows=False)  # written by _dump
        _dump(
            {"sampleIndex": out.pop("sampleIndex"), "sampleIndexSource": chosen.source, **out},
            _top(comparison.heap.functions, args.top),
            _full_names(snapshots),
        )
    else:
        from oomforensics.cli.render import render_comparison

        print(render_comparison(comparison, args.top or HUMAN_TOP_DEFAULT, chosen))
    return 0


def load_snapshots(paths: list[Path]) -> list[Snapshot]:
    """Every snapshot; when a core is idle, the last one (the new profile) read and decoded
    in a child process while this one decodes the others. Then a diff's decoding takes
    about 0.7 of the time of decoding one profile after the other here (each side runs
    about 1.4 times slower beside the other); threads gain nothing, most of the decoder
    holds the GIL. Whatever goes wrong in the child, the path is read here
    again, so the errors are those of reading one by one: the first failing path raises."""
    prefetch.finish()  # its thread: the child is forked from this process
    if not _child_pays(paths):
        return [_prepared(load_snapshot(path)) for path in paths]
    try:
        # The child hands its snapshot over in shared memory, its arrays' bytes out of band:
        # through a pipe, the 18 MB of a 100,000-sample profile took 90 ms more; pickled in
        # band, 30 ms more. Only the pages written are allocated; the parent's arrays are
        # views of them, so the mapping stays until the process ends.
        shared = mmap.mmap(-1, _SHARED_BYTES)
    except (OSError, ValueError):
        return [_prepared(load_snapshot(path)) for path in paths]
    child = os.fork()
    if child == 0:  # pragma: no cover - the child; measured by the tests through its result
        _decode_for_parent(paths[-1], shared)
    reaped = False
    try:
        snapshots = [_prepared(load_snapshot(path)) for path in paths[:-1]]
        reaped = _while_the_child_decodes(snapshots, child)
    except BaseException:
        os.kill(child, signal.SIGKILL)
        raise
    finally:
        if not reaped:
            os.waitpid(child, 0)
    last = _handed_over(shared)
    if last is None:
        last = _prepared(load_snapshot(paths[-1]))
    return [*snapshots, last]


def _while_the_child_decodes(snapshots: list[Snapshot], child: int) -> bool:
    """What the diff will need anyway and can do before the new profile is here (the child
    is often the later one, by up to 30 ms): the analysis' imports, the base's stack hashes,
    then what each of the base's names is (5 ms for 10,000), a slice at a time while the
    child is still at work. Whether the child has ended (and was waited for)."""
    if not snapshots or _not_analysable(snapshots) is not None:
        return False
    import oomforensics.analysis.comparison  # noqa: F401 - imported ahead, used in run()
    from oomforensics.analysis.frames import classify

    prepare_hashes(snapshots[0].profile.samples)
    names = snapshots[0].profile.samples.names
    for start in range(0, len(names), _NAMES_AT_A_TIME):
        if os.waitpid(child, os.WNOHANG)[0] == child:
            return True
        classify(names[start : start + _NAMES_AT_A_TIME])
    return False


_NAMES_AT_A_TIME = 1000  # half a millisecond of classifying between looks at the child


def _child_pays(paths: list[Path]) -> bool:
    return (
        len(paths) >= 2
        and hasattr(os, "fork")
        and threading.active_count() == 1  # forking a threaded process is not safe
        and _profile_size(paths[-1]) >= _CHILD_FROM
        and _idle_core()
    )


def _decode_for_parent(path: Path, shared: mmap.mmap) -> NoReturn:  # pragma: no cover
    """In the child: the snapshot into `shared`, its arrays' bytes first (each at a 64-byte
    boundary), then the pickle that refers to them, then where and how long that pickle is.
    Nothing if it fails to load or does not fit: the parent loads it itself."""
    try:
        buffers: list[pickle.PickleBuffer] = []
        pickled = pickle.dumps(
            _prepared(load_snapshot(path)), protocol=5, buffer_callback=buffers.append
        )
        at, spans = _HEADER, []
        for buffer in buffers:
            raw = buffer.raw()
            if at + raw.nbytes > len(shared):
                os._exit(0)
            shared[at : at + raw.nbytes] = raw
            spans.append((at, raw.nbytes))
            at = -(-(at + raw.nbytes) // _ALIGN) * _ALIGN
        header = pickle.dumps((pickled, spans), protocol=5)
        if at + len(header) <= len(shared):
            shared[at : at + len(header)] = header
            shared[:_HEADER] = at.to_bytes(8, "little") + len(header).to_bytes(8, "little")
    except BaseException:
        pass  # the parent reads the path itself and raises its error
    finally:
        os._exit(0)


def _handed_over(shared: mmap.mmap) -> Snapshot | None:
    """The child's snapshot, or None if it gave none (or what it wrote does not unpickle)."""
    at, size = int.from_bytes(shared[:8], "little"), int.from_bytes(shared[8:_HEADER], "little")
    if not size or at + size > len(shared):
        return None
    try:
        pickled, spans = pickle.loads(shared[at : at + size])
        view = memoryview(shared)
        last = pickle.loads(pickled, buffers=[view[start : start + n] for start, n in spans])
    except Exception:  # whatever it is, the parent decodes the profile itself
        return None
    return last if isinstance(last, Snapshot) else None


# Room for the child's snapshot: a profile decompresses to at most 256 MiB, and its arrays
# and pickle take about twice that. Larger ones are decoded in the parent again.
_SHARED_BYTES = 1 << 30
_HEADER = 16  # where the pickle is and its length, written last: zeros if the child gave nothing
_ALIGN = 64


# Below this size (the profile file, gzipped) a child costs more than it saves: forking and
# handing the result back take a few milliseconds, decoding a 2 KB profile less.
_CHILD_FROM = 256 * 1024


def _idle_core() -> bool:
    """Whether a core is free for the child now: fewer tasks runnable than cores, this one
    included (Linux's count in /proc/loadavg); elsewhere, on the last minute's load average.
    On a busy machine the child gains nothing (measured here at a load of 4.5 on 2 cores:
    1.46 s of CPU with it, 1.34 s without, and no shorter in wall time), so it is not started.
    The count of now, not the minute's average: after a few seconds of a build on both cores,
    the average stays above 1.5 for a minute while the cores are idle again."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    running = _runnable_now()
    if running is not None:
        return running < cores
    return os.getloadavg()[0] < cores - 0.5


def _runnable_now() -> int | None:
    """How many tasks are runnable at this moment, this one included; None if not known."""
    try:
        fields = Path("/proc/loadavg").read_bytes().split()
        return int(fields[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _profile_size(path: Path) -> int:
    """The size of the profile a path names (a snapshot directory's heap profile), 0 if none."""
    try:
        return (path / HEAP_PROFILE if path.is_dir() else path).stat().st_size
    except OSError:
        return 0  # read in this process, which reports the error


def _prepared(snapshot: Snapshot) -> Snapshot:
    """The work on each profile alone, done in the process that decoded it (so the two run
    side by side): its pprof table at its own default sample index (a diff's, unless the
    two profiles name different defaults), kept with the profile. (What each suspect owner
    holds is cheaper later, from the stack groups of base and new together.)"""
    profile = snapshot.profile
    profile.samples.function_table(profile.sample_index(None))
    return snapshot


def _index_source(base: Profile, new: Profile, args: argparse.Namespace) -> str:
    if args.sample_index is not None:
        return "requested"
    names = [st.type for st in new.sample_types]
    default = new.default_sample_type or base.default_sample_type
    return "default_sample_type" if default in names else "last"


def _not_analysable(snapshots: list[Snapshot]) -> str | None:
    """Why the memory analysis cannot run on these profiles, or None when it can."""
    for snapshot in snapshots:
        types = [st.type for st in snapshot.profile.sample_types]
        if not {"inuse_space", "inuse_objects"} <= set(types):
            return (
                f"no memory analysis: it reads heap profiles' inuse_space and inuse_objects, "
                f"and {snapshot.source} has {', '.join(types) or 'no sample types'}"
            )
    return None


def _full_names(snapshots: list[Snapshot]) -> dict[str, str]:
    names: dict[str, str] = {}
    for snapshot in snapshots:
        names.update(snapshot.profile.full_names)
    return names


def _top(functions: Sequence[FunctionValue], top: int | None) -> Sequence[FunctionValue]:
    return functions if top is None else functions[:top]


def table_json(heap: HeapDiff, chosen: SampleIndexChoice, missing: str) -> dict[str, Any]:
    """The JSON of a diff without the memory analysis; "functions" is written by `_dump`."""
    return {
        "sampleIndex": heap.sample_index,
        "sampleIndexSource": chosen.source,
        "unit": heap.unit,
        "baseMode": heap.mode.value,
        "total": {"base": heap.base_total, "new": heap.new_total},
        "functions": [],
        "analysis": missing,
    }


def _dump(
    value: dict[str, Any], functions: Sequence[FunctionValue], full_names: Mapping[str, str]
) -> None:
    # One write of the whole text: json.dump would write it piece by piece (100,000 writes for
    # a large diff, a third of a second).
    sys.stdout.write(json_text(value, functions, full_names) + "\n")


def function_rows(
    functions: Sequence[FunctionValue], full_names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The "functions" of the JSON: "name" is pprof's; the function's own name, when pprof
    shortens it, is "fullName" beside it."""
    rows: list[dict[str, Any]] = []
    for f in functions:
        row: dict[str, Any] = {"name": f.name, "flat": f.flat, "cum": f.cum}
        full = full_names.get(f.name)
        if full is not None:
            row["fullName"] = full
        rows.append(row)
    return rows


def json_text(
    value: dict[str, Any], functions: Sequence[FunctionValue], full_names: Mapping[str, str]
) -> str:
    """`json.dumps` (indent=2) of `value` with `function_rows(functions, full_names)` as its
    "functions", character for character, faster.

    With an indent, json encodes in pure Python, a generator per container, and a large diff
    has 10,000 function rows: those are written here from one template per row instead
    (10,204 rows, with the row objects they no longer need: 13-16 -> 5 ms), and the rest by
    json.dumps.
    """
    marker = json.dumps("@functions@")
    outline = json.dumps({**value, "functions": "@functions@"}, indent=2)
    if outline.count(marker) != 1:  # the marker's text occurs elsewhere too
        return json.dumps({**value, "functions": function_rows(functions, full_names)}, indent=2)
    return outline.replace(marker, _rows_text(functions, full_names))


# A row as json.dumps(indent=2) writes it as a top-level key's value. The figures are Python
# ints ("%d" is their repr); names are escaped by json's own C function.
_ROW = '{\n      "name": %s,\n      "flat": %d,\n      "cum": %d\n    }'
_ROW_FULL_NAME = (
    '{\n      "name": %s,\n      "flat": %d,\n      "cum": %d,\n      "fullName": %s\n    }'
)


def _rows_text(functions: Sequence[FunctionValue], full_names: Mapping[str, str]) -> str:
    if not functions:
        return "[]"
    escape = json.encoder.encode_basestring_ascii
    full = full_names.get
    rows = [
        _ROW % (escape(f.name), f.flat, f.cum)
        if (name := full(f.name)) is None
        else _ROW_FULL_NAME % (escape(f.name), f.flat, f.cum, escape(name))
        for f in functions
    ]
    return "[\n    " + ",\n    ".join(rows) + "\n  ]"


def _print_names_as_pprof() -> None:
    # Names hold what the profile's bytes hold, invalid UTF-8 as lone surrogates: print those
    # back as the same bytes, as pprof prints them, instead of failing on them.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="surrogateescape")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
