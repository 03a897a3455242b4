"""Function-level flat/cum tables and the diff of two profiles, equal to `go tool pprof -top`.

pprof builds one node per function (granularity "functions"), adds a sample's value to the
flat of its leaf node and to the cum of every node on its stack once, and with -diff_base or
-base merges the base profile scaled by -1. Both are linear, so a diff's flat and cum equal
new minus base computed per profile; that is what this module does. The two modes differ
only in the total pprof prints percentages against.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from oomforensics.pprof.errors import IncompatibleProfiles
from oomforensics.pprof.profile import Profile, Stack


class BaseMode(StrEnum):
    DIFF_BASE = "diff_base"  # percentages against the base profile's total
    BASE = "base"  # percentages against the net difference, as after subtraction


@dataclass(frozen=True, slots=True)
class FunctionValue:
    name: str
    flat: int
    cum: int


@dataclass(frozen=True, slots=True)
class HeapDiff:
    """What `go tool pprof -top -diff_base BASE NEW` shows, for one sample index."""

    sample_index: str
    unit: str
    mode: BaseMode
    base_total: int
    new_total: int
    # pprof's percentage denominator for this mode (base total, or sum of |net sample deltas|).
    report_total: int
    functions: tuple[FunctionValue, ...]


def function_table(profile: Profile, index: int) -> dict[str, tuple[int, int]]:
    """Per function name: (flat, cum) for one sample index, as pprof's graph computes them."""
    flat: defaultdict[str, int] = defaultdict(int)
    cum: defaultdict[str, int] = defaultdict(int)
    for stack, values in profile.stacks.items():
        value = values[index]
        if value == 0 or not stack:
            continue
        flat[stack[0]] += value
        for name in set(stack):  # a function counts once per sample, however often it recurs
            cum[name] += value
    return {name: (flat.get(name, 0), total) for name, total in cum.items()}


def pprof_order(functions: list[FunctionValue]) -> list[FunctionValue]:
    """pprof's FlatNameOrder: |flat| descending, then name, then |cum| descending."""
    return sorted(functions, key=lambda f: (-abs(f.flat), f.name, -abs(f.cum)))


def top(profile: Profile, sample_index: str | int | None = None) -> list[FunctionValue]:
    """`go tool pprof -top` of a single profile."""
    index = profile.sample_index(sample_index)
    table = function_table(profile, index)
    return pprof_order(
        [FunctionValue(name, flat, cum) for name, (flat, cum) in table.items() if flat or cum]
    )


def diff_profiles(
    base: Profile,
    new: Profile,
    sample_index: str | int | None = "inuse_space",
    mode: BaseMode = BaseMode.DIFF_BASE,
) -> HeapDiff:
    """Every function whose flat or cum changed from `base` to `new`, in pprof's order."""
    check_compatible(base, new)
    index = new.sample_index(sample_index)
    base_table = function_table(base, index)
    new_table = function_table(new, index)
    functions = []
    for name in base_table.keys() | new_table.keys():
        base_flat, base_cum = base_table.get(name, (0, 0))
        new_flat, new_cum = new_table.get(name, (0, 0))
        flat, cum = new_flat - base_flat, new_cum - base_cum
        if flat or cum:
            functions.append(FunctionValue(name, flat, cum))
    base_total, new_total = base.total(index), new.total(index)
    return HeapDiff(
        sample_index=new.sample_types[index].type,
        unit=new.sample_types[index].unit,
        mode=mode,
        base_total=base_total,
        new_total=new_total,
        report_total=_report_total(base, new, index, mode),
        functions=tuple(pprof_order(functions)),
    )


def check_compatible(base: Profile, new: Profile) -> None:
    if base.sample_types != new.sample_types:

        def describe(p: Profile) -> str:
            return ", ".join(f"{st.type}/{st.unit}" for st in p.sample_types)

        raise IncompatibleProfiles(
            f"profiles are not comparable: base has [{describe(base)}], new has [{describe(new)}]"
        )


def _report_total(base: Profile, new: Profile, index: int, mode: BaseMode) -> int:
    if mode is BaseMode.DIFF_BASE:
        # pprof: the base samples carry the pprof::base label and alone make the total.
        total = sum(abs(v[index]) for v in base.stacks.values())
        if total:
            return total
    # -base: sum of |value| over the merged samples. Samples merge per stack here, while pprof
    # also keys on labels; the difference only shows in percentages, never in flat or cum.
    stacks = base.stacks.keys() | new.stacks.keys()
    return sum(abs(_value(new, s, index) - _value(base, s, index)) for s in stacks)


def _value(profile: Profile, stack: Stack, index: int) -> int:
    values = profile.stacks.get(stack)
    return values[index] if values is not None else 0
