"""Real profiles from other projects (the shared corpus, read in place): every pair that
`go tool pprof` diffs is diffed by `oomforensics diff` with pprof's numbers and names, and
every file pprof refuses, or that is in a legacy format we do not read, is refused in one line.

The pairs are built from the corpus manifest: protobuf profiles pprof reads, with the same
sample types (heap, CPU, contention, goroutine, wall-clock: the table is the same arithmetic).
pprof runs once per pair for the session, two at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from oomforensics.cli.main import main
from tests.support.gopprof import (
    CorpusFile,
    PprofRefused,
    corpus,
    corpus_available,
    pair_id,
    pair_unit,
    pprof_diff,
    prefetch,
    protobuf_pairs,
)

pytestmark = [
    pytest.mark.gotool,
    pytest.mark.skipif(not corpus_available(), reason="no ../shared/pprof-corpus"),
]

PAIRS = protobuf_pairs()


def pprof_call(base: CorpusFile, new: CorpusFile) -> tuple[Path, Path, None, str, bool, str]:
    # pprof's default sample index; values printed in the profile's own unit, whole numbers.
    return (base.path, new.path, None, "diff_base", True, pair_unit(base, new))


@pytest.fixture(scope="module", autouse=True)
def _pprof_outputs() -> Iterator[None]:
    prefetch(pprof_call(a, b) for a, b in PAIRS)
    yield


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_corpus_has_the_pairs_the_issue_counted() -> None:
    # 238 pairs pprof can be asked to diff, of five kinds of profile.
    assert len(PAIRS) == 238
    kinds = {a.sample_types for a, _ in PAIRS}
    assert {"contentions/count delay/nanoseconds", "samples/count cpu/nanoseconds"} <= kinds


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_every_pair_pprof_diffs_is_diffed_exactly(
    pair: tuple[CorpusFile, CorpusFile], capsys: pytest.CaptureFixture[str]
) -> None:
    base, new = pair
    try:
        theirs = pprof_diff(*pprof_call(base, new))
    except PprofRefused as refusal:
        # pprof refuses the pair (period types of different kinds): so do we, in one line.
        code, out, err = run_cli(capsys, "diff", "--json", str(base.path), str(new.path))
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and "not comparable" in err, (err, str(refusal))
        return
    code, out, err = run_cli(capsys, "diff", "--json", str(base.path), str(new.path))
    assert code == 0, err
    ours = json.loads(out)
    assert ours["sampleIndex"] == theirs.sample_type  # pprof prints "Type: <sample index>"
    assert [(f["name"], f["flat"], f["cum"]) for f in ours["functions"]] == [
        (r.name, r.flat, r.cum) for r in theirs.rows
    ]
    heap = {"inuse_space", "inuse_objects"} <= {t.split("/")[0] for t in new.sample_types.split()}
    # The memory analysis runs for heap profiles only; the others get the table and a reason.
    assert ("verdict" in ours) == heap
    assert ("analysis" in ours) == (not heap)


def refused_files() -> list[CorpusFile]:
    if not corpus_available():
        return []
    return [f for f in corpus() if not f.pprof_reads_it or (not f.protobuf and not f.go_heap_text)]


# What the one line names, per file: the format, or what pprof says is wrong.
FORMAT_NAMED = {
    "gpn.goroutine.1.debug1.txt": "goroutine profile in debug=1 text form",
    "gpn.goroutine.2.debug2.txt": "goroutine dump (debug=2 text)",
    "pprof.cppbench.heap": "tcmalloc (C++) heap profile in legacy text form",
    "pprof.gobench.cpu": "CPU profile in the legacy binary format",
    "pprof.java.heap": "Java heap profile in legacy text form",
    "pyro.dotnet-pprof-3.pb.gz": "malformed profile: found function with reserved ID=0",
}


def test_the_refused_files_are_the_ones_named() -> None:
    assert {f.name for f in refused_files()} == set(FORMAT_NAMED)


@pytest.mark.parametrize("file", refused_files(), ids=lambda f: f.name)
def test_refused_inputs_get_one_line_naming_the_format(
    file: CorpusFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(file.path)
    for argv in (["diff", path, path], ["diff", "--json", path, path]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 1 and out == ""
        assert err.count("\n") == 1, err  # one line, no traceback
        assert err.startswith(f"oomforensics: error: {file.path}: ")
        assert FORMAT_NAMED[file.name] in err
        if file.pprof_error:  # pprof refuses it too
            with pytest.raises(PprofRefused):
                pprof_diff(file.path, file.path)
