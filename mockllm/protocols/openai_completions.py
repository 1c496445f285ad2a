"""OpenAI legacy Completions (`POST /v1/completions`), as OpenAI, vLLM and Ray Serve LLM serve it.

Wire facts follow reference/wire-formats.md §3.1 (OpenAI: `text_completion` on every chunk, key order `id,
object, created, choices, model`, the last chunk `"text":""` with the finish reason) and §8 with vLLM's
`completion/serving.py` (key order `id, object, created, model, choices`, `stop_reason` on every choice,
`usage` absent until the usage chunk).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from ..dialects import profile
from ..sse import data_event
from ..tokens import count_tokens, tokenize
from . import logprobs
from .base import (
    DONE,
    ChoicePlan,
    Frame,
    FrameKind,
    ParsedRequest,
    Plan,
    RequestError,
    check_sampling,
    compact,
    include_usage,
    optional_bool,
    optional_int,
    optional_str,
    random_id,
    require_object,
    required_model,
    stop_list,
    stream_flag,
    type_name,
)

API = "completions"
DEFAULT_MAX_TOKENS = 16  # OpenAI's and vLLM's default for /v1/completions (not for chat)
MAX_PROMPTS = 2048
_PROMPT_TYPES = "a string, an array of strings, an array of integers, or an array of arrays of integers"


def parse(raw: Any, headers: Mapping[str, str]) -> ParsedRequest:
    """Validate a completions request the way OpenAI and vLLM do, and reduce it to what matching needs."""
    body = require_object(raw)
    model = required_model(body)
    prompts = prompt_list(body.get("prompt"))
    stream = stream_flag(body)
    n = optional_int(body, "n", minimum=1, maximum=128) or 1
    best_of = optional_int(body, "best_of", minimum=1, maximum=20)
    if best_of is not None and best_of < n:
        raise RequestError(
            f"Invalid 'best_of': it must be greater than or equal to 'n' ({n}), but got {best_of} instead.",
            param="best_of",
            code="invalid_value",
        )
    max_tokens = optional_int(body, "max_tokens", minimum=0)
    echo = bool(optional_bool(body, "echo"))
    top = optional_int(body, "logprobs", minimum=0, maximum=logprobs.MAX_TOP_LOGPROBS)
    optional_str(body, "suffix")  # accepted and validated; a mock has nothing to insert
    if echo and any(not isinstance(prompt, str) for prompt in prompts):
        raise RequestError(
            "mockllm cannot echo a prompt given as token ids: it has no tokenizer vocabulary to turn them back "
            "into text. Send the prompt as text, or drop 'echo'.",
            param="echo",
        )
    check_sampling(body)
    return ParsedRequest(
        api=API,
        body=body,
        headers=headers,
        model=model,
        stream=bool(stream),
        prompts=[prompt for prompt in prompts if isinstance(prompt, str)],
        # One choice per prompt and per `n`: choice i answers prompt i // n (the order OpenAI and vLLM use).
        n=n * len(prompts),
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        stop=stop_list(body),
        include_usage=include_usage(body),
        prompt_tokens=sum(count_tokens(p) if isinstance(p, str) else len(p) for p in prompts),
        logprobs=top,
        echo=echo,
        inputs=prompts,
    )


def prompt_list(value: Any, key: str = "prompt") -> list[str | list[int]]:
    """`prompt` (or embeddings' `input`) as a list: each item a string or a list of token ids."""
    if value is None:
        raise RequestError(f"Missing required parameter: '{key}'.", param=key, code="missing_required_parameter")
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_int(item) for item in value):
        items = [value]  # one prompt given as token ids
    elif isinstance(value, list):
        items = value
    else:
        raise RequestError(
            f"Invalid type for '{key}': expected {_PROMPT_TYPES}, but got {type_name(value)} instead.",
            param=key,
            code="invalid_type",
        )
    if not items:
        raise RequestError(
            f"Invalid '{key}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param=key,
            code="empty_array",
        )
    if len(items) > MAX_PROMPTS:
        raise RequestError(
            f"Invalid '{key}': array too long. Expected an array with maximum length {MAX_PROMPTS}, but got an "
            f"array with length {len(items)} instead.",
            param=key,
            code="array_above_max_length",
        )
    out: list[str | list[int]] = []
    for index, item in enumerate(items):
        where = f"{key}[{index}]" if items is value else key
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list) and item and all(_is_int(token) for token in item):
            negative = min(0, *item)
            if negative < 0:
                raise RequestError(
                    f"Invalid '{where}': token ids are integers from 0 up, but got {negative}.",
                    param=where,
                    code="invalid_value",
                )
            out.append(list(item))
        elif isinstance(item, list) and not item:
            raise RequestError(
                f"Invalid '{where}': empty array. Expected an array of token ids with minimum length 1.",
                param=where,
                code="empty_array",
            )
        else:
            raise RequestError(
                f"Invalid type for '{where}': expected a string or an array of integers (token ids, 0 or more), "
                f"but got {type_name(item)} instead.",
                param=where,
                code="invalid_type",
            )
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------------------
# Rendering


def _finish_reason(choice: ChoicePlan) -> str:
    # Legacy completions know only stop, length and content_filter; a reply written with tool calls ends as stop.
    return choice.finish_reason if choice.finish_reason in ("stop", "length", "content_filter") else "stop"


def _echo(plan: Plan, request: ParsedRequest, index: int) -> str:
    """The prompt choice `index` echoes (empty without `echo`)."""
    if not request.echo:
        return ""
    per_prompt = max(1, len(plan.choices) // max(1, len(request.inputs)))
    prompt = request.inputs[min(index // per_prompt, len(request.inputs) - 1)]
    return prompt if isinstance(prompt, str) else ""


def _envelope(cid: str, created: int, plan: Plan, vllm: bool, choices: list[dict[str, Any]]) -> dict[str, Any]:
    if vllm:
        return {"id": cid, "object": "text_completion", "created": created, "model": plan.model, "choices": choices}
    # OpenAI puts `model` after `choices` (wire-formats.md §3.1).
    return {"id": cid, "object": "text_completion", "created": created, "choices": choices, "model": plan.model}


def _choice(index: int, text: str, probs: dict[str, Any] | None, finish: str | None, vllm: bool) -> dict[str, Any]:
    if vllm:
        return {"index": index, "text": text, "logprobs": probs, "finish_reason": finish, "stop_reason": None}
    return {"text": text, "index": index, "logprobs": probs, "finish_reason": finish}


class _Offsets:
    """Walks one choice's text, token by token, to give each chunk its legacy logprobs."""

    def __init__(self, top: int | None) -> None:
        self.top = top
        self.offset = 0
        self.position = 0

    def take(self, prompt: str, pieces: list[str]) -> dict[str, Any] | None:
        """Logprobs of an echoed prompt (if any) followed by pieces of the completion, token by token."""
        if self.top is None:
            return None
        prompt_tokens = tokenize(prompt)
        tokens = [token for piece in pieces for token in tokenize(piece)]
        positions: list[int | None] = [None] * len(prompt_tokens)
        positions += range(self.position, self.position + len(tokens))
        out = logprobs.legacy_logprobs(prompt_tokens + tokens, positions, self.top, self.offset)
        self.offset += len(prompt) + sum(len(piece) for piece in pieces)
        self.position += len(tokens)
        return out


def render_stream(plan: Plan, request: ParsedRequest, dialect: str) -> list[Frame]:
    """The SSE frames of a streamed reply: one chunk a token, a finish chunk per choice, `data: [DONE]`."""
    vllm = profile(dialect).vllm
    cid = random_id("cmpl-", 29)
    created = int(time.time())

    def frame(choice: dict[str, Any], kind: FrameKind) -> Frame:
        return Frame(data_event(_envelope(cid, created, plan, vllm, [choice])), kind)

    per_choice: list[list[tuple[dict[str, Any], FrameKind]]] = []
    walkers = []
    for choice in plan.choices:
        walker = _Offsets(request.logprobs)
        echo = _echo(plan, request, choice.index)
        # The echoed prompt rides in the first chunk, with the first token (vLLM's `prompt_text + output.text`).
        pieces = list(choice.text) or ([""] if echo else [])
        chunks: list[tuple[dict[str, Any], FrameKind]] = []
        for k, piece in enumerate(pieces):
            prompt = echo if k == 0 else ""
            chunks.append((_choice(choice.index, prompt + piece, walker.take(prompt, [piece]), None, vllm), "content"))
        per_choice.append(chunks)
        walkers.append(walker)
    frames: list[Frame] = []
    # Several choices interleave one chunk each, index 0 first, as for chat.
    for position in range(max((len(chunks) for chunks in per_choice), default=0)):
        for chunks in per_choice:
            if position < len(chunks):
                frames.append(frame(*chunks[position]))
    for choice, walker in zip(plan.choices, walkers, strict=True):
        finish = _choice(choice.index, "", walker.take("", []), _finish_reason(choice), vllm)
        if vllm:
            finish["stop_reason"] = choice.stop_reason
        frames.append(frame(finish, "tail"))
    if request.include_usage:
        usage = _envelope(cid, created, plan, vllm, [])
        usage["usage"] = plan.usage(vllm, details=False)
        frames.append(Frame(data_event(usage), "tail"))
    frames.append(DONE)
    return frames


def render_body(plan: Plan, request: ParsedRequest, dialect: str) -> bytes:
    """The JSON body of a non-streamed reply."""
    vllm = profile(dialect).vllm
    choices = []
    for choice in plan.choices:
        echo = _echo(plan, request, choice.index)
        probs = _Offsets(request.logprobs).take(echo, choice.text)
        entry = _choice(choice.index, echo + choice.content, probs, _finish_reason(choice), vllm)
        if vllm:
            entry["stop_reason"] = choice.stop_reason
            entry["prompt_logprobs"] = None
        choices.append(entry)
    body = _envelope(random_id("cmpl-", 29), int(time.time()), plan, vllm, choices)
    if vllm:
        body["usage"] = plan.usage(vllm, details=False)
        return compact(body)
    # Non-streamed OpenAI bodies: `model` before `choices`, pretty-printed with 2 spaces (wire-formats.md §2.1).
    body = {key: body[key] for key in ("id", "object", "created", "model", "choices")}
    body["usage"] = plan.usage(vllm, details=False)
    return json.dumps(body, ensure_ascii=False, indent=2).encode()
