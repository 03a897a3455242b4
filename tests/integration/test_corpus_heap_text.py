"""Go heap profiles in debug=1 text (`/debug/pprof/heap?debug=1`, saved with curl): read as
`go tool pprof` reads them, and a pair of them alone gives the table, accounting and verdict.

Two sources: the corpus's Go heap text (addresses only, no symbols), diffed with itself and
with every protobuf heap profile pprof diffs it with; and texts written by a real Go program
(below) together with the protobuf profile of the same moment (the garbage collector off, so
both forms hold the same records).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from oomforensics.cli.main import main
from oomforensics.pprof.diff import diff_profiles
from oomforensics.pprof.heaptext import parse_heap_text
from oomforensics.pprof.legacy import heap_text_profile
from tests.support.gopprof import (
    CorpusFile,
    corpus,
    corpus_available,
    go_binary,
    pair_id,
    pair_unit,
    pprof_diff,
    pprof_raw_samples,
    prefetch,
)

pytestmark = [pytest.mark.gotool]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code = main(["diff", "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def rows(out: dict[str, object]) -> list[tuple[str, int, int]]:
    functions = out["functions"]
    assert isinstance(functions, list)
    return [(f["name"], f["flat"], f["cum"]) for f in functions]


# --- the corpus ------------------------------------------------------------------------------


def text_pairs() -> list[tuple[CorpusFile, CorpusFile]]:
    """Each Go heap text with itself, and with each protobuf profile of the same sample types
    (both ways round): pprof diffs a text with a protobuf profile as with another text."""
    if not corpus_available():
        return []
    texts = [f for f in corpus() if f.go_heap_text]
    pairs = [(t, t) for t in texts]
    for text in texts:
        for other in corpus():
            if other.protobuf and other.pprof_reads_it and other.sample_types == text.sample_types:
                pairs += [(text, other), (other, text)]
    return pairs


TEXT_PAIRS = text_pairs()


def call(base: CorpusFile, new: CorpusFile) -> tuple[Path, Path, None, str, bool, str]:
    return (base.path, new.path, None, "diff_base", True, pair_unit(base, new))


@pytest.mark.skipif(not corpus_available(), reason="no ../shared/pprof-corpus")
def test_the_corpus_has_a_go_heap_text() -> None:
    assert [f.name for f in corpus() if f.go_heap_text] == ["pprof.gobench.heap"]
    assert len(TEXT_PAIRS) == 1 + 2 * 21


@pytest.mark.parametrize("pair", TEXT_PAIRS, ids=pair_id)
def test_corpus_heap_text_pairs_diff_exactly_like_pprof(
    pair: tuple[CorpusFile, CorpusFile], capsys: pytest.CaptureFixture[str]
) -> None:
    if pair == TEXT_PAIRS[0]:
        prefetch(call(a, b) for a, b in TEXT_PAIRS)
    base, new = pair
    theirs = pprof_diff(*call(base, new))
    ours = run_cli(capsys, str(base.path), str(new.path))
    assert ours["sampleIndex"] == theirs.sample_type
    assert rows(ours) == [(r.name, r.flat, r.cum) for r in theirs.rows]


@pytest.mark.skipif(not corpus_available(), reason="no ../shared/pprof-corpus")
def test_corpus_heap_text_samples_are_unsampled_like_pprof() -> None:
    (text,) = [f for f in corpus() if f.go_heap_text]
    assert samples_of(text.path) == pprof_raw_samples(text.path)


def samples_of(path: Path) -> list[tuple[tuple[int, ...], int]]:
    samples = heap_text_profile(parse_heap_text(path.read_bytes()), symbols=False).samples
    return [(tuple(samples.values[i].tolist()), len(samples.stack(i))) for i in range(len(samples))]


# --- texts written by a real Go program ------------------------------------------------------

PROGRAM = """
package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
)

var keep [][]byte
var cache = map[int]*entry{}

type entry struct{ buf []byte }

type sized interface{ Size() int }
type blob struct{ n int }

func (b blob) Size() int { return b.n }

//go:noinline
func hold[T sized](v T) []byte { return make([]byte, v.Size()) }

// newBuf is inlined into grow: debug=1 text prints both frames at one address.
func newBuf(size int) []byte { return make([]byte, size) }

//go:noinline
func grow(n, size int) {
	for i := 0; i < n; i++ {
		keep = append(keep, newBuf(size))
	}
}

//go:noinline
func fill(n int) {
	for i := 0; i < n; i++ {
		cache[len(cache)] = &entry{buf: make([]byte, 100+i%900)}
	}
}

// write saves the heap profile twice, as protobuf and as debug=1 text: with the collector
// off nothing is published in between, so both hold the same records.
func write(dir, name string) {
	runtime.GC()
	runtime.GC()
	for level, ext := range []string{".pb.gz", ".txt"} {
		f, err := os.Create(dir + "/" + name + ext)
		if err != nil {
			panic(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, level); err != nil {
			panic(err)
		}
		f.Close()
	}
}

func main() {
	runtime.MemProfileRate = 4096 // sampled, so that unsampling matters
	debug.SetGCPercent(-1)
	dir := os.Args[1]
	grow(200, 1<<12)
	fill(300)
	keep = append(keep, hold(blob{1 << 16}))
	write(dir, "base")
	grow(400, 1<<13)
	fill(600)
	keep = append(keep, hold(blob{1 << 18}))
	write(dir, "new")
}
"""


@dataclass(frozen=True)
class Written:
    base_text: Path
    new_text: Path
    base_proto: Path
    new_proto: Path


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    source = tmp_path_factory.mktemp("heapwriter")
    (source / "main.go").write_text(PROGRAM)
    (source / "go.mod").write_text("module heapwriter\n\ngo 1.26\n")
    binary = source / "heapwriter"
    subprocess.run([go_binary(), "build", "-o", str(binary), "."], cwd=source, check=True)
    out = tmp_path_factory.mktemp("heapprofiles")
    subprocess.run([str(binary), str(out)], check=True, timeout=60)
    return Written(out / "base.txt", out / "new.txt", out / "base.pb.gz", out / "new.pb.gz")


def test_written_texts_are_unsampled_like_pprof(written: Written) -> None:
    for text in (written.base_text, written.new_text):
        assert samples_of(text) == pprof_raw_samples(text)


@pytest.mark.parametrize(
    "sample_index", [None, "inuse_objects", "alloc_space", "alloc_objects"], ids=str
)
def test_written_texts_diff_exactly_like_pprof_reading_them(
    written: Written, sample_index: str | None
) -> None:
    # pprof reads the addresses, not the runtime's symbol lines: without the binary every frame
    # is <unknown>. Read the same way, our table is pprof's to the byte, names included.
    unit = "B" if sample_index in (None, "alloc_space") else ""
    theirs = pprof_diff(written.base_text, written.new_text, sample_index, "diff_base", True, unit)
    base, new = (
        heap_text_profile(parse_heap_text(p.read_bytes()), symbols=False)
        for p in (written.base_text, written.new_text)
    )
    ours = diff_profiles(base, new, sample_index)
    assert ours.sample_index == theirs.sample_type
    assert [(f.name, f.flat, f.cum) for f in ours.functions] == [
        (r.name, r.flat, r.cum) for r in theirs.rows
    ]


_SHAPES = re.compile(r"\[go\.shape\.[^\]]*\]|\[\.\.\.\]")


@pytest.mark.parametrize("sample_index", ["inuse_space", "inuse_objects"])
def test_named_from_their_symbol_lines_texts_diff_like_the_protobuf_of_the_moment(
    written: Written, sample_index: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the runtime's own symbol lines, a text pair's table is the table pprof gives
    for the protobuf profiles written at the same moments. The one difference is the runtime's:
    debug=1 text names a generic instantiation `F[...]`, protobuf spells out its shapes."""
    unit = "B" if sample_index == "inuse_space" else ""
    theirs = pprof_diff(
        written.base_proto, written.new_proto, sample_index, "diff_base", True, unit
    )
    ours = run_cli(
        capsys, "--sample-index", sample_index, str(written.base_text), str(written.new_text)
    )
    assert {"main.newBuf", "main.grow", "main.fill"} <= {r.name for r in theirs.rows}
    assert rows(ours) == [(_SHAPES.sub("[...]", r.name), r.flat, r.cum) for r in theirs.rows]
    assert "main.hold[...]" in {name for name, _, _ in rows(ours)}


def test_a_pair_of_texts_alone_gives_table_accounting_and_verdict(
    written: Written, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_cli(capsys, str(written.base_text), str(written.new_text))
    assert out["sampleIndex"] == "inuse_space" and out["sampleIndexSource"] == "last"
    memory = out["memory"]
    assert isinstance(memory, dict)
    assert memory["new"]["HeapInuse"] > memory["base"]["HeapInuse"]  # from the MemStats block
    assert isinstance(out["verdict"], str) and out["verdict"]
    assert main(["diff", str(written.base_text), str(written.new_text)]) == 0
    text = capsys.readouterr().out
    assert "where the memory is" in text and "HeapInuse" in text and "verdict:" in text
