"""Durations as scenario files write them: `250ms`, `1.5s`, `2m`, or a number of seconds."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


class DurationError(ValueError):
    """A duration that does not parse or is negative."""


def parse_duration(value: object) -> float:
    """Return `value` in seconds; accepts `250ms`, `1.5s`, `2m`, or a non-negative number."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration; write it as 250ms, 1.5s or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise DurationError(f"{value!r} is negative; a duration is 0 or more (250ms, 1.5s, 2)")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
        if value.strip().startswith("-"):
            raise DurationError(f"{value!r} is negative; a duration is 0 or more (250ms, 1.5s, 2)")
    raise DurationError(f"{value!r} is not a duration; write it as 250ms, 1.5s, 2m or a number of seconds")
