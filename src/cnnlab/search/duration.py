"""Durations as people write them: 90, 90s, 30m, 2h, 1h30m, 1d."""
from __future__ import annotations

import re

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}   # seconds per unit
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare number is seconds. Raises ValueError naming the format."""
    raw = str(text).strip().lower()
    try:
        seconds = float(raw)
    except ValueError:
        parts = _PART.findall(raw)
        if not parts or "".join(n + u for n, u in parts) != raw:
            raise ValueError(f"--timeout {text!r}: write a duration such as 90s, 30m, 2h or 1h30m") from None
        seconds = sum(float(n) * _UNITS_S[u] for n, u in parts)
    if not seconds > 0:
        raise ValueError(f"--timeout {text!r}: give a duration above zero")
    return seconds


__all__ = ["parse_duration"]
