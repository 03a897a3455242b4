"""How findings say figures: shapes, signed sizes, rates and durations in words."""

from __future__ import annotations

from oomforensics.analysis.facts import Facts
from oomforensics.analysis.series import Track
from oomforensics.analysis.shape import Shape
from oomforensics.analysis.units import format_bytes


def shape_words(track: Track) -> str:
    """The shape of a track in a few words: 'growing steadily, about 6MB per hour, for 30s'."""
    report = track.report
    span = report.span

    def amount(value: float) -> str:
        return format_bytes(round(value)) if track.unit == "bytes" else f"{value:.0f} {track.unit}"

    if report.shape is Shape.GROWING:
        how = "steadily" if report.steady else "but slowing down"
        return (
            f"growing {how}, about {amount(report.late_rate_per_second * 3600)} per hour in the "
            f"later half of {duration_words(span)}"
        )
    if report.shape is Shape.GREW:
        return (
            f"grew {amount(report.growth)} in {duration_words(span)}; two snapshots show no shape"
        )
    if report.shape is Shape.PLATEAU:
        knee = report.points[report.knee]
        rise = knee.value - report.points[0].value
        if rise < report.growth:  # it crept on within noise after the knee
            return (
                f"grew {amount(report.growth)} (most of it in the first "
                f"{duration_words(knee.seconds)}), then flat within noise for "
                f"{duration_words(span - knee.seconds)}"
            )
        return (
            f"grew {amount(rise)} in the first {duration_words(knee.seconds)}, then flat for "
            f"{duration_words(span - knee.seconds)}"
        )
    if report.shape is Shape.SPIKE:
        peak = report.points[report.knee]
        return (
            f"rose by {amount(peak.value - report.points[0].value)} to a peak at "
            f"{duration_words(peak.seconds)}, then gave it back"
        )
    if report.shape is Shape.SHRANK:
        return f"shrank by {amount(-report.growth)}"
    if report.shape is Shape.STEP:
        return f"rose by {amount(report.late_growth)} at the last snapshot only"
    return "flat within noise"


def percent_of(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "all"


def signed_bytes(value: int) -> str:
    return ("+" if value >= 0 else "") + format_bytes(value)


def rate_words(facts: Facts, delta: int, unit: str = "bytes") -> str:
    if not facts.seconds:
        return ""
    per_hour = delta * 3600 / facts.seconds
    amount = format_bytes(int(per_hour)) if unit == "bytes" else f"{per_hour:.0f} {unit}"
    return f" in {duration_words(facts.seconds)}, about {amount} per hour"


def duration_words(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
