"""Human-readable figures, formatted the way pprof prints them."""

_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def format_bytes(value: int) -> str:
    """pprof style: 1024-based, two decimals with a trailing .00 dropped (1.50MB, 512kB, -4MB)."""
    magnitude = float(abs(value))
    unit = 0
    while magnitude >= 1024 and unit < len(_BYTE_UNITS) - 1:
        magnitude /= 1024
        unit += 1
    text = f"{magnitude:.2f}".removesuffix(".00")
    return ("-" if value < 0 else "") + text + _BYTE_UNITS[unit]


def format_value(value: int, unit: str) -> str:
    return format_bytes(value) if unit == "bytes" else str(value)


def format_signed(value: int, unit: str) -> str:
    text = format_value(value, unit)
    return text if value < 0 else "+" + text


def percent(part: int, whole: int) -> str:
    """pprof's measurement.Percentage: the magnitude only, as pprof prints diff percentages."""
    ratio = abs(100 * part / whole) if whole else 0.0
    if 99.95 <= ratio <= 100.05:
        return "100%"
    if ratio >= 1.0:
        return f"{ratio:.2f}%"
    return f"{ratio:.2g}%"
