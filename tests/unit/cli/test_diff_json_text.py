"""`diff --json` writes exactly what json.dumps(indent=2) writes, by its faster path too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oomforensics.cli.diff import json_text

ROWS = [
    {"name": "main.leak", "flat": 1 << 40, "cum": -(1 << 62)},
    {"name": 'crypto/hmac.New[go.shape.interface { "BlockSize() int" }]', "flat": 0, "cum": 3},
    {"name": "caf\u00e9.\u2028\ud800", "flat": -1, "cum": 0, "fullName": "caf\u00e9.full"},
]


@pytest.mark.parametrize(
    "value",
    [
        {"sampleIndex": "inuse_space", "functions": ROWS, "memory": {"base": {}, "new": {"a": 1}}},
        {"functions": ROWS, "trend": {"functions": [{"name": "@functions@", "perHour": 1.5}]}},
        {"functions": [{"name": "x", "flat": True, "cum": 1.5}]},  # not strings and integers
        {"functions": [{"name": "x", "flat": None, "cum": 0}], "verdict": "@functions@"},
        {"functions": [], "suspects": []},
        {"functions": [{}]},
        {"verdict": "no functions key"},
    ],
)
def test_equals_json_dumps(value: dict[str, Any]) -> None:
    assert json_text(value) == json.dumps(value, indent=2)
