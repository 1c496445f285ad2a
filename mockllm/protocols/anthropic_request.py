"""Anthropic Messages requests: validated as the real API validates them, reduced to a `ParsedRequest`.

Error messages are the API's own words (pydantic-style `path: problem`, wire-formats.md §7.3 and §12.4), so a
client that sends what Anthropic refuses fails against the mock as it would against the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..tokens import count_tokens
from .base import ParsedRequest, RequestError, require_object

API = "messages"
THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


def _bad(message: str) -> RequestError:
    return RequestError(message, type="invalid_request_error")


def _int(body: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{key}: Input should be a valid integer")
    if value < minimum:
        raise _bad(f"{key}: Input should be greater than or equal to {minimum}")
    return value


def _number(body: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _bad(f"{key}: Input should be a valid number")
    if value < low:
        raise _bad(f"{key}: Input should be greater than or equal to {low:g}")
    if value > high:
        raise _bad(f"{key}: Input should be less than or equal to {high:g}")
    return float(value)


def _str(body: Mapping[str, Any], key: str, where: str | None = None) -> str:
    value = body.get(key)
    path = where or key
    if value is None:
        raise _bad(f"{path}: Field required")
    if not isinstance(value, str):
        raise _bad(f"{path}: Input should be a valid string")
    return value


@dataclass
class Turn:
    """Consecutive messages of one role, merged as the API merges them (its error paths count turns)."""

    role: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad(f"{where}: Input should be a valid string or a list of content blocks")
    for index, block in enumerate(content):
        path = f"{where}.{index}"
        if not isinstance(block, Mapping):
            raise _bad(f"{path}: Input should be a valid dictionary or object to extract fields from")
        kind = block.get("type")
        if not isinstance(kind, str):
            raise _bad(f"{path}.type: Field required")
        if kind == "text":
            _str(block, "text", f"{path}.text")
        elif kind == "tool_use":
            _str(block, "id", f"{path}.id")
            _str(block, "name", f"{path}.name")
            if not isinstance(block.get("input"), Mapping):
                raise _bad(f"{path}.input: Input should be a valid dictionary")
        elif kind == "tool_result":
            _str(block, "tool_use_id", f"{path}.tool_use_id")
        elif kind == "thinking":
            _str(block, "thinking", f"{path}.thinking")
            _str(block, "signature", f"{path}.signature")
        elif kind == "redacted_thinking":
            _str(block, "data", f"{path}.data")
    return list(content)


def _system(value: Any) -> str | None:
    """`system` as a string, or a list of text blocks joined."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _bad("system: Input should be a valid string or a list of text blocks")
    texts = []
    for index, block in enumerate(value):
        if not isinstance(block, Mapping) or block.get("type") != "text":
            raise _bad(f"system.{index}.type: Input should be 'text'")
        texts.append(_str(block, "text", f"system.{index}.text"))
    return "\n".join(texts)


def _tools(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad("tools: Input should be a valid list")
    names = []
    for index, tool in enumerate(value):
        if not isinstance(tool, Mapping):
            raise _bad(f"tools.{index}: Input should be a valid dictionary or object to extract fields from")
        names.append(_str(tool, "name", f"tools.{index}.name"))
    return names


def _stop_sequences(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad("stop_sequences: Input should be a valid list of strings")
    return list(value)


def _thinking(body: Mapping[str, Any]) -> bool:
    """Whether the request turns extended thinking on (its budget checked for type and minimum; the rules that tie
    it to `max_tokens` and `temperature` are in `validation/messages.py`)."""
    value = body.get("thinking")
    if value is None:
        return False
    if not isinstance(value, Mapping) or value.get("type") not in ("enabled", "disabled", "adaptive"):
        raise _bad("thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'")
    if value["type"] == "disabled":
        return False
    if value["type"] == "enabled" and _int(value, "budget_tokens", 1024) is None:
        raise _bad("thinking.enabled.budget_tokens: Field required")
    return True


def turns(messages: list[Any]) -> list[Turn]:
    """The messages merged into turns (consecutive messages of one role are one turn), each checked."""
    merged: list[Turn] = []
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping):
            raise _bad(f"{where}: Input should be a valid dictionary or object to extract fields from")
        role = message.get("role")
        if role == "system":
            raise _bad(
                'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
                'not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise _bad(f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise _bad(f"{where}.content: Field required")
        blocks = _blocks(message["content"], f"{where}.content")
        last = index == len(messages) - 1
        if not (last and role == "assistant") and (not blocks or message["content"] == ""):
            raise _bad(
                f"{where}: all messages must have non-empty content except for the optional final assistant message"
            )
        if merged and merged[-1].role == role:
            merged[-1].blocks.extend(blocks)
        else:
            merged.append(Turn(role, blocks))
    return merged


def _text(blocks: list[dict[str, Any]]) -> str:
    return "".join(b["text"] for b in blocks if b.get("type") == "text")


def _tool_results(turns: list[Turn]) -> list[str]:
    """Names of the tools whose `tool_result` blocks, after the last assistant turn, answer its `tool_use` ids."""
    last = max((i for i, t in enumerate(turns) if t.role == "assistant"), default=-1)
    if last < 0:
        return []
    names = {b["id"]: b["name"] for b in turns[last].blocks if b.get("type") == "tool_use"}
    return [
        names[b["tool_use_id"]]
        for turn in turns[last + 1 :]
        for b in turn.blocks
        if b.get("type") == "tool_result" and b["tool_use_id"] in names
    ]


def _block_tokens(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return count_tokens(block["text"])
    if kind == "tool_use":
        return count_tokens(block["name"]) + count_tokens(json.dumps(block["input"]))
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return sum(_block_tokens(part) for part in content if isinstance(part, Mapping)) + 3
        return count_tokens(content if isinstance(content, str) else "") + 3
    if kind == "thinking":
        return count_tokens(block["thinking"])
    return 0


def parse(raw: Any, headers: Mapping[str, str]) -> ParsedRequest:
    """Validate a Messages request as Anthropic does, and reduce it to what matching needs."""
    body = require_object(raw)
    model = _str(body, "model")
    # A missing `max_tokens` is a contract rule (validation/messages.py), so that `validate: off` lets it through.
    max_tokens = _int(body, "max_tokens", 1)
    messages = body.get("messages")
    if messages is None:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    merged = turns(messages)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream: Input should be a valid boolean")
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _int(body, "top_k", 0)
    thinking = _thinking(body)
    system = _system(body.get("system"))
    texts: list[tuple[str, str]] = [("system", system)] if system is not None else []
    texts += [(str(m["role"]), _text(_blocks(m["content"], ""))) for m in messages]
    # The prompt is the last user turn that says something: a turn of tool results alone keeps the question
    # before it, as Chat Completions does (there the results are `tool` messages, not user messages).
    spoken = [_text(t.blocks) for t in merged if t.role == "user" and any(b.get("type") == "text" for b in t.blocks)]
    prompt_tokens = 3 + count_tokens(system or "") + sum(3 + sum(map(_block_tokens, t.blocks)) for t in merged)
    return ParsedRequest(
        api=API,
        body=body,
        headers=headers,
        model=model,
        stream=bool(stream),
        prompts=spoken[-1:],
        system=system,
        messages=texts,
        tools=_tools(body.get("tools")),
        tool_results=_tool_results(merged),
        turn=sum(1 for m in messages if m["role"] == "assistant"),
        max_tokens=max_tokens,
        stop=_stop_sequences(body.get("stop_sequences")),
        prompt_tokens=prompt_tokens,
        reasoning=thinking,
        call_id_prefix="toolu_01",
    )
