"""Durations as operators write them: ``90s``, ``5m``, ``1h30m``, ``30d``, or a number of seconds.

One spelling for the rule file (``cooldown: 5m``) and the flags (``--idempotency-ttl 24h``).
"""
from __future__ import annotations

import math
import re
from typing import Any

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
EXPECTED = 'a duration like "30s", "5m" or "1h30m", or a number of seconds'


def parse_duration(value: Any) -> float:
    """Seconds; ValueError (saying what is expected) for anything else, negatives included."""
    number = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _PART.sub("", value.strip()) == "" and value.strip():
        number = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if not math.isfinite(number) or number < 0:
        raise ValueError(EXPECTED)
    return number
