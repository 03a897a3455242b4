"""Function names as `go tool pprof` prints them.

Unless run with `-symbolize=none`, pprof's symbolizer ends with a demangling step
(internal/symbolizer: Demangle, demangleSingleFunction) that also simplifies names which
look like demangled C++: with the default options (no parameters, no template parameters)
it drops every balanced `(...)` and `<...>` group. Go generic instantiations match that
test, so `hmac.New[go.shape.interface { BlockSize() int; ... }]` is printed as
`hmac.New[go.shape.interface { BlockSize int; ... }]`; methods of generic types
(`pkg.(*T[...]).M`, holding "]).") and Java's `Class.<init>` are left alone.

A function keeps its name when it differs from its system name (the profile's writer
already chose it); otherwise, an empty name included, its name is derived from the system
name. Itanium/Rust mangled system names (`_Z...`, `_R...`), which pprof runs through its
demangler first, are not demangled here: no profile in our corpus has one.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate

_MAYBE_CPLUSPLUS = re.compile(r"[<>\[\]]|::")


@lru_cache(maxsize=1 << 16)  # the profiles of a diff or a series share most of their names
def pprof_name(name: str, system_name: str) -> str:
    """The name pprof gives a function with this name and system name (default symbolize)."""
    if name and system_name != name:
        return name
    if _MAYBE_CPLUSPLUS.search(system_name) is None:  # most names: nothing to simplify
        return system_name
    if looks_like_demangled_cplusplus(system_name):
        return remove_matching(remove_matching(system_name, "(", ")"), "<", ">")
    return system_name


def pprof_names(names: Sequence[str], system_names: Sequence[str]) -> tuple[list[str], list[int]]:
    """`pprof_name` of each (name, system name) pair, and where the name shown is not the
    name given. One search over all system names finds the few that may need simplifying
    (a profile has ~10,000 functions: one call each took 20 ms)."""
    shown = list(system_names)
    special = _maybe_cplusplus(system_names)
    special.update(
        i
        for i, (name, system) in enumerate(zip(names, system_names, strict=True))
        if not name or name != system
    )
    changed = []
    for i in sorted(special):
        shown[i] = pprof_name(names[i], system_names[i])
        if shown[i] != names[i]:
            changed.append(i)
    return shown, changed


def _maybe_cplusplus(names: Sequence[str]) -> set[int]:
    """Which names `_MAYBE_CPLUSPLUS` matches, found with str.find over all of them joined
    (the regular expression itself took 14 ms over 10,000 names; this takes under one)."""
    joined = "\n".join(names)  # "\n" is in no token, so no match spans two names
    ends = list(accumulate(len(name) + 1 for name in names))  # where each next name starts
    found: set[int] = set()
    for token in _CPLUSPLUS_TOKENS:
        at = joined.find(token)
        while at >= 0:
            index = bisect_right(ends, at)
            found.add(index)
            at = joined.find(token, ends[index])
    return found


_CPLUSPLUS_TOKENS = ("<", ">", "[", "]", "::")  # what _MAYBE_CPLUSPLUS matches


def looks_like_demangled_cplusplus(name: str) -> bool:
    """pprof's looksLikeDemangledCPlusPlus."""
    if ".<" in name:  # Java: "class.<init>"
        return False
    if "])." in name:  # Go: "foo.(*Bar[...]).Method"
        return False
    return any(c in name for c in "<>[]") or "::" in name


def remove_matching(name: str, start: str, end: str) -> str:
    """pprof's removeMatching, step for step: drop each outermost start..end group; a stray
    `end` stops it there (groups dropped so far stay dropped), an unclosed group stays."""
    if start not in name:
        return name
    brackets = re.compile(re.escape(start) + "|" + re.escape(end))
    nesting = first = current = 0
    while (found := brackets.search(name, current)) is not None:
        current = found.start()
        if name[current] == start:
            nesting += 1
            if nesting == 1:
                first = current
        else:
            nesting -= 1
            if nesting < 0:
                return name
            if nesting == 0:
                name = name[:first] + name[current + 1 :]
                current = first - 1
        current += 1
    return name
