"""Anthropic Messages (`POST /v1/messages`): the neutral reply rendered as Anthropic sends it.

Wire facts follow reference/wire-formats.md §7 (event flow, body, errors, headers) and §12.4 (stop reasons,
thinking blocks, usage), and the captures in tests/data/captures/anthropic/. Requests are parsed in
`anthropic_request.py`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from ..sse import named_event
from .anthropic_request import API, parse
from .base import ChoicePlan, Frame, FrameKind, ParsedRequest, Plan, compact, json_string, random_id

__all__ = ["API", "parse", "render_body", "render_stream"]

ORGANIZATION_ID = "7f3c9a52-mock-4c1e-9b6d-mockllm00001"

# `ping` is the one event written with a space after the colon, never padded (every capture; §7.2).
PING = Frame(b'event: ping\ndata: {"type": "ping"}\n\n', "head")
MESSAGE_STOP = Frame(b'event: message_stop\ndata: {"type":"message_stop"}\n\n', "tail")


def signature(thinking: str) -> str:
    """A thinking block's signature: opaque to clients, so a digest of the thinking text (deterministic)."""
    digest = hashlib.sha256(b"mockllm-thinking\0" + thinking.encode()).digest()
    return base64.b64encode(digest * 3).decode()


def stop_reason(choice: ChoicePlan) -> tuple[str, str | None]:
    """The neutral finish reason in Anthropic's words, and the stop sequence that ended the text (§7.1, §12.4)."""
    if choice.finish_reason == "length":
        return "max_tokens", None
    if choice.finish_reason == "stop" and choice.stop_reason is not None:
        return "stop_sequence", choice.stop_reason
    if choice.finish_reason == "tool_calls":
        return "tool_use", None
    if choice.finish_reason == "content_filter" or choice.refusal:
        return "refusal", None
    return "end_turn", None


def _usage(plan: Plan, start: bool) -> dict[str, Any]:
    """Usage as the 2026 captures carry it. Anthropic counts cached prompt tokens apart from `input_tokens`
    (their sum is the whole prompt), so the neutral `prompt_tokens` is split accordingly."""
    cache_read, cache_write = plan.cached_tokens, plan.cache_creation_tokens
    usage: dict[str, Any] = {
        "input_tokens": max(0, plan.prompt_tokens - cache_read - cache_write),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
    }
    if not start:
        # message_delta: cumulative counts, without the creation breakdown or tier (capture messages-stream-*.sse).
        usage["output_tokens"] = plan.completion_tokens
        return usage
    usage["cache_creation"] = {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0}
    # message_start reports a token or so of output: the body has not been generated yet.
    usage["output_tokens"] = min(1, plan.completion_tokens)
    usage["service_tier"] = "standard"
    usage["inference_geo"] = "not_available"
    return usage


def _stop_details(reason: str) -> dict[str, Any] | None:
    return {"type": "refusal", "category": None, "explanation": None} if reason == "refusal" else None


def _tool_input(arguments: str) -> Any:
    """A tool call's `input` object. Arguments cut short (max_tokens) or not an object come back empty, as the
    API's own non-streamed reply holds only a parsed object."""
    try:
        value = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _message_head(mid: str, plan: Plan) -> dict[str, Any]:
    # Key order of the 2026 captures: `model` first.
    return {"model": plan.model, "id": mid, "type": "message", "role": "assistant", "content": []}


# One content_block_delta with one text field, as `compact` writes it; spliced for the common chunk.
_DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":%s}}\n\n'
)


def _delta(index: int, kind: str, key: str, text: str, frame_kind: FrameKind = "content") -> Frame:
    return Frame(_DELTA % (index, kind.encode(), key.encode(), json_string(text)), frame_kind)


def _event(name: str, payload: dict[str, Any], kind: FrameKind) -> Frame:
    return Frame(named_event(name, {"type": name, **payload}), kind)


def render_stream(plan: Plan, request: ParsedRequest, dialect: str) -> list[Frame]:
    """The SSE events of a streamed reply (§7.2): message_start, the blocks in index order, message_delta,
    message_stop. Deltas that carry content are `content` frames (faults count them); block starts go out with
    the content after them, block stops right after the content before them."""
    choice = plan.choices[0]
    message = _message_head(random_id("msg_01", 22), plan)
    message.update({"stop_reason": None, "stop_sequence": None, "usage": _usage(plan, start=True)})
    frames = [_event("message_start", {"message": message}, "head")]
    index = 0

    def open_block(block: dict[str, Any]) -> None:
        frames.append(_event("content_block_start", {"index": index, "content_block": block}, "head"))
        if index == 0:
            frames.append(PING)  # the captures send one ping, right after the first block opens

    def close_block() -> None:
        nonlocal index
        frames.append(_event("content_block_stop", {"index": index}, "tail"))
        index += 1

    if choice.reasoning:
        open_block({"type": "thinking", "thinking": "", "signature": ""})
        frames.extend(_delta(index, "thinking_delta", "thinking", piece) for piece in choice.reasoning)
        # The signature comes once, just before the thinking block's stop (§7.2).
        frames.append(_delta(index, "signature_delta", "signature", signature(choice.reasoning_text), "tail"))
        close_block()
    if choice.redacted_reasoning is not None:
        # A redacted block arrives whole in its start event, with no deltas.
        open_block({"type": "redacted_thinking", "data": choice.redacted_reasoning})
        close_block()
    if choice.text or choice.refusal:
        # A refusal is ordinary text on this API; the stop reason says what it is.
        open_block({"type": "text", "text": ""})
        frames.extend(_delta(index, "text_delta", "text", piece) for piece in [*choice.text, *choice.refusal])
        close_block()
    for call in choice.tool_calls:
        open_block({"type": "tool_use", "id": call.id, "name": call.name, "input": {}, "caller": {"type": "direct"}})
        # The first input_json_delta is always empty (captures messages-stream-tool-use*.sse).
        frames.append(_delta(index, "input_json_delta", "partial_json", "", "head"))
        frames.extend(_delta(index, "input_json_delta", "partial_json", piece) for piece in call.pieces)
        close_block()
    if index == 0:
        frames.append(PING)
    reason, sequence = stop_reason(choice)
    delta: dict[str, Any] = {"stop_reason": reason, "stop_sequence": sequence}
    details = _stop_details(reason)
    if details is not None:
        delta["stop_details"] = details
    frames.append(_event("message_delta", {"delta": delta, "usage": _usage(plan, start=False)}, "tail"))
    frames.append(MESSAGE_STOP)
    return frames


def render_body(plan: Plan, request: ParsedRequest, dialect: str) -> bytes:
    """The JSON body of a non-streamed reply (§7.1): compact, content blocks in the stream's order."""
    choice = plan.choices[0]
    content: list[dict[str, Any]] = []
    if choice.reasoning:
        content.append(
            {"type": "thinking", "thinking": choice.reasoning_text, "signature": signature(choice.reasoning_text)}
        )
    if choice.redacted_reasoning is not None:
        content.append({"type": "redacted_thinking", "data": choice.redacted_reasoning})
    if choice.text or choice.refusal:
        content.append({"type": "text", "text": choice.content + choice.refusal_text})
    content.extend(
        {
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": _tool_input(call.arguments),
            "caller": {"type": "direct"},
        }
        for call in choice.tool_calls
    )
    reason, sequence = stop_reason(choice)
    body = _message_head(random_id("msg_01", 22), plan)
    body.update({"content": content, "stop_reason": reason, "stop_sequence": sequence})
    details = _stop_details(reason)
    if details is not None:
        body["stop_details"] = details
    usage = _usage(plan, start=True)
    usage["output_tokens"] = plan.completion_tokens
    body["usage"] = usage
    return compact(body)


# ---------------------------------------------------------------------------------------------------------
# Headers and models


def response_headers(request_id: str) -> dict[str, str]:
    """Headers on every Messages response (§7.4): `request-id` (not `x-request-id`) and the organization id."""
    return {"request-id": request_id, "anthropic-organization-id": ORGANIZATION_ID}


def _rfc3339(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def rate_limit_headers(retry_after: float | None) -> dict[str, str]:
    """The `anthropic-ratelimit-*` headers of a 429 (§7.4): the limit spent, resets as RFC 3339 timestamps."""
    reset = _rfc3339(retry_after if retry_after is not None else 60)
    headers: dict[str, str] = {}
    for kind, limit in (("requests", 50), ("tokens", 80000), ("input-tokens", 40000), ("output-tokens", 8000)):
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{kind}-remaining"] = "0"
        headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    return headers


def model_card(model_id: str) -> dict[str, Any]:
    """A model as Anthropic's `GET /v1/models` lists it."""
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": "2025-01-01T00:00:00Z",
        "lifecycle": "active",
    }


def model_list(model_ids: list[str]) -> dict[str, Any]:
    """Anthropic's paginated model list: one page holding every model."""
    return {
        "data": [model_card(model_id) for model_id in model_ids],
        "has_more": False,
        "first_id": model_ids[0] if model_ids else None,
        "last_id": model_ids[-1] if model_ids else None,
    }
