"""The page: one self-contained HTML file whose markers and frames match the model, with
everything from profiles, manifests and folders escaped."""

import re
from dataclasses import replace
from html.parser import HTMLParser

from oomforensics.report.model import build_report
from oomforensics.report.page import render_report
from tests.unit.report.test_model import OOM, SNAPSHOTS, T0, evidence, snap

MiB = 2**20


class Elements(HTMLParser):
    """Every start tag with its attributes; fails on nothing, records what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def with_attribute(self, name):
        return [attrs for _, attrs in self.tags if name in attrs]


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def test_one_marker_per_snapshot_one_box_per_frame_and_the_oom_kill():
    report = build_report([evidence()], generated_at=T0)
    html = render_report(report)
    page = parse(html)
    markers = page.with_attribute("data-snapshot")
    assert [m["data-reason"] for m in markers] == [
        "baseline",
        "periodic",
        "threshold-80",
        "threshold-95",
    ]
    assert len(page.with_attribute("data-frame")) == len(report.runs[0].flame.frames)
    assert len(page.with_attribute("data-oom-kill")) == 1
    thresholds = [t["data-threshold"] for t in page.with_attribute("data-threshold")]
    assert thresholds == ["80", "90", "95"]
    for words in ("Memory accounting", "Top growth", "Findings", "Verdict", "Diff flame graph"):
        assert words in html
    assert "main.cacheResponse" in html and "time (UTC, 2026-11-26)" in html


def test_the_page_fetches_nothing():
    html = render_report(build_report([evidence()], generated_at=T0))
    page = parse(html)
    for tag, attrs in page.tags:
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name)
            assert value is None or value.startswith(("#", "data:")), (tag, attrs)
    assert not re.search(r"https?://", html.replace("http://www.w3.org", ""))
    assert "@import" not in html and "url(" not in html


def test_hostile_names_are_escaped_everywhere():
    bad = '<img src=x onerror="alert(1)">&amp;'
    snapshots = [
        snap(0, "baseline", 40 * MiB, 0, pod=bad, image=bad),
        snap(60, "periodic", 60 * MiB, 30 * MiB, pod=bad, image=bad),
    ]
    record = replace(OOM, evidence=bad)
    report = build_report(
        [evidence(snapshots, records={"oom.json": record.to_bytes()})],
        generated_at=T0,
    )
    html = render_report(report)
    assert "<img" not in html and 'onerror="' not in html
    # markupsafe's spelling of the escaped name: &lt;img src=x onerror=&#34;alert(1)&#34;&gt;...
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;amp;" in html
    assert not [t for t, _ in parse(html).tags if t == "img"]


def test_several_runs_get_a_selector_an_overview_and_a_section_each():
    other = [
        snap(0, "baseline", 10 * MiB, 0, pod="worker-1", container="worker"),
        snap(30, "periodic", 12 * MiB, MiB, pod="worker-1", container="worker"),
    ]
    report = build_report([evidence(), evidence(other, records={})], generated_at=T0)
    page = parse(render_report(report))
    sections = [a for t, a in page.tags if t == "section" and "data-run" in a]
    assert [s["id"] for s in sections] == ["run-1", "run-2"]
    options = [a.get("value") for t, a in page.tags if t == "option"]
    assert options == ["", "run-1", "run-2"]
    assert len(page.with_attribute("data-snapshot")) == len(SNAPSHOTS) + 2
    assert len(page.with_attribute("data-timeline")) == 2
