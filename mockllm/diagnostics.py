"""Validation errors in the words of a YAML scenario file: the key path, its line, what was expected, and for a
misspelt key or value the closest valid one.

Pydantic reports an error against its own view of the models (union members, aliases, `for_`); this module maps each
back onto the data as written, words it for someone editing YAML, and drops the noise a union's other members add.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .documents import Lines
from .scenarios import (
    ChoiceSpec,
    ErrorSpec,
    FaultSpec,
    MessageCondition,
    Reply,
    Scenario,
    ScenarioFile,
    StringCondition,
    TimingSpec,
    ToolCallSpec,
    UsageSpec,
    When,
)


def format_path(path: Iterable[str | int]) -> str:
    """A key path as messages show it: `scenarios[0].reply.text`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve_loc(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the parts of a pydantic error location that are not keys of the data (union member tags)."""
    resolved: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
            resolved.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            resolved.append(part)
        elif isinstance(current, Mapping) and part == "for_" and "for" in current:
            current = current["for"]
            resolved.append("for")
    return tuple(resolved)


def _fields_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(data: Any, path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path`, for "did you mean" hints."""
    model: type[BaseModel] | None = ScenarioFile
    chain: dict[str, type[BaseModel]] = {
        "scenarios": Scenario,
        "when": When,
        "reply": Reply,
        "replies": Reply,
        "choices": ChoiceSpec,
        "tool_calls": ToolCallSpec,
        "usage": UsageSpec,
        "timing": TimingSpec,
        "error": ErrorSpec,
        "fault": FaultSpec,
    }
    for part in path:
        if isinstance(part, int):
            continue
        if model is When and part == "messages":
            model = MessageCondition
            continue
        if model in (When, MessageCondition) and part in ("model", "prompt", "system", "role", "content"):
            model = StringCondition
            continue
        model = chain.get(part)
        if model is None:
            return None
    return model


# What a pydantic type error expects, in the words of a YAML file.
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "less_than_equal": ("<=", "le"), "greater_than": (">", "gt")}


def _describe(value: Any) -> str:
    """A value from a YAML file, with its YAML type: `the string 'two'`, `a list [1, 2]`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        kind = "the boolean"
    elif isinstance(value, int):
        kind = "the integer"
    elif isinstance(value, float):
        kind = "the number"
    elif isinstance(value, str):
        kind = "the string"
    elif isinstance(value, list):
        kind = "a list"
    elif isinstance(value, Mapping):
        kind = "a mapping"
    else:
        kind = type(value).__name__
    shown = repr(value)
    return f"{kind} {shown if len(shown) <= 60 else shown[:57] + '...'}"


def _suggestion(data: Any, loc: tuple[str | int, ...]) -> str | None:
    """For an unknown key at `loc`, the closest valid key of its mapping, if any is close."""
    parent = _model_at(data, loc[:-1])
    if parent is None:
        return None
    close = difflib.get_close_matches(str(loc[-1]), _fields_of(parent), n=1, cutoff=0.6)
    return close[0] if close else None


def _type_hint(kind: str, value: Any, loc: tuple[str | int, ...]) -> str:
    key = loc[-1] if loc else None
    if kind == "string_type" and isinstance(value, int | float | bool):
        return "; quote it if you meant the string"
    if kind == "list_type" and loc == ("scenarios",):
        return "; write each scenario as a `- ` item under `scenarios:`"
    if kind == "list_type" and isinstance(value, str | int | float):
        return f"; write it as a list, like [{value}]"
    in_reply = key == "reply" or (isinstance(key, int) and loc[-2:-1] == ("replies",))
    if kind.startswith("model") and in_reply and isinstance(value, str):
        return f"; write `{{text: {value}}}` for a text reply"
    if kind.startswith("model") and len(loc) == 2 and loc[0] == "scenarios":
        return "; each scenario is a mapping with `id`, `when` and `reply`"
    return ""


def _friendly(error: Mapping[str, Any], data: Any, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    message = str(error["msg"])
    value = error.get("input")
    key = loc[-1] if loc else None
    if kind == "extra_forbidden" and loc:
        parent = _model_at(data, loc[:-1])
        close = _suggestion(data, loc)
        if close is not None:
            hint = f"; did you mean `{close}`?"
        elif parent is not None:
            hint = f"; valid keys here: {', '.join(_fields_of(parent))}"
        else:
            hint = "; remove it"
        return f"unknown key `{key}`{hint}"
    if kind == "missing":
        if loc == ("version",):
            return "`version` is missing; start the file with `version: 1`"
        return f"`{key if key is not None else '?'}` is required here; add it"
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        if loc == ("version",):
            quoted = " (a number, without quotes)" if isinstance(value, str) and value.strip() == "1" else ""
            return f"version {value!r} is not supported; write `version: 1`{quoted}"
        choices = re.findall(r"'([^']*)'", expected)
        nearest = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.7) if isinstance(value, str) else []
        label = f"`{key}`" if isinstance(key, str) else "value"
        if nearest:
            return f"{value!r} is not a valid {label} (one of {', '.join(choices)}); did you mean `{nearest[0]}`?"
        return f"{value!r} is not a valid {label}; use one of {', '.join(choices) or expected}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_describe(value)}{_type_hint(kind, value, loc)}"
    if kind in _BOUNDS or kind == "less_than":
        if key == "probability":
            return f"a probability is a number from 0 to 1, got {value!r}; use 0.25 for a quarter of the requests"
        if key == "status":
            return f"an error status is from 400 to 599, got {value!r}; use 429, 500 or 503, for example"
        op, name = _BOUNDS.get(kind, ("<", "lt"))
        limit = error.get("ctx", {}).get(name)
        return f"expected a number {op} {limit}, got {value!r}"
    if kind == "too_short" and key == "replies":
        return "`replies` is empty; give at least one reply, or use `reply`"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message


def describe_errors(exc: ValidationError, data: Any, lines: Lines) -> list[tuple[int, str, str]]:
    """The errors of validating `data` as (line, key path, message), in the words of a YAML file; each once."""
    found: list[tuple[tuple[str | int, ...], str, str]] = []
    suggested: set[tuple[str | int, ...]] = set()
    for error in exc.errors():
        loc = _resolve_loc(data, tuple(error["loc"]))
        if error["type"] == "extra_forbidden" or error["type"] == "missing":
            # The offending key is the last element of the raw location, even if the data lacks it.
            raw = tuple(error["loc"])
            loc = (*_resolve_loc(data, raw[:-1]), raw[-1]) if raw else loc
        text = _friendly(error, data, loc)
        if text.startswith("@"):
            # A model validator names the key its message is about: `@fault.after: message`.
            where, text = text[1:].split(": ", 1)
            loc = _resolve_loc(data, (*loc, *where.split(".")))
        if error["type"] == "extra_forbidden" and loc:
            close = _suggestion(data, loc)
            if close is not None:
                suggested.add((*loc[:-1], close))
        found.append((loc, error["type"], text))
    # A value of the wrong shape for a union (`messages: int | list`) fails every member: when one member got
    # further (an error deeper inside the value), the others' type errors are noise. A required key that a
    # misspelt sibling is suggested for is reported once, as the misspelling.
    deeper = {loc[:i] for loc, _, _ in found for i in range(len(loc))}
    described: list[tuple[int, str, str]] = []
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for loc, kind, text in found:
        if kind in _EXPECTED and loc in deeper:
            continue
        if kind == "missing" and loc in suggested:
            continue
        if (loc, text) in seen:
            continue
        seen.add((loc, text))
        described.append((lines.line_of(loc), format_path(loc), text))
    return described
