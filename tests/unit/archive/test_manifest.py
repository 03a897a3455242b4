import hashlib
import json

import pytest

from oomforensics.archive import (
    HEAP_PROFILE,
    FileDigest,
    InvalidManifest,
    Manifest,
    build_manifest,
)
from tests.unit.archive.factory import snapshot


def test_build_manifest_records_sha256_and_size_of_every_file():
    snap = snapshot(heap_inuse=123)
    for name, data in snap.files.items():
        assert snap.manifest.files[name] == FileDigest(hashlib.sha256(data).hexdigest(), len(data))
    assert snap.manifest.key == snap.key
    assert snap.manifest.tool_name == "oomforensics"


def test_manifest_round_trips_through_json():
    for snap in (snapshot(heap_inuse=123), snapshot(reason="baseline")):
        data = snap.manifest.to_json()
        assert Manifest.from_json(data) == snap.manifest
        assert Manifest.from_json(data).to_json() == data  # deterministic bytes


def test_manifest_json_speaks_the_documented_field_names():
    doc = json.loads(snapshot(heap_inuse=123).manifest.to_json())
    assert set(doc) == {
        "schemaVersion", "namespace", "investigation", "pod", "podUid", "node", "image",
        "container", "run", "capturedAt", "reason", "workingSetBytes", "limitBytes",
        "rssBytes", "memstats", "files", "tool",
    }  # fmt: skip
    assert doc["capturedAt"] == "2026-11-26T03:00:00.000Z"
    assert doc["run"] == 0
    assert doc["memstats"] == {"HeapInuse": 123, "HeapSys": 246}
    assert set(doc["files"][HEAP_PROFILE]) == {"sha256", "size"}
    assert doc["tool"]["name"] == "oomforensics"
    # optional fields are left out rather than written as null
    assert "memstats" not in json.loads(snapshot().manifest.to_json())


def test_a_container_without_limit_has_a_null_limit():
    snap = snapshot()
    manifest = build_manifest(snap.key, snap.files, working_set_bytes=1, limit_bytes=None)
    assert json.loads(manifest.to_json())["limitBytes"] is None
    assert Manifest.from_json(manifest.to_json()).limit_bytes is None


def test_heap_size_comes_from_memstats_else_from_the_profile():
    assert snapshot(heap_inuse=5 * 2**20).manifest.heap_bytes == 5 * 2**20
    snap = snapshot()
    assert snap.manifest.heap_bytes == len(snap.files[HEAP_PROFILE])


def mutated(*path, value=...):
    """The JSON of a good manifest with the field at `path` set to `value` (... deletes it)."""
    doc = json.loads(snapshot(heap_inuse=1).manifest.to_json())
    *parents, last = path
    target = doc
    for part in parents:
        target = target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must hold a JSON object"),
        (mutated("pod"), "missing field pod"),
        (mutated("run", value="3"), "run must be an integer"),
        (mutated("run", value=True), "run must be an integer"),
        (mutated("workingSetBytes", value=-1), "working_set_bytes must be an integer >= 0"),
        (mutated("capturedAt", value="yesterday"), "capturedAt 'yesterday' is not ISO 8601"),
        (mutated("capturedAt", value="2026-11-26T03:00:00"), "has no time zone"),
        (mutated("reason", value="pre-oom"), "reserved"),
        (mutated("pod", value="a/b"), "must not contain '/'"),
        (mutated("files", value={}), "at least one snapshot file"),
        (mutated("files", "heap.txt", "sha256", value="abc"), "64 lowercase hex"),
        (mutated("files", "heap.txt", "size"), r"missing field files\['heap.txt'\].size"),
        (
            mutated("files", "manifest.json", value={"sha256": "0" * 64, "size": 1}),
            "manifest itself",
        ),
        (mutated("files", "../x", value={"sha256": "0" * 64, "size": 1}), "plain name"),
        (mutated("memstats", "HeapInuse", value="lots"), "memstats"),
        (mutated("tool"), "missing field tool"),
        (mutated("schemaVersion", value=2), "schemaVersion 2"),
    ],
)
def test_a_bad_manifest_is_refused_with_a_clear_message(data, message):
    with pytest.raises(InvalidManifest, match=message):
        Manifest.from_json(data)
