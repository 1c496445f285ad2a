"""The OpenAI Responses API (`POST /v1/responses`), streamed and not.

Wire facts follow reference/wire-formats.md §4: every streamed event has an `event:` line naming its `type` and
a `sequence_number` counting from 0; `response.created` and `response.in_progress` come first, the terminal event
(`response.completed`, `response.incomplete`, `response.failed`) last, and there is no `[DONE]`. Requests are
parsed in `responses_input.py`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from ..scenarios import FaultSpec
from ..sse import named_event
from .base import ChoicePlan, Frame, FrameKind, ParsedRequest, Plan, obfuscation
from .responses_input import API, ResponsesRequest, attach, parse

__all__ = ["API", "attach", "parse", "render_body", "render_error_event", "render_stream"]

Event = tuple[str, dict[str, Any], FrameKind]


def _requested(request: ParsedRequest) -> ResponsesRequest:
    # The app hands every protocol a ParsedRequest; this protocol's parse made it a ResponsesRequest.
    assert isinstance(request, ResponsesRequest)
    return request


def _item_id(request: ResponsesRequest, index: int, prefix: str) -> str:
    """The id of output item `index`: fresh per response, the same in every render of it (stream and body)."""
    return request.item_ids.setdefault(index, prefix + secrets.token_hex(24))


def _encrypted(reasoning: str) -> str:
    """An opaque `encrypted_content`, Fernet-like as the real one looks; clients only send it back."""
    digest = hashlib.sha256(reasoning.encode()).digest() + secrets.token_bytes(32)
    return "gAAAAA" + base64.urlsafe_b64encode(digest).decode()


def _status(choice: ChoicePlan) -> tuple[str, dict[str, Any] | None]:
    """The response's status and `incomplete_details`: a reply cut by `max_output_tokens` is incomplete."""
    if choice.finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if choice.finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _usage(plan: Plan) -> dict[str, Any]:
    return {
        "input_tokens": plan.prompt_tokens,
        "input_tokens_details": {"cached_tokens": plan.cached_tokens},
        "output_tokens": plan.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "total_tokens": plan.total_tokens,
    }


def _tools(body: dict[str, Any]) -> list[Any]:
    """The request's tools as the response echoes them: function tools with `description` and `strict` filled."""
    tools = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and tool.get("type") == "function":
            tool = {
                "type": "function",
                "description": tool.get("description"),
                "name": tool.get("name"),
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict", True),
                **{k: v for k, v in tool.items() if k not in ("type", "description", "name", "parameters", "strict")},
            }
        tools.append(tool)
    return tools


def _given(body: dict[str, Any], key: str, default: Any) -> Any:
    """A request parameter as the response echoes it: the API's default when absent or null."""
    value = body.get(key)
    return default if value is None else value


def _response(
    plan: Plan,
    request: ResponsesRequest,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `response` object (wire-formats.md §4), echoing the request's parameters."""
    body = request.body
    text = body.get("text") or {}
    reasoning = body.get("reasoning") or {}
    now = int(time.time())
    return {
        "id": request.response_id,
        "object": "response",
        "created_at": request.created_at,
        "status": status,
        "background": body.get("background") or False,
        "billing": {"payer": "developer"},
        "completed_at": now if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": plan.model,
        "output": output,
        "parallel_tool_calls": _given(body, "parallel_tool_calls", True),
        "previous_response_id": request.previous_response_id,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_retention": body.get("prompt_cache_retention"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": request.store,
        "temperature": _given(body, "temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity") or "medium"},
        "tool_choice": _given(body, "tool_choice", "auto"),
        "tools": _tools(body),
        "top_logprobs": _given(body, "top_logprobs", 0),
        "top_p": _given(body, "top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _message_parts(choice: ChoicePlan) -> list[dict[str, Any]]:
    """A message item's finished content parts: the text, then the refusal (an empty text for an empty reply)."""
    parts: list[dict[str, Any]] = []
    if choice.text or not (choice.refusal or choice.tool_calls):
        parts.append({"type": "output_text", "annotations": [], "logprobs": [], "text": choice.content})
    if choice.refusal:
        parts.append({"type": "refusal", "refusal": choice.refusal_text})
    return parts


def _render(plan: Plan, request: ResponsesRequest) -> tuple[list[Event], list[dict[str, Any]], dict[str, Any]]:
    """The stream's events (without sequence numbers), the finished output items, and the final response."""
    choice = plan.choices[0]
    status, incomplete = _status(choice)
    item_status = "incomplete" if status == "incomplete" else "completed"
    pad = request.obfuscate
    events: list[Event] = []
    output: list[dict[str, Any]] = []

    def delta(fields: dict[str, Any], piece: str) -> dict[str, Any]:
        fields["delta"] = piece
        if pad:
            fields["obfuscation"] = obfuscation()  # length padding, as on Chat (wire-formats.md §4)
        return fields

    if choice.reasoning:
        index = len(output)
        rid = _item_id(request, index, "rs_")
        item: dict[str, Any] = {"id": rid, "type": "reasoning", "summary": []}
        if request.encrypted:
            item["encrypted_content"] = _encrypted(choice.reasoning_text)
        events.append(("response.output_item.added", {"output_index": index, "item": dict(item)}, "head"))
        if request.summaries:
            # The summary is what a client sees of the reasoning, and only when `reasoning.summary` asks for it.
            at = {"item_id": rid, "output_index": index, "summary_index": 0}
            full = choice.reasoning_text
            events.append(("response.reasoning_summary_part.added", {**at, "part": _summary("")}, "head"))
            events.extend(
                ("response.reasoning_summary_text.delta", delta(dict(at), piece), "content")
                for piece in choice.reasoning
            )
            events.append(("response.reasoning_summary_text.done", {**at, "text": full}, "tail"))
            events.append(("response.reasoning_summary_part.done", {**at, "part": _summary(full)}, "tail"))
            item["summary"] = [_summary(full)]
        events.append(("response.output_item.done", {"output_index": index, "item": item}, "tail"))
        output.append(item)
    parts = _message_parts(choice)
    if parts:
        index = len(output)
        mid = _item_id(request, index, "msg_")
        opened = {"id": mid, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
        events.append(("response.output_item.added", {"output_index": index, "item": opened}, "head"))
        for content_index, part in enumerate(parts):
            at = {"item_id": mid, "output_index": index, "content_index": content_index}
            if part["type"] == "output_text":
                empty: dict[str, Any] = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                events.append(("response.content_part.added", {**at, "part": empty}, "head"))
                events.extend(
                    ("response.output_text.delta", {**delta(dict(at), piece), "logprobs": []}, "content")
                    for piece in choice.text
                )
                done = {**at, "text": part["text"], "logprobs": []}
                events.append(("response.output_text.done", done, "tail"))
            else:
                events.append(
                    ("response.content_part.added", {**at, "part": {"type": "refusal", "refusal": ""}}, "head")
                )
                events.extend(("response.refusal.delta", delta(dict(at), piece), "content") for piece in choice.refusal)
                events.append(("response.refusal.done", {**at, "refusal": part["refusal"]}, "tail"))
            events.append(("response.content_part.done", {**at, "part": part}, "tail"))
        finished = {**opened, "status": item_status, "content": parts}
        events.append(("response.output_item.done", {"output_index": index, "item": finished}, "tail"))
        output.append(finished)
    for call in choice.tool_calls:
        index = len(output)
        fid = _item_id(request, index, "fc_")
        opened = {
            "type": "function_call",
            "id": fid,
            "call_id": call.id,
            "name": call.name,
            "arguments": "",
            "status": "in_progress",
        }
        events.append(("response.output_item.added", {"output_index": index, "item": opened}, "head"))
        at = {"item_id": fid, "output_index": index}
        events.extend(
            ("response.function_call_arguments.delta", delta(dict(at), piece), "content") for piece in call.pieces
        )
        done = {**at, "name": call.name, "arguments": call.arguments}
        events.append(("response.function_call_arguments.done", done, "tail"))
        finished = {**opened, "arguments": call.arguments, "status": item_status}
        events.append(("response.output_item.done", {"output_index": index, "item": finished}, "tail"))
        output.append(finished)
    final = _response(plan, request, status, output, _usage(plan), incomplete)
    return events, output, final


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def _remember(request: ResponsesRequest, output: list[dict[str, Any]]) -> None:
    """Store the conversation this response ends, for a later `previous_response_id` (not with `store: false`)."""
    if request.store and request.conversations is not None:
        request.conversations.remember(request.response_id, [*request.items, *output])


def render_stream(plan: Plan, request: ParsedRequest, dialect: str) -> list[Frame]:
    """The SSE frames of a streamed reply: created, in_progress, the output items, then the terminal event."""
    responses = _requested(request)
    events, output, final = _render(plan, responses)
    opening = _response(plan, responses, "in_progress", [])
    terminal = "response.completed" if final["status"] == "completed" else "response.incomplete"
    sequence: list[Event] = [
        ("response.created", {"response": opening}, "head"),
        ("response.in_progress", {"response": opening}, "head"),
        *events,
        (terminal, {"response": final}, "tail"),
    ]
    _remember(responses, output)
    return [
        Frame(named_event(name, {"type": name, "sequence_number": number, **fields}), kind)
        for number, (name, fields, kind) in enumerate(sequence)
    ]


def render_body(plan: Plan, request: ParsedRequest, dialect: str) -> bytes:
    """The JSON body of a non-streamed reply: the finished response object."""
    responses = _requested(request)
    _events, output, final = _render(plan, responses)
    _remember(responses, output)
    # OpenAI pretty-prints non-streamed bodies with 2-space indentation (wire-formats.md §2.1, §5.1).
    return json.dumps(final, ensure_ascii=False, indent=2).encode()


def render_error_event(
    plan: Plan, request: ParsedRequest, dialect: str, fault: FaultSpec
) -> Callable[[int], list[Frame]]:
    """The mid-stream error (wire-formats.md §4 "Responses errors mid-stream"), numbered after the frames sent.

    The nested form (the live capture: `error: {type, code, message, param}`) makes openai-python raise
    `APIError` at once; the flat form (the SDK's `ResponseErrorEvent`) is yielded as an event and iteration goes
    on. Either is followed by `response.failed`, whose error sits inside `response` and raises nothing.
    """
    responses = _requested(request)
    kind = fault.type or "server_error"
    message = fault.message or "The server had an error while processing your request. Sorry about that!"

    def frames(sent: int) -> list[Frame]:
        if fault.form == "flat":
            error: dict[str, Any] = {
                "type": "error",
                "code": kind,
                "message": message,
                "param": None,
                "sequence_number": sent,
            }
        else:
            details = {"type": kind, "code": kind, "message": message, "param": None}
            error = {"type": "error", "sequence_number": sent, "error": details}
        failed = _response(plan, responses, "failed", [], error={"code": kind, "message": message})
        return [
            Frame(named_event("error", error), "tail"),
            Frame(
                named_event(
                    "response.failed", {"type": "response.failed", "sequence_number": sent + 1, "response": failed}
                ),
                "tail",
            ),
        ]

    return frames
