"""Reading a recorded answer back into a neutral reply: the decoding half of `mockllm distill`.

A recorded `raw` answer holds the exact bytes an API sent (a streamed answer as its SSE events, or a JSON body).
Each API family spells the same things differently; this module collects them into a `Draft` (per choice: text,
reasoning and refusal pieces, tool calls with their argument fragments, the finish reason in neutral words) plus
usage, the offsets of the events that carried content, and a mid-stream error. `distill.py` turns a draft into
the `reply:` of a scenario. Event shapes follow reference/wire-formats.md §2.2 (Chat), §3.1 (Completions),
§4 (Responses) and §7.2 (Messages).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallDraft:
    """One tool call as recorded: its name and the argument fragments in the order they came."""

    name: str = ""
    id: str | None = None
    fragments: list[str] = field(default_factory=list)
    arguments: str | None = None  # the whole arguments, when the answer gave them at once (a body, a `done`)


@dataclass
class ChoiceDraft:
    """One choice as recorded."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    redacted_reasoning: str | None = None
    calls: dict[Any, CallDraft] = field(default_factory=dict)
    finish: str | None = None  # neutral: stop, length, tool_calls, content_filter


@dataclass
class Draft:
    """A recorded answer, decoded."""

    choices: dict[int, ChoiceDraft] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    content_at: list[float] = field(default_factory=list)  # offsets of the events that carried content
    fault: dict[str, Any] | None = None  # a mid-stream error event: {type, message, after}
    vectors: list[list[float]] | None = None
    response_id: str | None = None  # the Responses API's `resp_…` id, to follow `previous_response_id`
    warnings: list[str] = field(default_factory=list)

    def choice(self, index: int = 0) -> ChoiceDraft:
        return self.choices.setdefault(index, ChoiceDraft())

    def content_events(self) -> int:
        return len(self.content_at)


# Finish reasons in each API's words -> the neutral ones (scenarios.FINISH_REASONS).
_CHAT_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls"}
_CHAT_FINISH |= {"content_filter": "content_filter"}
_ANTHROPIC_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
_ANTHROPIC_STOP |= {"refusal": "content_filter", "model_context_window_exceeded": "length"}
_RESPONSES_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def usage_of(api: str, usage: Any) -> dict[str, int]:
    """Recorded usage in the neutral names (`UsageSpec`); figures the answer did not give are left out."""
    if not isinstance(usage, Mapping):
        return {}
    if api == "messages":
        # Anthropic counts cached prompt tokens apart from input_tokens; the neutral prompt is their sum
        # (the inverse of protocols/anthropic.py `_usage`).
        parts = [_int(usage.get(k)) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")]
        found = {
            "prompt_tokens": sum(p or 0 for p in parts) if parts[0] is not None else None,
            "completion_tokens": _int(usage.get("output_tokens")),
            "cached_tokens": parts[1],
            "cache_creation_tokens": parts[2],
        }
    elif api == "responses":
        found = {
            "prompt_tokens": _int(usage.get("input_tokens")),
            "completion_tokens": _int(usage.get("output_tokens")),
            "cached_tokens": _int(_get(usage, "input_tokens_details", "cached_tokens")),
            "reasoning_tokens": _int(_get(usage, "output_tokens_details", "reasoning_tokens")),
        }
    else:
        found = {
            "prompt_tokens": _int(usage.get("prompt_tokens")),
            "completion_tokens": _int(usage.get("completion_tokens")),
            "cached_tokens": _int(_get(usage, "prompt_tokens_details", "cached_tokens")),
            "reasoning_tokens": _int(_get(usage, "completion_tokens_details", "reasoning_tokens")),
        }
    return {key: value for key, value in found.items() if value is not None}


def _index(item: Mapping[str, Any]) -> int:
    index = item.get("index")
    return index if isinstance(index, int) else 0


def _add(pieces: list[str], text: Any) -> bool:
    if isinstance(text, str) and text:
        pieces.append(text)
        return True
    return False


def _error_fault(error: Any, draft: Draft) -> None:
    """A mid-stream error event becomes `fault: {kind: error_event}` after the content seen so far."""
    error = error if isinstance(error, Mapping) else {}
    fault: dict[str, Any] = {"kind": "error_event", "after": draft.content_events()}
    for key in ("type", "message"):
        if isinstance(error.get(key), str):
            fault[key] = error[key]
    draft.fault = fault


# ---------------------------------------------------------------------------------------------------------
# Streams: one function per API, fed one event's decoded JSON at a time; each returns whether it carried content.


def _chat_event(data: Mapping[str, Any], draft: Draft) -> bool:
    if "error" in data and data.get("error"):
        _error_fault(data["error"], draft)  # wire-formats.md §5.2: an error chunk on a 200 stream
        return False
    return _chat_choices(data, draft, delta_key="delta")


def _chat_choices(data: Mapping[str, Any], draft: Draft, delta_key: str) -> bool:
    if isinstance(data.get("model"), str):
        draft.model = data["model"]
    if data.get("usage"):
        draft.usage = usage_of("chat", data["usage"])
    content = False
    for item in data.get("choices") or ():
        if not isinstance(item, Mapping):
            continue
        choice = draft.choice(_index(item))
        delta = item.get(delta_key) or {}
        content |= _add(choice.text, delta.get("content"))
        content |= _add(choice.refusal, delta.get("refusal"))
        # vLLM and DeepSeek name it `reasoning_content`, newer vLLM and OpenRouter `reasoning` (§12.1).
        content |= _add(choice.reasoning, delta.get("reasoning_content") or delta.get("reasoning"))
        for position, call in enumerate(delta.get("tool_calls") or ()):
            if not isinstance(call, Mapping):
                continue
            key = call.get("index", position) if delta_key == "delta" else position
            draft_call = choice.calls.setdefault(key, CallDraft())
            function = call.get("function") or {}
            if isinstance(function.get("name"), str) and function["name"]:
                draft_call.name = function["name"]
                content = True
            if isinstance(call.get("id"), str):
                draft_call.id = call["id"]
            arguments = function.get("arguments")
            if delta_key == "delta":
                content |= _add(draft_call.fragments, arguments)
            elif isinstance(arguments, str):
                draft_call.arguments = arguments
        finish = item.get("finish_reason")
        if isinstance(finish, str):
            choice.finish = _CHAT_FINISH.get(finish, "stop")
    return content


def _completions_event(data: Mapping[str, Any], draft: Draft) -> bool:
    if "error" in data and data.get("error"):
        _error_fault(data["error"], draft)
        return False
    if isinstance(data.get("model"), str):
        draft.model = data["model"]
    if data.get("usage"):
        draft.usage = usage_of("completions", data["usage"])
    content = False
    for item in data.get("choices") or ():
        if isinstance(item, Mapping):
            choice = draft.choice(_index(item))
            content |= _add(choice.text, item.get("text"))
            if isinstance(item.get("finish_reason"), str):
                choice.finish = _CHAT_FINISH.get(item["finish_reason"], "stop")
    return content


def _messages_event(data: Mapping[str, Any], draft: Draft) -> bool:
    kind = data.get("type")
    choice = draft.choice()
    if kind == "message_start":
        message = data.get("message") or {}
        if isinstance(message.get("model"), str):
            draft.model = message["model"]
        draft.usage = usage_of("messages", message.get("usage"))
    elif kind == "content_block_start":
        block = data.get("content_block") or {}
        index = data.get("index")
        if block.get("type") == "tool_use":
            choice.calls[index] = CallDraft(name=str(block.get("name", "")), id=block.get("id"))
            return True
        if block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            choice.redacted_reasoning = block["data"]
            return True
        if block.get("type") == "text":
            return _add(choice.text, block.get("text"))
        if block.get("type") not in ("thinking", None):
            draft.warnings.append(f"a `{block.get('type')}` content block has no neutral form; it is left out")
    elif kind == "content_block_delta":
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            return _add(choice.text, delta.get("text"))
        if delta.get("type") == "thinking_delta":
            return _add(choice.reasoning, delta.get("thinking"))
        if delta.get("type") == "input_json_delta" and data.get("index") in choice.calls:
            return _add(choice.calls[data["index"]].fragments, delta.get("partial_json"))
    elif kind == "message_delta":
        reason = _get(data, "delta", "stop_reason")
        if isinstance(reason, str):
            choice.finish = _ANTHROPIC_STOP.get(reason, "stop")
        # message_delta's usage is cumulative and may repeat the input figures (§7.2): merge over message_start's.
        recorded = data.get("usage")
        if isinstance(recorded, Mapping):
            draft.usage = usage_of("messages", {**_start_usage(draft), **recorded})
    elif kind == "error":
        _error_fault(data.get("error"), draft)  # wire-formats.md §7.3
    return False


def _start_usage(draft: Draft) -> dict[str, int]:
    """The neutral usage so far, back in Anthropic's names, so that message_delta can update it."""
    usage = draft.usage
    cached, created = usage.get("cached_tokens", 0), usage.get("cache_creation_tokens", 0)
    out = {"cache_read_input_tokens": cached, "cache_creation_input_tokens": created}
    if "prompt_tokens" in usage:
        out["input_tokens"] = usage["prompt_tokens"] - cached - created
    return out


def _responses_event(data: Mapping[str, Any], draft: Draft) -> bool:
    kind = data.get("type")
    choice = draft.choice()
    if kind in ("response.created", "response.in_progress", "response.completed", "response.incomplete"):
        _responses_object(data.get("response") or {}, draft, outputs=False)
    elif kind == "response.failed":
        response = data.get("response") or {}
        if draft.fault is None:
            _error_fault(response.get("error"), draft)
    elif kind == "error":
        # The nested form carries `error: {...}`; the SDK's declared form is flat (wire-formats.md §4).
        _error_fault(data.get("error") if isinstance(data.get("error"), Mapping) else data, draft)
    elif kind == "response.output_item.added":
        item = data.get("item") or {}
        if item.get("type") == "function_call":
            key = data.get("output_index")
            choice.calls[key] = CallDraft(name=str(item.get("name", "")), id=item.get("call_id"))
            return True
    elif kind == "response.output_text.delta":
        return _add(choice.text, data.get("delta"))
    elif kind == "response.refusal.delta":
        return _add(choice.refusal, data.get("delta"))
    elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
        return _add(choice.reasoning, data.get("delta"))
    elif kind == "response.function_call_arguments.delta" and data.get("output_index") in choice.calls:
        return _add(choice.calls[data["output_index"]].fragments, data.get("delta"))
    elif kind == "response.function_call_arguments.done" and data.get("output_index") in choice.calls:
        done = data.get("arguments")
        choice.calls[data["output_index"]].arguments = done if isinstance(done, str) else None
    return False


def _responses_object(response: Mapping[str, Any], draft: Draft, outputs: bool) -> None:
    """A Responses `response` object: model, id, usage, finish; with `outputs`, also its content (a body)."""
    choice = draft.choice()
    if isinstance(response.get("model"), str):
        draft.model = response["model"]
    if isinstance(response.get("id"), str):
        draft.response_id = response["id"]
    if response.get("usage"):
        draft.usage = usage_of("responses", response["usage"])
    reason = _get(response, "incomplete_details", "reason")
    if response.get("status") == "incomplete" and isinstance(reason, str):
        choice.finish = _RESPONSES_INCOMPLETE.get(reason, "length")
    if not outputs:
        return
    for index, item in enumerate(response.get("output") or ()):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "message":
            for part in item.get("content") or ():
                _add(choice.text, part.get("text") if part.get("type") == "output_text" else None)
                _add(choice.refusal, part.get("refusal") if part.get("type") == "refusal" else None)
        elif kind == "reasoning":
            for part in [*(item.get("summary") or ()), *(item.get("content") or ())]:
                _add(choice.reasoning, part.get("text") if isinstance(part, Mapping) else None)
        elif kind == "function_call":
            arguments = item.get("arguments")
            choice.calls[index] = CallDraft(
                name=str(item.get("name", "")),
                id=item.get("call_id"),
                arguments=arguments if isinstance(arguments, str) else None,
            )


_STREAMS = {
    "chat": _chat_event,
    "completions": _completions_event,
    "messages": _messages_event,
    "responses": _responses_event,
}


def decode_events(api: str, events: list[Any]) -> Draft:
    """Decode a recorded SSE stream (`raw.events`)."""
    draft = Draft()
    handle = _STREAMS[api]
    for position, event in enumerate(events):
        data = event.get("data") if isinstance(event, Mapping) else None
        if not isinstance(data, str) or data.strip() == "[DONE]":
            continue
        try:
            payload = json.loads(data)
        except ValueError:
            draft.warnings.append(f"events[{position}] is not JSON; it is left out")
            continue
        if not isinstance(payload, Mapping):
            continue
        if handle(payload, draft):
            at = event.get("at")
            if isinstance(at, int | float) and not isinstance(at, bool):
                draft.content_at.append(float(at))
            else:
                draft.content_at.append(-1.0)  # content without an offset (edited by hand)
    return draft


# ---------------------------------------------------------------------------------------------------------
# Bodies


def decode_body(api: str, body: Any) -> Draft:
    """Decode a recorded JSON body (`raw.body`, already parsed)."""
    draft = Draft()
    if not isinstance(body, Mapping):
        return draft
    if api == "chat":
        _chat_choices(body, draft, delta_key="message")
        for choice in draft.choices.values():
            choice_calls = list(choice.calls.values())
            choice.calls = dict(enumerate(choice_calls))
    elif api == "completions":
        _completions_event(body, draft)
    elif api == "messages":
        choice = draft.choice()
        draft.model = body.get("model") if isinstance(body.get("model"), str) else None
        draft.usage = usage_of("messages", body.get("usage"))
        for index, block in enumerate(body.get("content") or ()):
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "text":
                _add(choice.text, block.get("text"))
            elif kind == "thinking":
                _add(choice.reasoning, block.get("thinking"))
            elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
                choice.redacted_reasoning = block["data"]
            elif kind == "tool_use":
                arguments = json.dumps(block.get("input", {}), ensure_ascii=False)
                choice.calls[index] = CallDraft(
                    name=str(block.get("name", "")), id=block.get("id"), arguments=arguments
                )
        reason = body.get("stop_reason")
        if isinstance(reason, str):
            choice.finish = _ANTHROPIC_STOP.get(reason, "stop")
    elif api == "responses":
        _responses_object(body, draft, outputs=True)
    elif api == "embeddings":
        draft.model = body.get("model") if isinstance(body.get("model"), str) else None
        draft.usage = usage_of("chat", body.get("usage"))
        draft.vectors = [_vector(item.get("embedding")) for item in body.get("data") or () if isinstance(item, Mapping)]
    return draft


def _vector(value: Any) -> list[float]:
    """An embedding as numbers; a base64 one (`encoding_format: base64`) is little-endian float32."""
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(x) for x in value] if isinstance(value, list) else []
