"""Helpers for the property-based tests that mutate real requests and scenario documents."""

from __future__ import annotations

from typing import Any


def key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON value (the value itself first)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += key_paths(item, (*prefix, index))
    return found
