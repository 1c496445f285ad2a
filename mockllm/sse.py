"""SSE framing. Every event ends with a blank line: the SDK decoders dispatch only at one (wire-formats.md §1)."""

from __future__ import annotations

from typing import Any

from .protocols.base import compact


def data_event(payload: Any) -> bytes:
    """`data: <json>` and a blank line (OpenAI Chat and Completions)."""
    return b"data: " + compact(payload) + b"\n\n"


def named_event(name: str, payload: Any) -> bytes:
    """`event: <name>`, `data: <json>` and a blank line (Anthropic; the OpenAI Responses API)."""
    return b"event: " + name.encode() + b"\ndata: " + compact(payload) + b"\n\n"
