"""Fidelity: what mockllm streams on `/v1/messages` has the anatomy of what the real Anthropic API streamed.

For each capture in `data/captures/anthropic/` (see its README), a scenario with the same content (the text and
JSON fragments, tool ids, stop reason, model) is served, and the rendered stream must have the capture's anatomy:
the same events in the same order, the same block types at the same indexes, and the same keys per event, message,
usage, block and delta, in wire order. Padding is ignored (synthetic streams are not padded, §7.2). The older
captures have older shapes; the differences allowed for them are listed in `LEGACY_EXTRAS`, and the one trimmed by
hand lacks a block stop the API always sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from conftest import DATA, StartServer

CAPTURES = DATA / "captures" / "anthropic"

Event = tuple[str, dict[str, Any]]


def parse_events(raw: bytes, *, strict: bool = True) -> list[Event]:
    """(event name, payload) pairs, checking the framing: `event:` then one `data:` line, a blank line after each.

    `strict=False` accepts the edited fixtures that lost their final blank line (capture README)."""
    assert b"\r" not in raw
    if not strict and not raw.endswith(b"\n\n"):
        raw += b"\n" if raw.endswith(b"\n") else b"\n\n"
    assert raw.endswith(b"\n\n"), f"the last event does not end with a blank line: {raw[-60:]!r}"
    events: list[Event] = []
    for block in raw[:-2].split(b"\n\n"):
        lines = block.split(b"\n")
        assert len(lines) == 2, block[:120]
        assert lines[0].startswith(b"event: "), block[:120]
        assert lines[1].startswith(b"data: "), block[:120]
        name = lines[0][len(b"event: ") :].decode()
        payload = json.loads(lines[1][len(b"data: ") :])
        assert payload["type"] == name  # the SDK dispatches on the event name (§1.2)
        if name == "ping":
            assert lines[1] == b'data: {"type": "ping"}'
        events.append((name, payload))
    return events


def anatomy(event: Event) -> tuple[Any, ...]:
    """An event's name, block type and keys in wire order, nested objects included (their values are not)."""

    def keys(value: Any) -> Any:
        if isinstance(value, dict):
            return tuple((key, keys(item)) for key, item in value.items() if key not in ("input", "content"))
        return None

    name, payload = event
    block = payload.get("content_block") or payload.get("delta") or {}
    return name, block.get("type"), payload.get("index"), keys(payload)


# Keys the 2025 and older captures lack, which mockllm sends as the 2026 API does: message and tool-block fields,
# and the cumulative input and cache counts that `message_delta.usage` repeats (capture README, §7.2).
LEGACY_EXTRAS = {
    "cache_creation",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "inference_geo",
    "caller",
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "service_tier",
}


def key_set(event: Event, drop: set[str]) -> Any:
    """Keys of an event as sets (order aside), without `drop`."""

    def keys(value: Any) -> Any:
        if isinstance(value, dict):
            return frozenset(
                (key, keys(item)) for key, item in value.items() if key not in drop and key not in ("input", "content")
            )
        return None

    name, payload = event
    block = payload.get("content_block") or payload.get("delta") or {}
    return name, block.get("type"), payload.get("index"), keys(payload)


@dataclass(frozen=True)
class Case:
    capture: str
    legacy: bool = False  # a 2025-or-older shape (see LEGACY_EXTRAS)
    after_tool: bool = False  # the request answers a tool call


CASES = [
    Case("messages-stream-structured-output.sse"),
    Case("messages-stream-structured-output-beta.sse"),
    Case("messages-stream-tool-use.sse"),
    Case("messages-stream-tool-use-2.sse"),
    Case("messages-stream-after-tool-result.sse", after_tool=True),
    Case("messages-stream-after-tool-result-2.sse", after_tool=True),
    Case("messages-stream-fine-grained-tool-max-tokens.sse", legacy=True),
    Case("messages-stream-text-then-tool-use-edited.sse", legacy=True),
    Case("messages-stream-text-basic-edited.sse", legacy=True),
]

FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def scenario_for(events: list[Event]) -> dict[str, Any]:
    """A neutral scenario with the capture's content: text pieces, tool calls with their fragments, stop reason."""
    chunks: list[str] = []
    calls: list[dict[str, Any]] = []
    for name, payload in events:
        if name == "content_block_start" and payload["content_block"]["type"] == "tool_use":
            block = payload["content_block"]
            calls.append({"name": block["name"], "id": block["id"], "chunks": []})
        elif name == "content_block_delta" and payload["delta"]["type"] == "text_delta":
            chunks.append(payload["delta"]["text"])
        elif name == "content_block_delta" and payload["delta"]["partial_json"]:
            calls[-1]["chunks"].append(payload["delta"]["partial_json"])
    message = events[0][1]["message"]
    (reason,) = [p["delta"]["stop_reason"] for n, p in events if n == "message_delta"]
    reply: dict[str, Any] = {
        "model": message["model"],
        "finish_reason": FINISH[reason],
        "usage": {"prompt_tokens": message["usage"]["input_tokens"]},
    }
    if chunks:
        reply["chunks"] = chunks
    if calls:
        reply["tool_calls"] = calls
    return {"version": 1, "scenarios": [{"id": "capture", "reply": reply}]}


def request_for(case: Case, events: list[Event]) -> dict[str, Any]:
    model = events[0][1]["message"]["model"]
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in SF?"}]
    if case.after_tool:
        call = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "SF"}}
        result = {"type": "tool_result", "tool_use_id": "toolu_01", "content": "68°F, sunny"}
        messages += [{"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]
    return {"model": model, "max_tokens": 1024, "stream": True, "messages": messages, "tools": tools}


@pytest.mark.parametrize("case", CASES, ids=[case.capture for case in CASES])
def test_rendered_stream_has_the_capture_anatomy(start_server: StartServer, case: Case) -> None:
    captured = parse_events((CAPTURES / case.capture).read_bytes(), strict=False)
    server = start_server(scenarios_yaml=yaml.safe_dump(scenario_for(captured)))
    response = httpx.post(server.url + "/v1/messages", json=request_for(case, captured), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    rendered = parse_events(response.content)
    # Same content: the deltas (the empty first input_json_delta included) and the stop reason.
    assert [p.get("delta") for n, p in rendered if n == "content_block_delta"] == [
        p.get("delta") for n, p in captured if n == "content_block_delta"
    ]
    assert [p["delta"] for n, p in rendered if n == "message_delta"] == [
        p["delta"] for n, p in captured if n == "message_delta"
    ]
    if case.capture == "messages-stream-fine-grained-tool-max-tokens.sse":
        # Trimmed by hand: the capture never closes block 1; the API closes every block (capture README).
        stop = ("content_block_stop", {"type": "content_block_stop", "index": 1})
        at = next(i for i, (name, _) in enumerate(captured) if name == "message_delta")
        captured.insert(at, stop)
    if case.legacy:
        assert [key_set(e, LEGACY_EXTRAS) for e in rendered] == [key_set(e, LEGACY_EXTRAS) for e in captured]
    else:
        assert [anatomy(e) for e in rendered] == [anatomy(e) for e in captured]


def test_the_comparison_notices_a_missing_key() -> None:
    """The anatomy comparison is not blind: one key less in one event makes it differ."""
    captured = parse_events((CAPTURES / "messages-stream-tool-use.sse").read_bytes())
    changed = [(name, json.loads(json.dumps(payload))) for name, payload in captured]
    del changed[1][1]["content_block"]["caller"]
    assert [anatomy(e) for e in changed] != [anatomy(e) for e in captured]
    assert [key_set(e, set()) for e in changed] != [key_set(e, set()) for e in captured]
