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
from functools import lru_cache

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
