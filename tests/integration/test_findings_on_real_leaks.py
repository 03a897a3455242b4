"""The forensic verdict on the real leaking Go service: for each leak mechanism, the findings
and the first suspect name the true cause, and the steady control raises nothing."""

import json

import pytest

from oomforensics.cli.main import main

pytestmark = pytest.mark.gotool

LEAK_KINDS = {"heap-growth", "goroutine-leak", "non-heap-growth", "unclosed-response-body"}


@pytest.fixture
def verdict(mode_snapshots, capsys) -> dict:
    s = mode_snapshots
    assert main(["diff", "--json", str(s.base), str(s.middle), str(s.new)]) == 0
    return json.loads(capsys.readouterr().out)


def kinds(result: dict) -> set[str]:
    return {f["kind"] for f in result["findings"]}


def test_each_mode_is_named_for_what_it_is(mode_snapshots, verdict):
    mode = mode_snapshots.mode
    found = kinds(verdict)
    first = verdict["suspects"][0]["function"] if verdict["suspects"] else None
    explain = f"{mode}: findings {found}, suspects {verdict['suspects'][:2]}"

    if mode == "steady":
        assert found == {"no-growth"}, explain
        assert verdict["leakSuspected"] is False and verdict["suspects"] == []
        assert verdict["verdict"].startswith("No leak suspected")
        return

    assert verdict["leakSuspected"] is True, explain
    expected = {
        "tls403": ("unclosed-response-body", "main.fetchReport"),
        "mapcache": ("heap-growth", "main.cacheResponse"),
        "goroutines": ("goroutine-leak", "main.worker"),
        "mmap": ("non-heap-growth", "main.mapNative"),
        "bufferlog": ("heap-growth", "main.appendAudit"),
    }[mode]
    assert expected[0] in found, explain
    assert first == expected[1], explain
    assert expected[1] in verdict["verdict"], verdict["verdict"]


@pytest.mark.parametrize("mode_snapshots", ["mmap"], indirect=True)
def test_native_memory_is_not_called_heap_growth(mode_snapshots, verdict):
    assert "heap-growth" not in kinds(verdict)
    evidence = next(f for f in verdict["findings"] if f["kind"] == "non-heap-growth")["evidence"]
    assert evidence["bytes"] >= evidence["threshold"] > 0


@pytest.mark.parametrize("mode_snapshots", ["bufferlog"], indirect=True)
def test_leak_site_not_allocator(mode_snapshots, verdict):
    # The buffer log grows under bytes.growSlice; the cause is the caller further up.
    suspect = verdict["suspects"][0]
    assert suspect["path"][0] == "bytes.growSlice"
    assert suspect["path"][-1] == "main.appendAudit"
    assert "fmt.Fprintf" in suspect["path"]
    assert suspect["bytes"] > 0 and suspect["mechanism"] is None


@pytest.mark.parametrize("mode_snapshots", ["tls403"], indirect=True)
def test_classic_leak_names_the_mechanism_and_the_fix(mode_snapshots, verdict):
    finding = next(f for f in verdict["findings"] if f["kind"] == "unclosed-response-body")
    assert "resp.Body" in finding["message"] and "error statuses" in finding["message"]
    assert finding["evidence"]["readLoopGoroutines"] >= 2
    assert finding["evidence"]["writeLoopGoroutines"] >= 2
    growth = {g["function"]: g["count"] for g in verdict["goroutines"]["growth"]}
    assert growth["net/http.(*persistConn).readLoop"] >= 2
    assert any("crypto/tls" in f or "net/http" in f for f in verdict["suspects"][0]["path"])


@pytest.mark.parametrize("mode_snapshots", ["goroutines"], indirect=True)
def test_goroutine_growth_is_named_by_application_frame(mode_snapshots, verdict):
    growth = verdict["goroutines"]["growth"]
    assert growth[0]["function"] == "main.worker" and growth[0]["count"] > 10
    leak = next(f for f in verdict["findings"] if f["kind"] == "goroutine-leak")
    assert leak["evidence"]["stackBytes"] > 0


def test_memory_accounting_adds_up(mode_snapshots, verdict):
    for side in ("base", "new"):
        m = verdict["memory"][side]
        assert m["heapIdleUnreleased"] == m["HeapIdle"] - m["HeapReleased"]
        assert m["notGoRuntime"] == m["rssBytes"] - (m["Sys"] - m["HeapReleased"])
        assert m["runtimeStructures"] == sum(
            m[k] for k in ("MSpanSys", "MCacheSys", "BuckHashSys", "GCSys", "OtherSys")
        )


def test_three_snapshots_give_a_trend(mode_snapshots, verdict):
    trend = verdict["trend"]
    assert trend["seconds"] > 0
    if mode_snapshots.mode in ("mapcache", "bufferlog", "goroutines"):
        top = trend["functions"][0]
        assert top["perHour"] > 0 and top["last"] > top["first"]
