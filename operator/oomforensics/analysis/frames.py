"""Classify Go function names: application code, standard library, runtime.

A Go symbol is `<package path>.<name>`, e.g. `net/http.(*persistConn).readLoop`,
`github.com/acme/api.(*Cache).Put`, `main.appendAudit`. The standard library's package paths
have no dot in their first element; everything else (and `main`) is application code, which
is where a leak's cause usually is.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

# The classifiers below are asked about every function of every snapshot of a series: a
# profile has ~10,000 distinct names and a series repeats them, so answers are cached.
_CACHE = 1 << 16


def _package(function: str) -> str:
    slash = function.rfind("/")
    dot = function.find(".", slash + 1)
    return function[:dot] if dot >= 0 else function


@lru_cache(maxsize=_CACHE)
def package_of(function: str) -> str:
    """`net/http.(*conn).serve` -> `net/http`; `main.main.func1` -> `main`."""
    return _package(function)


def is_symbol(function: str) -> bool:
    """False for pprof's placeholders of unsymbolized frames (`[binary]`, `<unknown>`)."""
    return bool(function) and function[0] not in "[<"


PROFILER_PACKAGES = frozenset({"runtime/pprof", "net/http/pprof"})

# What a name is, as flags (`kinds`): a table of 10,000 names is classified once, in one pass,
# and each classifier below is then a bit test (suspects.StackGrowth.kind_mask).
APPLICATION, RUNTIME, PROFILER, SYMBOL = 1, 2, 4, 8


def name_kinds(function: str) -> int:
    """What a name is, as flags (`kinds`, uncached: for tables of names seen once each)."""
    slash = function.rfind("/")
    dot = function.find(".", slash + 1)
    package = function[:dot] if dot >= 0 else function
    flags = 0
    if function and function[0] not in "[<":  # is_symbol
        flags = SYMBOL
        first = package[: package.find("/")] if slash >= 0 else package  # its first element
        if package == "main" or "." in first:
            flags |= APPLICATION
    if package == "runtime" or package.startswith(("runtime/", "internal/")):
        flags |= RUNTIME
    if package in PROFILER_PACKAGES:
        flags |= PROFILER
    return flags


@lru_cache(maxsize=_CACHE)
def kinds(function: str) -> int:
    """What a name is, as flags: one cached answer per name for the classifiers below (each
    asked of ~10,000 names per snapshot; one cache lookup, not one per classifier)."""
    return name_kinds(function)


def classify(names: Iterable[str]) -> None:
    """Have `kinds` answer for each of these names from its cache."""
    for name in names:
        kinds(name)


def is_application(function: str) -> bool:
    return bool(kinds(function) & APPLICATION)


def is_runtime(function: str) -> bool:
    return bool(kinds(function) & RUNTIME)


def is_profiler(function: str) -> bool:
    """Frames of the profiler itself: taking a snapshot allocates, and that is not the leak."""
    return bool(kinds(function) & PROFILER)


def first_application_frame(stack: tuple[str, ...]) -> str | None:
    """The innermost application frame of a leaf-first stack."""
    for function in stack:
        if is_application(function):
            return function
    return None


def entry_frame(stack: tuple[str, ...]) -> str:
    """What runs this stack: its outermost frame outside the runtime (the goroutine's start)."""
    for function in reversed(stack):
        if is_symbol(function) and not is_runtime(function):
            return function
    return stack[0] if stack else "<unknown>"


# Standard-library entry points that own memory on the application's behalf, in plain words.
_MECHANISMS = (
    ("net/http.(*Transport).", "HTTP client connections kept by net/http's Transport"),
    ("net/http.(*persistConn).", "HTTP client connections kept by net/http's Transport"),
    ("net/http.(*conn).serve", "HTTP server connections (net/http.Server, one per client)"),
    ("net/http.(*Server).", "HTTP server connections (net/http.Server, one per client)"),
    ("crypto/tls.", "TLS connection state (crypto/tls)"),
    ("runtime.malg", "goroutine descriptors (runtime.malg: one per new goroutine)"),
    ("runtime.", "the Go runtime's own structures"),
)


def mechanism(entry: str) -> str:
    """Which standard-library mechanism holds memory when no application frame is on the path."""
    for prefix, description in _MECHANISMS:
        if entry.startswith(prefix):
            return description
    return f"inside {package_of(entry)}'s own goroutines ({entry})"
