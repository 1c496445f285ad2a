"""What every protocol shares: the neutral request, the reply plan, frames, and request errors.

A protocol module parses its API's request body into a `ParsedRequest` (what matching looks at), and renders
a `Plan` (the reply cut by `n`, `max_tokens` and `stop`) into a non-streamed body or a list of `Frame`s.
Pacing and faults work on frames without knowing the protocol: they only need to know which frames carry
content.
"""

from __future__ import annotations

import functools
import json
import os
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..dialects import profile
from ..scenarios import ChoiceSpec, Reply
from ..tokens import piece_tokens

FrameKind = Literal["head", "content", "tail"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE event, already encoded; `kind` tells pacing and faults what it is."""

    data: bytes
    kind: FrameKind = "content"


# The terminator of OpenAI Chat and legacy Completions streams (wire-formats.md §2.2, §3.1).
DONE = Frame(b"data: [DONE]\n\n", "tail")


class RequestError(Exception):
    """A request the real API would refuse with a 4xx; rendered in the protocol's error shape."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type


@dataclass
class ParsedRequest:
    """A request reduced to what scenarios match on and what changes the answer."""

    api: str
    body: dict[str, Any]
    headers: Mapping[str, str]
    model: str | None = None
    stream: bool = False
    prompts: list[str] = field(default_factory=list)
    system: str | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    tool_results: list[str] = field(default_factory=list)
    turn: int = 0
    n: int = 1
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    include_usage: bool = False
    prompt_tokens: int = 0
    logprobs: int | None = None  # how many top log probabilities a token carries; None when not asked for
    echo: bool = False  # /v1/completions: the prompt comes back before the completion
    inputs: list[str | list[int]] = field(default_factory=list)  # completions prompts, embeddings inputs, as sent
    obfuscate: bool = True  # `stream_options.include_obfuscation` (OpenAI pads streamed chunks unless it is false)
    # The body normalised for comparison with recordings, per set of redaction patterns (computed on first use).
    normalized: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)
    reasoning: bool = True  # whether the reply's reasoning is sent (Anthropic: only when the request enables thinking)
    call_id_prefix: str = "call_"  # how generated tool-call ids start (`toolu_01` on Anthropic)

    @property
    def prompt(self) -> str | None:
        """The last user message's text (the first prompt, for a list of prompts)."""
        return self.prompts[0] if self.prompts else None


@dataclass
class ToolCallPlan:
    """A tool call as it will be sent."""

    id: str
    name: str
    arguments: str
    pieces: list[str]


@dataclass
class ChoicePlan:
    """One choice's content, already cut by `max_tokens` and `stop`."""

    index: int
    reasoning: list[str]
    text: list[str]
    refusal: list[str]
    tool_calls: list[ToolCallPlan]
    finish_reason: str
    stop_reason: str | None = None
    redacted_reasoning: str | None = None  # opaque data of a redacted thinking block (Anthropic)

    @property
    def content(self) -> str:
        return "".join(self.text)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def refusal_text(self) -> str:
        return "".join(self.refusal)

    def completion_tokens(self) -> int:
        pieces = [*self.reasoning, *self.text, *self.refusal]
        return sum(piece_tokens(piece) for piece in pieces) + sum(piece_tokens(c.arguments) for c in self.tool_calls)

    def reasoning_tokens(self) -> int:
        return sum(piece_tokens(piece) for piece in self.reasoning)


@dataclass
class Plan:
    """The whole reply as the protocol will render it."""

    model: str
    choices: list[ChoicePlan]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    vectors: list[list[float]] | None = None  # embeddings fixed by the scenario
    cache_creation_tokens: int = 0  # prompt tokens written to the cache (Anthropic's cache_creation_input_tokens)
    call_ids: tuple[str, ...] = ()  # the tool-call ids made up for this reply (those the scenario does not fix)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def usage(self, vllm: bool, details: bool = True) -> dict[str, Any]:
        """The usage object: vLLM's `UsageInfo` (with cached tokens), or OpenAI's (`details`: the token details that
        Chat Completions carries and legacy Completions does not)."""
        if vllm:
            return {
                "prompt_tokens": self.prompt_tokens,
                "total_tokens": self.total_tokens,
                "completion_tokens": self.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            }
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if details:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens, "audio_tokens": 0}
            usage["completion_tokens_details"] = {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return usage


_ALNUM = string.ascii_letters + string.digits


_ID_ALPHABET = bytes.maketrans(bytes(range(256)), (_ALNUM * 5).encode()[:256])


# Ids are unique, not secret: a generator seeded from the system's randomness in each process (each worker imports
# this afresh) makes them without a system call each, and apart from --seed, which drives replies, not ids.
_ID_RNG = random.Random(os.urandom(32))


def random_id(prefix: str, length: int = 24) -> str:
    """A fresh id in the style the real APIs use (`chatcmpl-…`, `call_…`): letters and digits, one random byte
    each (4 of the 62 are a little likelier: no id is a secret)."""
    return prefix + _ID_RNG.randbytes(length).translate(_ID_ALPHABET).decode()


def openai_headers(dialect: str, rid: str) -> dict[str, str]:
    """The meta headers every answer of the dialect carries: OpenAI's (wire-formats.md §2.3), Azure's request ids and
    remaining-quota pair, or none (vLLM §8.1, Gemini)."""
    headers = profile(dialect).headers
    if headers == "none":
        return {}
    if headers == "azure":
        # Not in the reference: what Azure OpenAI answers are commonly seen with (openai-python reads x-request-id).
        return {
            "x-request-id": rid,
            "apim-request-id": rid.removeprefix("req_"),
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-remaining-tokens": "29999000",
        }
    return {
        "x-request-id": rid,
        "openai-version": "2020-10-01",
        "openai-processing-ms": "1",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-remaining-tokens": "29999000",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-reset-tokens": "2ms",
    }


def request_id() -> str:
    """A fresh request id, `req_` and 32 hex digits, as OpenAI and Anthropic send them."""
    return f"req_{_ID_RNG.getrandbits(128):032x}"


@functools.lru_cache(maxsize=65536)
def json_string(text: str) -> bytes:
    """A string as `compact` encodes it, memoised: the pieces of a scenario's reply come back on every request."""
    return json.dumps(text, ensure_ascii=False).encode()


def compact(value: Any) -> bytes:
    """JSON as the APIs stream it: compact separators, UTF-8 kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _take(pieces: list[str], budget: int) -> tuple[list[str], int, bool]:
    """Keep pieces while their tokens fit in `budget`; return kept pieces, budget left, whether cut."""
    kept: list[str] = []
    for piece in pieces:
        cost = piece_tokens(piece) or 1
        if cost > budget:
            return kept, 0, True
        kept.append(piece)
        budget -= cost
    return kept, budget, False


def _cut_at_stop(pieces: list[str], stops: list[str]) -> tuple[list[str], str | None]:
    text = "".join(pieces)
    hits = [(text.find(stop), stop) for stop in stops if stop and stop in text]
    if not hits:
        return pieces, None
    cut, stop = min(hits)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) <= cut:
            kept.append(piece)
            used += len(piece)
            continue
        if cut > used:
            kept.append(piece[: cut - used])
        break
    return kept, stop


def plan_choice(spec: ChoiceSpec, index: int, request: ParsedRequest, call_ids: list[str]) -> ChoicePlan:
    """Cut one choice by `stop` and `max_tokens` the way a real server does."""
    reasoning = list(spec.reasoning_pieces) if request.reasoning else []
    text = list(spec.text_pieces)
    refusal = list(spec.refusal_pieces)
    calls = [
        ToolCallPlan(call.id or call_ids[i], call.name, call.arguments, list(call.argument_pieces))
        for i, call in enumerate(spec.tool_calls or ())
    ]
    finish = spec.finish_reason or ("tool_calls" if calls else "stop")
    stop_reason: str | None = None
    if request.stop and text:
        text, stop_reason = _cut_at_stop(text, request.stop)
        if stop_reason is not None:
            finish, calls = "stop", []
    if request.max_tokens is not None:
        budget = request.max_tokens
        cut_any = False
        for name in ("reasoning", "text", "refusal"):
            pieces = {"reasoning": reasoning, "text": text, "refusal": refusal}[name]
            kept, budget, cut = _take(pieces, budget)
            cut_any = cut_any or cut
            if name == "reasoning":
                reasoning = kept
            elif name == "text":
                text = kept
            else:
                refusal = kept
        for call in calls:
            kept, budget, cut = _take(call.pieces, budget)
            if cut:
                call.pieces, call.arguments = kept, "".join(kept)
                cut_any = True
        if cut_any:
            finish, stop_reason = "length", None
    redacted = spec.redacted_reasoning if request.reasoning else None
    return ChoicePlan(index, reasoning, text, refusal, calls, finish, stop_reason, redacted)


def plan_reply(reply: Reply, request: ParsedRequest, count: int | None = None) -> Plan:
    """The reply for this request: `n` choices (cycling `choices`), each cut, with usage figures."""
    specs = reply.all_choices()
    n = count if count is not None else max(1, request.n)
    calls = max((len(s.tool_calls or ()) for s in specs), default=0)
    call_ids = [random_id(request.call_id_prefix) for _ in range(calls)]
    choices = [plan_choice(specs[i % len(specs)], i, request, call_ids) for i in range(n)]
    usage = reply.usage
    completion = sum(choice.completion_tokens() for choice in choices)
    reasoning = sum(choice.reasoning_tokens() for choice in choices)
    return Plan(
        model=reply.model or request.model or "mockllm",
        choices=choices,
        prompt_tokens=usage.prompt_tokens if usage and usage.prompt_tokens is not None else request.prompt_tokens,
        completion_tokens=usage.completion_tokens if usage and usage.completion_tokens is not None else completion,
        cached_tokens=usage.cached_tokens if usage and usage.cached_tokens is not None else 0,
        reasoning_tokens=usage.reasoning_tokens if usage and usage.reasoning_tokens is not None else reasoning,
        vectors=reply.vectors,
        cache_creation_tokens=usage.cache_creation_tokens if usage and usage.cache_creation_tokens is not None else 0,
        call_ids=tuple(call_ids),
    )


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return "".join(texts)
    return ""


def type_name(value: Any) -> str:
    """A JSON type name for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def invalid_type(key: str, expected: str, value: Any) -> RequestError:
    """OpenAI's 400 for a parameter of the wrong type."""
    return RequestError(
        f"Invalid type for '{key}': expected {expected}, but got {type_name(value)} instead.",
        param=key,
        code="invalid_type",
    )


def require_object(body: Any) -> dict[str, Any]:
    """The body must be a JSON object."""
    if not isinstance(body, dict):
        raise RequestError(f"The request body must be a JSON object, not {type_name(body)}.")
    return body


def optional_int(body: Mapping[str, Any], key: str, minimum: int = 0, maximum: int | None = None) -> int | None:
    """An optional integer parameter, validated as the real API does."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(key, "an integer", value)
    if value < minimum:
        raise RequestError(
            f"Invalid '{key}': integer below minimum value. Expected a value >= {minimum}, but got {value} instead.",
            param=key,
            code="integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise RequestError(
            f"Invalid '{key}': integer above maximum value. Expected a value <= {maximum}, but got {value} instead.",
            param=key,
            code="integer_above_max_value",
        )
    return value


def optional_number(body: Mapping[str, Any], key: str, minimum: float, maximum: float) -> float | None:
    """An optional decimal parameter within [minimum, maximum], refused in OpenAI's words when outside."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(key, "a decimal", value)
    # json.loads accepts NaN and Infinity; no real server does.
    if value != value or value < minimum:
        raise RequestError(
            f"Invalid '{key}': decimal below minimum value. Expected a value >= {minimum:g}, but got {value} instead.",
            param=key,
            code="decimal_below_min_value",
        )
    if value > maximum:
        raise RequestError(
            f"Invalid '{key}': decimal above maximum value. Expected a value <= {maximum:g}, but got {value} instead.",
            param=key,
            code="decimal_above_max_value",
        )
    return float(value)


def required_model(body: Mapping[str, Any]) -> str:
    """The `model` parameter, which every API requires as a string."""
    model = body.get("model")
    if model is None:
        raise RequestError("you must provide a model parameter", param="model")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    return model


def optional_str(body: Mapping[str, Any], key: str) -> str | None:
    """An optional string parameter."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_type(key, "a string", value)
    return value


def stream_flag(body: Mapping[str, Any]) -> bool:
    """`stream` as a boolean (`stream_options` without it is a contract rule: `validation/chat.py`)."""
    return bool(optional_bool(body, "stream"))


def optional_bool(body: Mapping[str, Any], key: str) -> bool | None:
    """An optional boolean parameter (no truthy strings or numbers, as the real APIs)."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid_type(key, "a boolean", value)
    return value


def check_sampling(body: Mapping[str, Any]) -> None:
    """The sampling parameters OpenAI and vLLM document, checked for type and range (chat and completions).

    They do not change a scripted answer, but a client that sends `temperature: 3` must get the 400 the real
    server sends, naming the parameter.
    """
    optional_number(body, "temperature", 0, 2)
    optional_number(body, "top_p", 0, 1)
    optional_number(body, "frequency_penalty", -2, 2)
    optional_number(body, "presence_penalty", -2, 2)
    optional_int(body, "seed", minimum=-(2**63), maximum=2**63 - 1)
    # vLLM's own sampling parameters, sent through `extra_body`. OpenAI refuses them as unrecognized, but the
    # dialect is only known once a scenario matched, so they are accepted (and checked) in both.
    optional_bool(body, "ignore_eos")
    optional_bool(body, "skip_special_tokens")
    optional_int(body, "top_k", minimum=-1)
    optional_number(body, "min_p", 0, 1)
    optional_int(body, "min_tokens", minimum=0)
    repetition = optional_number(body, "repetition_penalty", 0, 2**31)
    if repetition == 0:
        raise RequestError(
            "Invalid 'repetition_penalty': expected a value > 0, but got 0 instead.",
            param="repetition_penalty",
            code="decimal_below_min_value",
        )
    bias = body.get("logit_bias")
    if bias is not None and not (
        isinstance(bias, Mapping)
        and all(isinstance(v, int | float) and not isinstance(v, bool) and -100 <= v <= 100 for v in bias.values())
    ):
        raise RequestError(
            "Invalid 'logit_bias': expected an object that maps token ids to numbers from -100 to 100.",
            param="logit_bias",
            code="invalid_value",
        )
    optional_str(body, "user")


def stop_list(body: Mapping[str, Any]) -> list[str]:
    """`stop` as a list of strings (a string, a list, or null)."""
    value = body.get("stop")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise RequestError("Invalid type for 'stop': expected a string or an array of strings.", param="stop")


def include_obfuscation(body: Mapping[str, Any]) -> bool:
    """Whether streamed chunks carry `obfuscation` padding: yes unless `stream_options.include_obfuscation` is false."""
    options = body.get("stream_options")
    if not isinstance(options, Mapping):
        return True
    value = options.get("include_obfuscation")
    if value is not None and not isinstance(value, bool):
        raise invalid_type("stream_options.include_obfuscation", "a boolean", value)
    return value is not False


# Padding strings for `obfuscation`, made once: a fresh random string per chunk would cost more than the chunk.
_PAD_RNG = random.Random()
_PADS = tuple("".join(_PAD_RNG.choices(_ALNUM, k=_PAD_RNG.randint(1, 16))) for _ in range(1024))


def obfuscation() -> str:
    """A random `obfuscation` value: OpenAI's length padding, the last key of every streamed chunk since August 2025
    (wire-formats.md §2.2). Clients ignore it; it varies the chunks' lengths as the real ones do."""
    return _PAD_RNG.choice(_PADS)


def include_usage(body: Mapping[str, Any]) -> bool:
    """Whether `stream_options.include_usage` is set."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise RequestError("Invalid type for 'stream_options': expected an object.", param="stream_options")
    return bool(options.get("include_usage"))
