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


def _thinking(body: Mapping[str, Any], max_tokens: int) -> bool:
    """Whether the request turns extended thinking on; its budget is checked as the API checks it."""
    value = body.get("thinking")
    if value is None:
        return False
    if not isinstance(value, Mapping) or value.get("type") not in ("enabled", "disabled", "adaptive"):
        raise _bad("thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'")
    if value["type"] == "disabled":
        return False
    if value["type"] == "enabled":
        budget = _int(value, "budget_tokens", 1024)
        if budget is None:
            raise _bad("thinking.enabled.budget_tokens: Field required")
        if budget >= max_tokens:
            raise _bad(
                f"`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                f"{THINKING_DOCS}#max-tokens-and-context-window-size"
            )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise _bad(
            f"`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please consult our "
            f"documentation at {THINKING_DOCS}#feature-compatibility"
        )
    return True


def _turns(messages: list[Any]) -> list[Turn]:
    turns: list[Turn] = []
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
        if turns and turns[-1].role == role:
            turns[-1].blocks.extend(blocks)
        else:
            turns.append(Turn(role, blocks))
    return turns


def _check_tool_pairs(turns: list[Turn], thinking: bool) -> None:
    """Every `tool_result` answers a `tool_use` of the turn before, and every `tool_use` is answered (§12.4)."""
    for position, turn in enumerate(turns):
        if turn.role != "user":
            continue
        previous = turns[position - 1] if position > 0 else None
        asked = {b["id"] for b in previous.blocks if b.get("type") == "tool_use"} if previous else set()
        answered = [(i, b["tool_use_id"]) for i, b in enumerate(turn.blocks) if b.get("type") == "tool_result"]
        stray = [tool_id for _, tool_id in answered if tool_id not in asked]
        if stray:
            first = next(i for i, tool_id in answered if tool_id in stray)
            raise _bad(
                f"messages.{position}.content.{first}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(stray)}. Each `tool_result` block must have a corresponding `tool_use` block in the "
                f"previous message."
            )
        missing = sorted(asked - {tool_id for _, tool_id in answered})
        if missing:
            raise _bad(
                f"messages.{position - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                f"next message."
            )
    # With thinking on, the assistant turn whose tool calls are being answered must be sent back with its
    # thinking (or redacted thinking) block first, signature and all (§12.4).
    if thinking and len(turns) >= 2 and turns[-1].role == "user" and turns[-2].role == "assistant":
        answering = any(b.get("type") == "tool_result" for b in turns[-1].blocks)
        leading = turns[-2].blocks[0].get("type") if turns[-2].blocks else None
        if answering and leading not in ("thinking", "redacted_thinking"):
            raise _bad(
                f"messages.{len(turns) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{leading}`. When `thinking` is enabled, a final `assistant` message must start with a thinking "
                f"block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                f"thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
                f"our documentation at {THINKING_DOCS}"
            )


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
    if body.get("max_tokens") is None:
        # The API's 400 for the parameter clients most often forget (DESIGN.md "No false greens").
        raise _bad("max_tokens: Field required")
    max_tokens = _int(body, "max_tokens", 1)
    assert max_tokens is not None
    messages = body.get("messages")
    if messages is None:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    turns = _turns(messages)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream: Input should be a valid boolean")
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _int(body, "top_k", 0)
    thinking = _thinking(body, max_tokens)
    _check_tool_pairs(turns, thinking)
    system = _system(body.get("system"))
    texts: list[tuple[str, str]] = [("system", system)] if system is not None else []
    texts += [(str(m["role"]), _text(_blocks(m["content"], ""))) for m in messages]
    # The prompt is the last user turn that says something: a turn of tool results alone keeps the question
    # before it, as Chat Completions does (there the results are `tool` messages, not user messages).
    spoken = [_text(t.blocks) for t in turns if t.role == "user" and any(b.get("type") == "text" for b in t.blocks)]
    prompt_tokens = 3 + count_tokens(system or "") + sum(3 + sum(map(_block_tokens, t.blocks)) for t in turns)
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
        tool_results=_tool_results(turns),
        turn=sum(1 for m in messages if m["role"] == "assistant"),
        max_tokens=max_tokens,
        stop=_stop_sequences(body.get("stop_sequences")),
        prompt_tokens=prompt_tokens,
        reasoning=thinking,
        call_id_prefix="toolu_01",
    )
