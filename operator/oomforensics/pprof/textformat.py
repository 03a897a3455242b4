"""Shared helpers for pprof's debug=1 text forms."""

import re

from oomforensics.pprof.errors import InvalidProfile, ProfileTooLarge

DEFAULT_MAX_TEXT = 64 * 1024 * 1024

# "#\t0x4a1b2c\tmain.leak+0x2c\t/src/main.go:42" (a symbolized frame line)
FRAME_LINE = re.compile(r"^#\s+0x[0-9a-fA-F]+\s+(?P<func>\S.*?)\+0x[0-9a-fA-F]+\s+(?P<where>\S.*)$")


def decode_text(data: bytes, what: str, max_bytes: int) -> list[str]:
    if len(data) > max_bytes:
        raise ProfileTooLarge(f"{what} exceeds the {max_bytes} byte limit")
    if b"\x00" in data[:4096]:
        raise InvalidProfile(f"not a {what}: got binary data")
    return data.decode("utf-8", "replace").splitlines()


def first_line(lines: list[str]) -> tuple[int, str]:
    """Index and stripped text of the first non-blank line ((len, "") when there is none)."""
    for index, line in enumerate(lines):
        if line.strip():
            return index, line.strip()
    return len(lines), ""


def frame_function(line: str) -> str | None:
    match = FRAME_LINE.match(line)
    return match.group("func") if match else None


def snippet(line: str) -> str:
    return repr(line[:60])
