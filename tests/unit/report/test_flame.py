"""The diff flame graph from two real-format heap profiles whose stacks and bytes we choose."""

import pytest

from oomforensics.pprof.profile import Profile, parse_profile
from oomforensics.report.flame import ROOT_NAME, diff_flame_graph
from oomforensics.report.flamehtml import render_flame
from tests.support.profiles import ProfileBuilder

KiB, MiB = 2**10, 2**20
SERVE = ["net/http.(*conn).serve"]
HANDLE = ["main.handle"]


def profile(*samples: tuple[list[str], int]) -> Profile:
    """Stacks given root first (as a flame graph reads), bytes of inuse_space each."""
    builder = ProfileBuilder()
    for root_first, size in samples:
        builder.sample([[name] for name in reversed(root_first)], 1, size, 1, size)
    return parse_profile(builder.serialize())


def frames_by_path(graph):
    """{(name at depth 1, ..., name): frame}, rebuilt from the flat depth-first order."""
    out, path = {}, []
    for frame in graph.frames:
        path = [*path[: frame.depth - 1], frame.name] if frame.depth else []
        out[tuple(path)] = frame
    return out


def test_widths_are_the_growth_in_bytes_of_each_call_path():
    base = profile((["main.main", "main.loadConfig"], 10 * MiB))
    new = profile(
        (["main.main", "main.loadConfig"], 10 * MiB),
        ([*SERVE, *HANDLE, "main.cacheResponse"], 6 * MiB),
        ([*SERVE, *HANDLE, "bytes.growSlice"], 2 * MiB),
        ([*SERVE, "bufio.NewReaderSize"], 1 * MiB),
    )
    graph = diff_flame_graph(base, new)
    frames = frames_by_path(graph)

    assert graph.root.name == ROOT_NAME and graph.total == 9 * MiB
    assert graph.root.net == 9 * MiB == graph.new_total - graph.base_total
    assert frames[("net/http.(*conn).serve",)].width == 9 * MiB
    assert frames[("net/http.(*conn).serve", "main.handle")].width == 8 * MiB
    leaf = frames[("net/http.(*conn).serve", "main.handle", "main.cacheResponse")]
    assert (leaf.width, leaf.grown, leaf.shrunk, leaf.self_net) == (6 * MiB, 6 * MiB, 0, 6 * MiB)
    assert ("main.main",) not in frames  # unchanged stacks take no room
    assert graph.pruned_frames == 0


def test_children_sit_inside_their_parent_widest_first():
    base = profile()
    new = profile(
        (["a.root", "a.small"], 1 * MiB), (["a.root", "a.big"], 3 * MiB), (["b.other"], 2 * MiB)
    )
    graph = diff_flame_graph(base, new)
    frames = frames_by_path(graph)
    root = frames[("a.root",)]
    big, small = frames[("a.root", "a.big")], frames[("a.root", "a.small")]
    assert [f.name for f in graph.frames] == [ROOT_NAME, "a.root", "a.big", "a.small", "b.other"]
    assert root.start == 0 and big.start == 0 and small.start == 3 * MiB
    assert frames[("b.other",)].start == 4 * MiB
    for frame in (big, small):
        assert root.start <= frame.start and frame.start + frame.width <= root.start + root.width


def test_growth_and_shrinkage_are_kept_apart():
    base = profile((["main.handle", "main.cache"], 4 * MiB), (["main.handle", "main.old"], 3 * MiB))
    new = profile((["main.handle", "main.cache"], 9 * MiB), (["main.handle", "main.old"], 1 * MiB))
    frames = frames_by_path(diff_flame_graph(base, new))
    handle = frames[("main.handle",)]
    assert (handle.grown, handle.shrunk, handle.net) == (5 * MiB, 2 * MiB, 3 * MiB)
    assert handle.width == 7 * MiB
    assert frames[("main.handle", "main.old")].net == -2 * MiB
    html = render_flame(diff_flame_graph(base, new), "run-1")
    assert "hsl(212," in html and "hsl(6," in html  # blue for shrinkage, red for growth


def test_narrow_frames_are_pruned_and_counted():
    base = profile()
    new = profile(
        (["main.big"], 1000 * KiB),
        (["main.tiny", "main.tinier"], 4 * KiB),
        (["main.edge"], 5 * KiB),
    )
    graph = diff_flame_graph(base, new, min_share=0.005)  # 0.5 % of 1009 KiB is 5.05 KiB
    names = [f.name for f in graph.frames]
    assert names == [ROOT_NAME, "main.big"]
    assert graph.pruned_frames == 3  # main.tiny with main.tinier, and main.edge
    assert graph.total == 1009 * KiB  # the pruned bytes still count in their parent
    kept = diff_flame_graph(base, new, min_share=0)
    assert len(kept.frames) == 5 and kept.pruned_frames == 0


def test_recursion_gets_a_frame_per_level():
    new = profile((["main.walk", "main.walk", "main.walk"], 3 * MiB))
    graph = diff_flame_graph(profile(), new)
    assert [(f.name, f.depth) for f in graph.frames] == [
        (ROOT_NAME, 0),
        ("main.walk", 1),
        ("main.walk", 2),
        ("main.walk", 3),
    ]


def test_the_rendered_boxes_carry_the_model_and_escape_function_names():
    hostile = 'main.(*Cache[go.shape.int,<script>alert("x")</script>]).Put&co'
    graph = diff_flame_graph(profile(), profile(([hostile, "main.inner"], 2 * MiB)))
    html = render_flame(graph, "run-1")
    assert html.count("data-frame ") == len(graph.frames) == 3
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp;co" in html
    assert f'data-width="{2 * MiB}"' in html and 'data-depth="2"' in html


def test_an_empty_change_renders_a_note():
    same = profile((["main.main"], MiB))
    graph = diff_flame_graph(same, same)
    assert graph.total == 0 and len(graph.frames) == 1
    assert "No call stack changed" in render_flame(graph, "run-1")


def test_only_inuse_space_is_supported():
    with pytest.raises(ValueError, match="inuse_space"):
        diff_flame_graph(profile(), profile(), sample_index="alloc_space")


def test_past_max_frames_the_pruning_share_doubles_until_the_graph_fits():
    new = profile(*(([f"main.f{i:02d}", "main.leaf"], MiB + i) for i in range(40)))
    full = diff_flame_graph(profile(), new, min_share=0.005)
    assert len(full.frames) == 81 and full.min_share == 0.005
    capped = diff_flame_graph(profile(), new, min_share=0.005, max_frames=40)
    assert len(capped.frames) <= 40 and capped.min_share > 0.005
    assert capped.pruned_frames == 81 - len(capped.frames)
    assert capped.total == full.total
