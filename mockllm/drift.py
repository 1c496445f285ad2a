"""Drift, explained: how a request differs from the one a recording was made for, as JSON paths and both values.

`messages[1].content: recorded "hi", got "hello"` tells a user at once which line of their code changed the
request; long values are shortened around their first difference, so the change stays visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MISSING = object()  # a key on one side only
_WIDTH = 60  # characters of a value shown, around its first difference


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the request differs from the recording."""

    path: str
    recorded: Any
    got: Any

    def describe(self) -> str:
        recorded, got = _pair(self.recorded, self.got)
        return f"{self.path or '(the body)'}: recorded {recorded}, got {got}"


def differences(recorded: Any, got: Any, path: str = "") -> list[Difference]:
    """Every leaf where two JSON values differ, in document order (keys of the recording first)."""
    if isinstance(recorded, dict) and isinstance(got, dict):
        out: list[Difference] = []
        for key in [*recorded, *(k for k in got if k not in recorded)]:
            child = f"{path}.{key}" if path else str(key)
            out.extend(differences(recorded.get(key, MISSING), got.get(key, MISSING), child))
        return out
    if isinstance(recorded, list) and isinstance(got, list):
        out = []
        for index in range(max(len(recorded), len(got))):
            left = recorded[index] if index < len(recorded) else MISSING
            right = got[index] if index < len(got) else MISSING
            out.extend(differences(left, right, f"{path}[{index}]"))
        return out
    if _same(recorded, got):
        return []
    return [Difference(path, recorded, got)]


def _same(a: Any, b: Any) -> bool:
    # JSON has no bool/int distinction problems in Python except True == 1: compare types for those.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def explain(recorded: Any, got: Any, limit: int = 6) -> str:
    """The differences as one line each (at most `limit`, then how many more)."""
    found = differences(recorded, got)
    lines = [difference.describe() for difference in found[:limit]]
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more difference{'s' if len(found) - limit != 1 else ''}")
    return "; ".join(lines)


def _show(value: Any) -> str:
    if value is MISSING:
        return "nothing"
    return json.dumps(value, ensure_ascii=False)


def _pair(recorded: Any, got: Any) -> tuple[str, str]:
    """Both values as JSON, long ones cut to a window around where they first differ."""
    left, right = _show(recorded), _show(got)
    if len(left) <= _WIDTH and len(right) <= _WIDTH:
        return left, right
    first = next((i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b), min(len(left), len(right)))
    start = max(0, first - _WIDTH // 3)
    return _window(left, start), _window(right, start)


def _window(text: str, start: int) -> str:
    end = start + _WIDTH
    return ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")
