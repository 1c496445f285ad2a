"""The contract rules of Anthropic Messages (wire-formats.md §12.4).

Anthropic's 400s carry no `param`: the path is the message's prefix (`messages.2.content.0: ...`), pydantic style.
The consecutive-turn merge of `protocols/anthropic_request.turns` is the API's own (its docs: consecutive user or
assistant turns are combined into one), so turn numbers in these messages count merged turns, as the API's do.
"""

from __future__ import annotations

from typing import Any

from ..protocols.anthropic_request import THINKING_DOCS, Turn, turns
from ..protocols.base import ParsedRequest
from .core import Violation


def check(request: ParsedRequest) -> Violation | None:
    """The first Messages rule this request breaks, or None."""
    body = request.body
    if body.get("max_tokens") is None:
        # The API's 400 for the parameter clients most often forget (DESIGN.md "No false greens").
        return Violation(
            "max-tokens-required",
            "max_tokens: Field required",
            "Anthropic requires `max_tokens` on every Messages request.",
        )
    merged = turns(body["messages"])  # parse checked them already; this cannot raise
    return _thinking(body, request.reasoning) or _tool_pairs(merged) or _thinking_first(merged, request.reasoning)


def _thinking(body: dict[str, Any], thinking: bool) -> Violation | None:
    """Extended thinking's budget below `max_tokens`, and `temperature` left at 1 (the API's words, from its docs'
    error examples)."""
    if not thinking:
        return None
    budget = body["thinking"].get("budget_tokens")
    if body["thinking"].get("type") == "enabled" and isinstance(budget, int) and budget >= body["max_tokens"]:
        return Violation(
            "thinking-budget-below-max-tokens",
            f"`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            f"{THINKING_DOCS}#max-tokens-and-context-window-size",
            "`thinking.budget_tokens` must be less than `max_tokens`.",
        )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        return Violation(
            "thinking-temperature",
            f"`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please consult our "
            f"documentation at {THINKING_DOCS}#feature-compatibility",
            "with thinking on, `temperature` must be 1 or left out.",
        )
    return None


def _tool_pairs(merged: list[Turn]) -> Violation | None:
    """Every `tool_result` answers a `tool_use` of the turn before, and every `tool_use` is answered in the next."""
    for position, turn in enumerate(merged):
        if turn.role != "user":
            continue
        previous = merged[position - 1] if position > 0 else None
        asked = {b["id"] for b in previous.blocks if b.get("type") == "tool_use"} if previous else set()
        answered = [(i, b["tool_use_id"]) for i, b in enumerate(turn.blocks) if b.get("type") == "tool_result"]
        stray = [tool_id for _, tool_id in answered if tool_id not in asked]
        if stray:
            first = next(i for i, tool_id in answered if tool_id in stray)
            return Violation(
                "tool-result-answers-tool-use",
                f"messages.{position}.content.{first}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(stray)}. Each `tool_result` block must have a corresponding `tool_use` block in the "
                f"previous message.",
                "a `tool_result` block must answer a `tool_use` id of the assistant turn just before it.",
            )
        missing = sorted(asked - {tool_id for _, tool_id in answered})
        if missing:
            return Violation(
                "tool-use-answered",
                f"messages.{position - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                f"next message.",
                "every `tool_use` block needs its `tool_result` block in the very next user turn.",
            )
    return None


def _thinking_first(merged: list[Turn], thinking: bool) -> Violation | None:
    """With thinking on, the assistant turn whose tool calls are being answered is sent back with its thinking (or
    redacted thinking) block first, signature and all (§12.4; the API's message, typo included)."""
    if not (thinking and len(merged) >= 2 and merged[-1].role == "user" and merged[-2].role == "assistant"):
        return None
    answering = any(b.get("type") == "tool_result" for b in merged[-1].blocks)
    leading = merged[-2].blocks[0].get("type") if merged[-2].blocks else None
    if answering and leading not in ("thinking", "redacted_thinking"):
        return Violation(
            "thinking-block-first",
            f"messages.{len(merged) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{leading}`. When `thinking` is enabled, a final `assistant` message must start with a thinking "
            f"block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
            f"thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
            f"our documentation at {THINKING_DOCS}",
            "with thinking on, the assistant turn whose tool calls are answered must start with its `thinking` "
            "block (with its `signature`) or its `redacted_thinking` block, as the API returned them.",
        )
    return None
