"""OpenAI Chat Completions (`POST /v1/chat/completions`), in every dialect (`mockllm/dialects.py`).

Wire facts follow reference/wire-formats.md §2 (chunk anatomy) and §8 (vLLM differences).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from ..dialects import Dialect, azure_filter_chunk, filter_verdict, prompt_filter_results
from ..dialects import profile as get_profile
from ..sse import data_event
from ..tokens import count_message_tokens, token_ids, tokenize
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
    content_text,
    include_obfuscation,
    include_usage,
    invalid_type,
    json_string,
    obfuscation,
    optional_int,
    random_id,
    require_object,
    required_model,
    stop_list,
    stream_flag,
    type_name,
)

API = "chat"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def parse(raw: Any, headers: Mapping[str, str]) -> ParsedRequest:
    """Validate a chat request the way OpenAI does, and reduce it to what matching needs."""
    body = require_object(raw)
    model = required_model(body)
    messages = body.get("messages")
    if messages is None:
        raise RequestError(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise RequestError(
            f"Invalid type for 'messages': expected an array of objects, but got {type_name(messages)} instead.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise RequestError(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(messages):
        _check_message(index, message)
    stream = stream_flag(body)
    n = optional_int(body, "n", minimum=1)
    if n is not None and n > 128:
        raise RequestError(
            f"Invalid 'n': integer above maximum value. Expected a value <= 128, but got {n} instead.",
            param="n",
            code="integer_above_max_value",
        )
    max_tokens = optional_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = optional_int(body, "max_tokens", minimum=1)
    check_sampling(body)
    top_logprobs = logprobs.chat_request(body)
    tools = _tool_names(body.get("tools"))
    texts = [(str(m["role"]), content_text(m.get("content"))) for m in messages]
    user = [text for role, text in texts if role == "user"]
    system = [text for role, text in texts if role in ("system", "developer")]
    return ParsedRequest(
        api=API,
        body=body,
        headers=headers,
        model=model,
        stream=bool(stream),
        prompts=user[-1:],
        system="\n".join(system) if system else None,
        messages=texts,
        tools=tools,
        tool_results=_tool_results(messages),
        turn=sum(1 for role, _ in texts if role == "assistant"),
        n=n or 1,
        max_tokens=max_tokens,
        stop=stop_list(body),
        include_usage=include_usage(body),
        obfuscate=include_obfuscation(body),
        prompt_tokens=count_message_tokens(messages),
        logprobs=top_logprobs,
    )


def _check_message(index: int, message: Any) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise RequestError(
            f"Invalid type for '{where}': expected an object, but got {type_name(message)} instead.",
            param=where,
            code="invalid_type",
        )
    role = message.get("role")
    if role is None:
        raise RequestError(
            f"Missing required parameter: '{where}.role'.", param=f"{where}.role", code="missing_required_parameter"
        )
    if role not in ROLES:
        raise RequestError(
            f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and "
            f"'developer'.",
            param=f"{where}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise RequestError(
            f"Invalid type for '{where}.content': expected one of a string or array of objects, but got "
            f"{type_name(content)} instead.",
            param=f"{where}.content",
            code="invalid_type",
        )
    if content is None and role in ("user", "system", "developer"):
        raise RequestError(
            f"Missing required parameter: '{where}.content'.",
            param=f"{where}.content",
            code="missing_required_parameter",
        )
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise RequestError(
            f"Missing required parameter: '{where}.tool_call_id'.",
            param=f"{where}.tool_call_id",
            code="missing_required_parameter",
        )
    calls = message.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        raise invalid_type(f"{where}.tool_calls", "an array of objects", calls)
    for j, call in enumerate(calls):
        if not isinstance(call, Mapping):
            raise invalid_type(f"{where}.tool_calls[{j}]", "an object", call)
        function = call.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise RequestError(
                f"Missing required parameter: '{where}.tool_calls[{j}].function.name'.",
                param=f"{where}.tool_calls[{j}].function.name",
                code="missing_required_parameter",
            )


def _tool_names(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise RequestError(
            f"Invalid type for 'tools': expected an array, but got {type_name(tools)} instead.",
            param="tools",
            code="invalid_type",
        )
    names = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str):
            raise RequestError(
                f"Missing required parameter: 'tools[{index}].function.name'.",
                param=f"tools[{index}].function.name",
                code="missing_required_parameter",
            )
        names.append(name)
    return names


def _tool_results(messages: list[Any]) -> list[str]:
    """Names of the tools whose results follow the last assistant message."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0:
        return []
    ids: dict[str, Any] = {}
    for call in messages[last].get("tool_calls") or ():
        # Only string ids pair a call with its result (a malformed id, a list say, must not make a 500).
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping) and isinstance(call.get("id"), str):
            ids[call["id"]] = call["function"].get("name")
    names = []
    for message in messages[last + 1 :]:
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            name = ids.get(call_id, message.get("name")) if isinstance(call_id, str) else message.get("name")
            if isinstance(name, str):
                names.append(name)
        elif message.get("role") == "function" and isinstance(message.get("name"), str):
            names.append(message["name"])
    return names


# ---------------------------------------------------------------------------------------------------------
# Rendering


def _header(cid: str, created: int, plan: Plan, dialect: Dialect) -> dict[str, Any]:
    head: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": plan.model}
    if not dialect.vllm:
        head["service_tier"] = "default"
        if dialect.fingerprint == "every":
            head["system_fingerprint"] = dialect.fingerprint_value
    return head


def _restamp(frame: Frame, extra: dict[str, Any]) -> Frame:
    """The same chunk with keys added at its end: vLLM's last-chunk fingerprint, its first-chunk prompt ids."""
    chunk = json.loads(frame.data.removeprefix(b"data: "))
    return Frame(data_event({**chunk, **extra}), frame.kind)


def _choice_deltas(choice: ChoicePlan, dialect: Dialect) -> list[tuple[dict[str, Any], FrameKind]]:
    """The deltas of one choice in order, each with its frame kind; the finish delta is added by the caller."""
    deltas: list[tuple[dict[str, Any], FrameKind]] = []
    calls = choice.tool_calls
    headers = [
        {"index": j, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        for j, call in enumerate(calls)
    ]
    vllm = dialect.vllm
    reasoning = dialect.reasoning_field
    has_text = bool(choice.text) or (bool(choice.reasoning) and reasoning is not None)
    if vllm:
        deltas.append(({"role": "assistant", "content": ""}, "head"))
    elif choice.refusal:
        deltas.append(({"role": "assistant", "content": None, "refusal": ""}, "head"))
    elif calls and not has_text and len(calls) == 1:
        # One call: the header rides in the role chunk (captures chat-stream-tool-call*.sse).
        deltas.append(({"role": "assistant", "content": None, "tool_calls": headers[:1], "refusal": None}, "head"))
    elif calls and not has_text:
        # Parallel calls: a role-only chunk, then each header (capture chat-stream-tool-call-parallel.sse).
        deltas.append(({"role": "assistant", "content": None}, "head"))
    else:
        deltas.append(({"role": "assistant", "content": "", "refusal": None}, "head"))
    if reasoning is not None:
        deltas.extend(({reasoning: piece}, "content") for piece in choice.reasoning)
    deltas.extend(({"content": piece}, "content") for piece in choice.text)
    # vLLM's deltas have no `refusal` field: a model served by vLLM refuses in ordinary content.
    deltas.extend(({"content" if vllm else "refusal": piece}, "content") for piece in choice.refusal)
    for j, call in enumerate(calls):
        if j > 0 or has_text or len(calls) > 1 or vllm or choice.refusal:
            deltas.append(({"tool_calls": [headers[j]]}, "head"))
        deltas.extend(
            ({"tool_calls": [{"index": j, "function": {"arguments": piece}}]}, "content") for piece in call.pieces
        )
    return deltas


def _entries(pieces: list[str], top: int, start: int = 0) -> list[dict[str, Any]]:
    """One logprobs entry per token of `pieces`, positions counted from `start`."""
    tokens = [token for piece in pieces for token in tokenize(piece)]
    return [logprobs.chat_entry(token, start + i, top) for i, token in enumerate(tokens)]


def _delta_logprobs(
    deltas: list[tuple[dict[str, Any], FrameKind]], top: int | None, vllm: bool
) -> list[dict[str, Any] | None]:
    """The `logprobs` of each delta (wire-formats.md §2.2 "Logprobs"): null unless the request asked for them.

    OpenAI opens with `{"content":[],"refusal":null}` (or the lists under `refusal` in a refusal) and puts one
    entry per token in each content chunk; vLLM sends null on the role chunk and `{"content":[...]}` after.
    """
    if top is None:
        return [None] * len(deltas)
    out: list[dict[str, Any] | None] = []
    seen = {"content": 0, "refusal": 0}
    for delta, _kind in deltas:
        if "role" in delta:
            if not vllm and delta.get("refusal") == "":
                out.append({"content": None, "refusal": []})
            elif not vllm and delta.get("content") == "":
                out.append({"content": [], "refusal": None})
            else:
                out.append(None)
            continue
        key = "content" if "content" in delta else "refusal" if "refusal" in delta else None
        if key is None or (vllm and key == "refusal"):
            out.append(None)
            continue
        entries = _entries([delta[key]], top, seen[key])
        seen[key] += len(entries)
        if vllm:
            out.append({"content": entries})
        elif key == "content":
            out.append({"content": entries, "refusal": None})
        else:
            out.append({"content": None, "refusal": entries})
    return out


def _choice_logprobs(choice: ChoicePlan, top: int | None, vllm: bool) -> dict[str, Any] | None:
    """The `logprobs` of a non-streamed choice: the same entries the stream carries, in one list."""
    if top is None:
        return None
    if vllm:
        return {"content": _entries([*choice.text, *choice.refusal], top)}
    content = _entries(choice.text, top) if choice.text or not choice.refusal else None
    return {"content": content, "refusal": _entries(choice.refusal, top) if choice.refusal else None}


class _ChoiceExtras:
    """The per-choice keys some dialects add: Azure's `content_filter_results`, vLLM's `token_ids` when asked."""

    def __init__(self, dialect: Dialect, request: ParsedRequest) -> None:
        self.filters = dialect.filter_results
        self.token_ids = dialect.token_ids and request.body.get("return_token_ids") is True
        self.any = self.filters or self.token_ids
        self.request = request

    def add(self, choice: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        """`choice` with the extras of a chunk carrying `delta` (the message, for a non-streamed choice)."""
        text = "".join(value for key, value in delta.items() if key != "role" and isinstance(value, str))
        if self.filters:
            # Azure judges generated text; role and finish chunks carry an empty verdict, a filtered finish the
            # category that fired (wire-formats.md §12.2).
            verdict = filter_verdict("violence") if finish == "content_filter" else filter_verdict() if text else {}
            choice["content_filter_results"] = verdict
        if self.token_ids:
            choice["token_ids"] = token_ids(text)
        return choice

    def prompt_ids(self, plan: Plan) -> list[int]:
        """Ids for the prompt's tokens, as many as usage counts."""
        ids = token_ids(" ".join(f"{role}: {text}" for role, text in self.request.messages)) or [0]
        return [ids[i % len(ids)] for i in range(plan.prompt_tokens)]


# A chunk's choice with one text field in its delta, as `compact` would write it.
_TEXT_CHUNK = b'{"index":%d,"delta":{"%s":%s},"logprobs":null,"finish_reason":null}'


def render_stream(plan: Plan, request: ParsedRequest, dialect: str) -> list[Frame]:
    """The SSE frames of a streamed reply, ending with `data: [DONE]`."""
    profile = get_profile(dialect)
    vllm = profile.vllm
    cid = random_id(profile.chat_id_prefix, 29)
    created = int(time.time())
    # Every chunk shares its envelope; encode it once and splice each choice into it.
    envelope = compact(_header(cid, created, plan, profile))
    prefix = b"data: " + envelope[:-1] + b',"choices":['
    head = b"]" + (b',"usage":null' if request.include_usage and not vllm else b"")
    # OpenAI pads every chunk with a random `obfuscation` string, its last key (wire-formats.md §2.2); vLLM does not.
    padded = request.obfuscate and not vllm

    def suffix() -> bytes:
        return head + b',"obfuscation":' + json_string(obfuscation()) + b"}\n\n" if padded else head + b"}\n\n"

    def frame(choice: dict[str, Any], kind: FrameKind) -> Frame:
        return Frame(prefix + compact(choice) + suffix(), kind)

    extras = _ChoiceExtras(profile, request)
    per_choice = [_choice_deltas(choice, profile) for choice in plan.choices]
    per_logprobs = [_delta_logprobs(deltas, request.logprobs, vllm) for deltas in per_choice]
    frames: list[Frame] = []
    # n > 1: choices interleave, one chunk each, index 0 first (capture chat-stream-json-schema-n3.sse). OpenAI
    # sends each choice's role chunk right before that choice's first content chunk, so the stream opens with
    # role 0, content 0, role 1, content 1, ...; vLLM sends every role chunk first.
    lead = 1 if vllm else 2
    rounds = [(0, lead), *((position, position + 1) for position in range(lead, max(map(len, per_choice))))]
    for start, stop in rounds:
        for choice, deltas, probs in zip(plan.choices, per_choice, per_logprobs, strict=True):
            for (delta, kind), logprob in zip(deltas[start:stop], probs[start:stop], strict=True):
                if (
                    not extras.any
                    and logprob is None
                    and len(delta) == 1
                    and isinstance(text := next(iter(delta.values())), str)
                ):
                    # The common chunk (one piece of text, no logprobs), spliced from pre-encoded parts.
                    key = next(iter(delta))
                    body = _TEXT_CHUNK % (choice.index, key.encode(), json_string(text))
                    frames.append(Frame(prefix + body + suffix(), kind))
                    continue
                choice_body = {"index": choice.index, "delta": delta, "logprobs": logprob, "finish_reason": None}
                frames.append(frame(extras.add(choice_body, delta, None), kind))
    for choice in plan.choices:
        finish: dict[str, Any] = {
            "index": choice.index,
            "delta": {},
            "logprobs": None,
            "finish_reason": choice.finish_reason,
        }
        if vllm:
            finish["stop_reason"] = choice.stop_reason
        frames.append(frame(extras.add(finish, {}, choice.finish_reason), "tail"))
    if request.include_usage:
        usage = _header(cid, created, plan, profile)
        usage["choices"] = []
        usage["usage"] = plan.usage(vllm)
        if padded:
            usage["obfuscation"] = obfuscation()
        frames.append(Frame(data_event(usage), "tail"))
    if extras.token_ids:  # vLLM: the prompt's ids ride on the first chunk only (wire-formats.md §12.1)
        frames[0] = _restamp(frames[0], {"prompt_token_ids": extras.prompt_ids(plan)})
    if profile.fingerprint == "last":  # current vLLM stamps the terminal (or usage) chunk only (§12.1)
        frames[-1] = _restamp(frames[-1], {"system_fingerprint": profile.fingerprint_value})
    if profile.filter_results:  # Azure opens with the prompt's verdict and no choices (§12.2)
        frames.insert(0, Frame(data_event(azure_filter_chunk()), "head"))
    frames.append(DONE)
    return frames


def render_body(plan: Plan, request: ParsedRequest, dialect: str) -> bytes:
    """The JSON body of a non-streamed reply."""
    profile = get_profile(dialect)
    vllm = profile.vllm
    extras = _ChoiceExtras(profile, request)
    choices = []
    for choice in plan.choices:
        # vLLM has no refusal of its own: there a refusal is the message's content.
        text = choice.content + choice.refusal_text if vllm else choice.content
        refusal = None if vllm else choice.refusal_text or None
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if (text or not (choice.tool_calls or refusal)) else None,
            "refusal": refusal,
            "annotations": [],
        }
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in choice.tool_calls
            ]
        entry: dict[str, Any] = {
            "index": choice.index,
            "message": message,
            "logprobs": _choice_logprobs(choice, request.logprobs, vllm),
            "finish_reason": choice.finish_reason,
        }
        if vllm:
            message.pop("annotations")
            message[profile.reasoning_field or "reasoning"] = choice.reasoning_text or None
            message.setdefault("tool_calls", [])
            entry["stop_reason"] = choice.stop_reason
        choices.append(extras.add(entry, {"content": choice.content}, choice.finish_reason))
    body: dict[str, Any] = {
        "id": random_id(profile.chat_id_prefix, 29),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": plan.model,
        "choices": choices,
        "usage": plan.usage(vllm),
    }
    if vllm:
        body["prompt_logprobs"] = None
        if extras.token_ids:
            body["prompt_token_ids"] = extras.prompt_ids(plan)
        if profile.fingerprint == "last":
            body["system_fingerprint"] = profile.fingerprint_value
        return compact(body)
    body["service_tier"] = "default"
    if profile.fingerprint == "every":
        body["system_fingerprint"] = profile.fingerprint_value
    if profile.filter_results:
        body["prompt_filter_results"] = prompt_filter_results()
    # OpenAI pretty-prints non-streamed bodies with 2-space indentation (wire-formats.md §2.1).
    return json.dumps(body, ensure_ascii=False, indent=2).encode()
