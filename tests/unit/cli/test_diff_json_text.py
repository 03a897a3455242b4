"""`diff --json` writes exactly what json.dumps(indent=2) writes, by its faster path too."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oomforensics.cli.diff import function_rows, json_text
from oomforensics.pprof.diff import FunctionValue

FUNCTIONS = [
    FunctionValue("main.leak", 1 << 40, -(1 << 62)),
    FunctionValue('crypto/hmac.New[go.shape.interface { "BlockSize() int" }]', 0, 3),
    FunctionValue("caf\u00e9.\u2028\ud800", -1, 0),  # a lone surrogate: invalid UTF-8 kept
    FunctionValue("huge", 1 << 70, -(1 << 70)),  # Python ints, past int64
]
FULL_NAMES = {"caf\u00e9.\u2028\ud800": "caf\u00e9.full\\name", "not.in.the.table": "x"}


def expected(value: dict[str, Any], functions: list[FunctionValue], names: dict[str, str]) -> str:
    return json.dumps({**value, "functions": function_rows(functions, names)}, indent=2)


@pytest.mark.parametrize(
    "value",
    [
        {"sampleIndex": "inuse_space", "functions": [], "memory": {"base": {}, "new": {"a": 1}}},
        {"functions": [], "trend": {"functions": [{"name": "@functions@", "perHour": 1.5}]}},
        {"functions": [], "verdict": "@functions@"},  # the marker's text elsewhere
        {"verdict": "no functions key"},
    ],
)
@pytest.mark.parametrize("functions", [FUNCTIONS, []])
def test_equals_json_dumps(value: dict[str, Any], functions: list[FunctionValue]) -> None:
    assert json_text(value, functions, FULL_NAMES) == expected(value, functions, FULL_NAMES)


def test_rows_name_the_full_name_where_pprof_shortens_it() -> None:
    rows = function_rows(FUNCTIONS[1:3], FULL_NAMES)
    assert "fullName" not in rows[0]
    assert rows[1]["fullName"] == "caf\u00e9.full\\name"
    assert list(rows[1]) == ["name", "flat", "cum", "fullName"]


@settings(max_examples=200, deadline=None)
@given(
    functions=st.lists(
        st.builds(FunctionValue, st.text(max_size=8), st.integers(), st.integers()), max_size=6
    ),
    shortened=st.sets(st.integers(0, 5)),
)
def test_any_names_and_figures_equal_json_dumps(functions, shortened) -> None:
    names = {f.name: f.name + "[...]" for i, f in enumerate(functions) if i in shortened}
    value = {"sampleIndex": "x", "functions": [], "verdict": "v"}
    assert json_text(value, functions, names) == expected(value, functions, names)
