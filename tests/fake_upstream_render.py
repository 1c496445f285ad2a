"""Bodies and headers for `tests/fake_upstream.py`: what the real OpenAI and Anthropic APIs put on the wire.

Written independently of `mockllm/` on purpose: the fake stands in for the real APIs in the record/replay tests,
so it must not share code (or bugs) with the server under test. Every shape cites
the project's reference notes on the wire formats, wire-formats.md (copied facts, invented ids).
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import string
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_ALNUM = string.ascii_letters + string.digits

# Resolved snapshot names (§2.1: `model` in the answer is the dated snapshot, not the alias asked for).
_SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-3.5-turbo-instruct": "gpt-3.5-turbo-instruct",
}


@dataclass
class Reply:
    """One answer: a whole body (`body`), or SSE events (`events`, each ending with its blank line)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | None = None
    events: list[bytes] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        return self.body is None


def rand_id(prefix: str, length: int = 24) -> str:
    """An id like the API's: a prefix and random letters and digits."""
    return prefix + "".join(random.choices(_ALNUM, k=length))


def obfuscation() -> str:
    """A random padding string like the `obfuscation` key of OpenAI chunks (§2.2): short, varying length."""
    return "".join(random.choices(_ALNUM, k=random.randint(1, 15)))


def snapshot(model: str) -> str:
    return _SNAPSHOTS.get(model, model)


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse(data: str, event: str | None = None) -> bytes:
    """One SSE event, ended by its blank line (§11.1: every event, `[DONE]` included)."""
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {data}\n\n".encode()


def pad(data: str) -> str:
    """Anthropic's length padding (§7.2): a run of spaces before the final brace; the JSON stays valid."""
    return data[:-1] + " " * random.randint(1, 12) + data[-1]


def words(text: str) -> list[str]:
    """The text cut into word-sized stream pieces whose concatenation is the text."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]] if text else []


def tokens(text: str) -> int:
    return max(1, len(text.split()))


# --- the prompt a request carries ---------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    """The text of a message `content`: a string, or a list of text parts (chat, Anthropic or Responses)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and "text" in part
        ).strip()
    return ""


def last_user_text(body: Any) -> str:
    """The last user text of a chat, Anthropic, Responses or Completions request body ("" when there is none)."""
    if not isinstance(body, dict):
        return ""
    if "prompt" in body:
        prompt = body["prompt"]
        return str(prompt[0] if isinstance(prompt, list) and prompt else prompt)
    items = body.get("messages")
    if items is None:
        items = body.get("input")
        if isinstance(items, str):
            return items
    if not isinstance(items, list):
        return ""
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return _content_text(item.get("content"))
    return ""


# --- headers ------------------------------------------------------------------------------------------------


def openai_headers(content_type: str, processing_ms: int) -> list[tuple[str, str]]:
    """The headers of an OpenAI answer (§2.3): meta, rate limits with Go-style durations, edge headers."""
    expires = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%a, %d-%b-%y %H:%M:%S GMT")
    return [
        ("content-type", content_type),
        ("access-control-expose-headers", "X-Request-ID"),
        ("openai-organization", "org-fakeupstream"),
        ("openai-processing-ms", str(processing_ms)),
        ("openai-project", "proj_fakeupstream"),
        ("openai-version", "2020-10-01"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "30000000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-remaining-tokens", "29999985"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-reset-tokens", "0s"),
        ("x-request-id", "req_" + secrets.token_hex(16)),
        ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
        ("cf-cache-status", "DYNAMIC"),
        (
            "set-cookie",
            f"__cf_bm={rand_id('', 43)}-{int(time.time())}-1.0.1.1-{rand_id('', 60)}; path=/; expires={expires}; "
            "domain=.api.openai.com; HttpOnly; Secure; SameSite=None",
        ),
        ("server", "cloudflare"),
        ("cf-ray", secrets.token_hex(8) + "-AMS"),
        ("alt-svc", 'h3=":443"; ma=86400'),
    ]


def anthropic_headers(content_type: str) -> list[tuple[str, str]]:
    """The headers of an Anthropic answer (§7.4): `request-id` (not x-), rate limits with RFC 3339 resets."""
    reset = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = [("content-type", content_type)]
    for kind, limit in (("requests", 4000), ("tokens", 2000000), ("input-tokens", 1600000), ("output-tokens", 400000)):
        remaining = limit - 1 if kind == "requests" else limit - 1000  # token counts are rounded to thousands
        headers += [
            (f"anthropic-ratelimit-{kind}-limit", str(limit)),
            (f"anthropic-ratelimit-{kind}-remaining", str(remaining)),
            (f"anthropic-ratelimit-{kind}-reset", reset),
        ]
    headers += [
        ("request-id", rand_id("req_011C", 20)),
        ("anthropic-organization-id", "7c2a1f0e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
        ("via", "1.1 google"),
        ("cf-cache-status", "DYNAMIC"),
        ("x-robots-tag", "none"),
        ("server", "cloudflare"),
        ("cf-ray", secrets.token_hex(8) + "-AMS"),
    ]
    if content_type.startswith("text/event-stream"):
        headers.append(("cache-control", "no-cache"))
    return headers


# --- errors -------------------------------------------------------------------------------------------------

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-...abcd. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: (
        "tokens",
        "rate_limit_exceeded",
        "Rate limit reached for gpt-4o-mini in organization org-fakeupstream on tokens per min (TPM): "
        "Limit 30000, Used 29937, Requested 385. Please try again in 644ms.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error processing your request. Sorry about that! You can retry your request, or "
        "contact us through our help center at help.openai.com if you keep seeing this error.",
    ),
}

_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def openai_error_body(status: int, message: str | None = None) -> bytes:
    """An OpenAI error body (§5.1), 4-space indented with a trailing newline as the API's error layer sends."""
    kind, code, default = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}.")
    )
    error = {"message": message or default, "type": kind, "param": None, "code": code}
    return (json.dumps({"error": error}, indent=4) + "\n").encode()


def anthropic_error_body(status: int, message: str | None = None) -> bytes:
    """An Anthropic error body (§7.3): compact, with the error type by status and a `request_id`."""
    kind = _ANTHROPIC_ERRORS.get(status, "api_error")
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or kind.replace("_", " ").capitalize()},
        "request_id": rand_id("req_011C", 20),
    }
    return compact(body).encode()


# --- OpenAI Chat Completions (§2) ---------------------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat(body: dict[str, Any], text: str) -> tuple[bytes | None, list[bytes]]:
    """A chat answer with `text`: the 2-space body (§2.1) or the chunk events ending in `[DONE]` (§2.2)."""
    model = snapshot(str(body.get("model", "gpt-4o-mini")))
    ident, created, fingerprint = rand_id("chatcmpl-", 29), int(time.time()), "fp_" + secrets.token_hex(5)
    usage = _usage(tokens(last_user_text(body)) + 8, tokens(text))
    if not body.get("stream"):
        answer = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        }
        return json.dumps(answer, indent=2, ensure_ascii=False).encode(), []
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage"))
    obfuscate = options.get("include_obfuscation", True) is not False

    def chunk(choices: list[dict[str, Any]], final_usage: dict[str, Any] | None = None) -> bytes:
        # Key order as in the 2025-26 captures: service_tier right after model, obfuscation last (§2.2).
        obj: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
            "choices": choices,
        }
        if include_usage:
            obj["usage"] = final_usage
        if obfuscate:
            obj["obfuscation"] = obfuscation()
        return sse(compact(obj))

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    events = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
    events += [chunk(choice({"content": piece})) for piece in words(text)]
    events.append(chunk(choice({}, "stop")))
    if include_usage:
        events.append(chunk([], usage))
    events.append(sse("[DONE]"))
    return None, events


# --- OpenAI legacy Completions and Models (§3) -------------------------------------------------------------


def completions(body: dict[str, Any], text: str) -> tuple[bytes | None, list[bytes]]:
    """A legacy completion: `object: text_completion` in the body and in every chunk, `model` after `choices`."""
    model = snapshot(str(body.get("model", "gpt-3.5-turbo-instruct")))
    ident, created = rand_id("cmpl-", 29), int(time.time())

    def obj(choice_text: str, finish: str | None) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "text_completion",
            "created": created,
            "choices": [{"text": choice_text, "index": 0, "logprobs": None, "finish_reason": finish}],
            "model": model,
        }

    if not body.get("stream"):
        answer = obj(text, "stop")
        answer["usage"] = {
            "prompt_tokens": tokens(last_user_text(body)),
            "completion_tokens": tokens(text),
            "total_tokens": tokens(last_user_text(body)) + tokens(text),
        }
        return json.dumps(answer, indent=2, ensure_ascii=False).encode(), []
    events = [sse(compact(obj(piece, None))) for piece in words(text)]
    events += [sse(compact(obj("", "stop"))), sse("[DONE]")]
    return None, events


OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small"]
ANTHROPIC_MODELS = ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]


def models_openai() -> bytes:
    data = [{"id": m, "object": "model", "created": 1721172741, "owned_by": "system"} for m in OPENAI_MODELS]
    return json.dumps({"object": "list", "data": data}, indent=2).encode()


def models_anthropic() -> bytes:
    data = [
        {"type": "model", "id": m, "display_name": m.replace("-", " ").title(), "created_at": "2025-05-14T00:00:00Z"}
        for m in ANTHROPIC_MODELS
    ]
    return compact({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}).encode()


def embeddings(body: dict[str, Any]) -> bytes:
    """Embeddings: one vector per input, base64 float32 when asked (openai-python asks for base64 by default)."""
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    data = []
    for index, item in enumerate(items):
        rng = random.Random(str(item))  # the same input always gets the same vector
        vector = [round(rng.uniform(-1, 1), 6) for _ in range(int(body.get("dimensions") or 8))]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    count = sum(tokens(str(item)) for item in items)
    answer = {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "text-embedding-3-small")),
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }
    return json.dumps(answer, indent=2).encode()


# --- OpenAI Responses (§4) ----------------------------------------------------------------------------------


def responses(body: dict[str, Any], text: str) -> tuple[bytes | None, list[bytes]]:
    """A Responses answer: the response object, or typed events with `sequence_number` and no `[DONE]` (§4)."""
    model = snapshot(str(body.get("model", "gpt-4.1-mini")))
    ident, item_id, created = "resp_" + secrets.token_hex(24), "msg_" + secrets.token_hex(24), int(time.time())
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item = {"id": item_id, "type": "message", "status": "completed", "content": [part], "role": "assistant"}
    prompt = tokens(last_user_text(body)) + 8
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": tokens(text),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + tokens(text),
    }

    def response(status: str, output: list[Any], final_usage: Any) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "response",
            "created_at": created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": True,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": body.get("tools", []),
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": final_usage,
            "user": None,
            "metadata": {},
        }

    if not body.get("stream"):
        return json.dumps(response("completed", [item], usage), indent=2, ensure_ascii=False).encode(), []
    flow: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("in_progress", [], None)},
        {"type": "response.in_progress", "response": response("in_progress", [], None)},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": {**part, "text": ""},
        },
    ]
    flow += [
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
            "obfuscation": obfuscation(),
        }
        for piece in words(text)
    ]
    flow += [
        {
            "type": "response.output_text.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        },
        {"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response("completed", [item], usage)},
    ]
    events = []
    for number, event in enumerate(flow):
        # `sequence_number` second, as in the captures; it counts from 0 (§4).
        ordered = {"type": event["type"], "sequence_number": number, **event}
        events.append(sse(compact(ordered), event=event["type"]))
    return None, events


# --- Anthropic Messages (§7) --------------------------------------------------------------------------------


def messages(body: dict[str, Any], text: str) -> tuple[bytes | None, list[bytes]]:
    """An Anthropic answer: compact JSON (§7.1), or named events with ping and whitespace padding (§7.2)."""
    model = str(body.get("model", "claude-sonnet-4-20250514"))
    ident = rand_id("msg_01", 22)
    prompt = tokens(last_user_text(body)) + 8
    usage = {
        "input_tokens": prompt,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": tokens(text),
        "service_tier": "standard",
    }
    message = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return compact(message).encode(), []
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events = [
        sse(pad(compact({"type": "message_start", "message": start})), "message_start"),
        sse(
            compact({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            "content_block_start",
        ),
        sse('{"type": "ping"}', "ping"),  # the space after the colon is in every capture (§7.2)
    ]
    events += [
        sse(
            pad(compact({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})),
            "content_block_delta",
        )
        for piece in words(text)
    ]
    events += [
        sse(compact({"type": "content_block_stop", "index": 0}), "content_block_stop"),
        sse(
            pad(
                compact(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": {"output_tokens": tokens(text)},
                    }
                )
            ),
            "message_delta",
        ),
        sse(pad(compact({"type": "message_stop"})), "message_stop"),
    ]
    return None, events
