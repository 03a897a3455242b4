"""The report's templates: Jinja2 files beside this module, rendered with autoescaping.

Everything that reaches a page comes from profiles, manifests or folder names (Go function
names hold `<`, `>`, `&` and `*`), so escaping is on for every template and off only for
what this package wrote itself: its stylesheet, its script and fragments it rendered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from importlib.resources import files

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup

from oomforensics.analysis.units import format_bytes, format_signed
from oomforensics.analysis.wording import duration_words

DASH = "\u2013"  # an en dash: no value


def bytes_or_dash(value: int | None) -> str:
    return DASH if value is None else format_bytes(value)


def signed_or_dash(value: int | None) -> str:
    return DASH if value is None else format_signed(value, "bytes")


def clock(t: float, date: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S"
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def folder_name(source: str) -> str:
    """The last part of a snapshot's path: what a reader recognises it by."""
    return source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("oomforensics.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        bytes=bytes_or_dash,
        signed=signed_or_dash,
        clock=clock,
        duration=duration_words,
        folder=folder_name,
    )
    return env


def template(name: str) -> Template:
    return _environment().get_template(name)


@cache
def static(name: str) -> Markup:
    """A stylesheet or script of this package, trusted as it is (it holds no data)."""
    text = files("oomforensics.report").joinpath("static", name).read_text(encoding="utf-8")
    return Markup(text)
