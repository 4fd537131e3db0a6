"""Number formatting shared by the report tables ("—" marks an absent value)."""
from __future__ import annotations

import math

ABSENT = "—"


def _absent(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def percent(value: float | None, digits: int = 2) -> str:
    """0.8221 -> "82.21%"."""
    return ABSENT if _absent(value) else f"{100.0 * value:.{digits}f}%"


def decimal(value: float | None, digits: int = 4) -> str:
    """1.23456 -> "1.2346"."""
    return ABSENT if _absent(value) else f"{value:.{digits}f}"


def integer(value: float | None) -> str:
    """2787914 -> "2,787,914"."""
    return ABSENT if _absent(value) else f"{int(value):,}"


def duration(seconds: float | None) -> str:
    """3725.4 -> "1h 02m 05s"; 42.3 -> "42.3 s"."""
    if _absent(seconds):
        return ABSENT
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
