"""Requests to the OpenAI Responses API: validated as the real API does, reduced to what matching needs.

The conversation is a list of input items (wire-formats.md §4): messages (`{role, content}`, typed or not),
`function_call` items the model made and `function_call_output` items answering them, `reasoning` items, and
`item_reference`s. With `previous_response_id` the stored conversation that response ended comes first, so a
scenario written for Chat Completions (`prompt`, `after_tool`, `turn`, `messages`) matches the same exchange
spoken in Responses.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..conversations import Conversations, Item
from ..tokens import count_tokens
from .base import (
    ParsedRequest,
    RequestError,
    content_text,
    include_obfuscation,
    invalid_type,
    optional_bool,
    optional_int,
    optional_number,
    optional_str,
    require_object,
    required_model,
    stream_flag,
    type_name,
)

API = "responses"

# ResponseIncludable in openai-python (`types/responses/response_includable.py`).
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)
# The input item types of ResponseInputItemParam (openai-python 3.3), besides messages.
ITEM_TYPES = (
    "message", "function_call", "function_call_output", "reasoning", "item_reference", "file_search_call",
    "computer_call", "computer_call_output", "web_search_call", "tool_search_call", "tool_search_output",
    "additional_tools", "compaction", "compaction_trigger", "image_generation_call", "code_interpreter_call",
    "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call",
    "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "mcp_call",
    "custom_tool_call", "custom_tool_call_output", "program", "program_output",
)  # fmt: skip
ROLES = ("user", "assistant", "system", "developer")
INPUT_PARTS = ("input_text", "input_image", "input_file", "input_audio")
OUTPUT_PARTS = ("output_text", "refusal")
SUMMARIES = ("auto", "concise", "detailed")
# Items the model produced: consecutive ones form one assistant turn, as one Chat assistant message would.
_MODEL_ITEMS = {"reasoning", "function_call", "custom_tool_call", "computer_call", "web_search_call", "mcp_call"}


@dataclass
class ResponsesRequest(ParsedRequest):
    """A Responses request: the neutral fields plus what rendering and the conversation store need."""

    response_id: str = ""
    items: list[Item] = field(default_factory=list)  # the whole conversation: stored items, then this input
    input_items: list[Item] = field(default_factory=list)  # this request's own input, as sent
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    summaries: bool = False  # reasoning.summary asked for: the reasoning item carries its summary text
    encrypted: bool = False  # include has reasoning.encrypted_content
    conversations: Conversations | None = None
    previous_known: bool = True  # False when `previous_response_id` names a response this run never gave
    item_ids: dict[int, str] = field(default_factory=dict)  # output index -> item id, the same in every render
    created_at: int = field(default_factory=lambda: int(time.time()))


def _bad_value(value: Any, param: str, supported: tuple[str, ...]) -> RequestError:
    listed = ", ".join(f"'{name}'" for name in supported[:-1]) + f", and '{supported[-1]}'"
    return RequestError(f"Invalid value: '{value}'. Supported values are: {listed}.", param=param, code="invalid_value")


def _missing(param: str) -> RequestError:
    return RequestError(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _object(value: Any, param: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    return value


def _required_str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if value is None:
        raise _missing(f"{where}.{key}")
    if not isinstance(value, str):
        raise invalid_type(f"{where}.{key}", "a string", value)
    return value


def parse(raw: Any, headers: Mapping[str, str]) -> ResponsesRequest:
    """Validate a Responses request the way OpenAI does, and reduce it to what matching needs.

    A request that continues a stored conversation (`previous_response_id`, `item_reference`) is completed by
    `attach` once the server's conversation store is at hand.
    """
    body = require_object(raw)
    model = required_model(body)
    stream = stream_flag(body)
    _object(body.get("stream_options"), "stream_options")  # an object when given
    instructions = optional_str(body, "instructions")
    max_tokens = optional_int(body, "max_output_tokens", minimum=16)
    optional_number(body, "temperature", 0, 2)
    optional_number(body, "top_p", 0, 1)
    optional_int(body, "top_logprobs", minimum=0, maximum=20)
    optional_int(body, "max_tool_calls", minimum=1)
    store = optional_bool(body, "store")
    optional_bool(body, "background")
    optional_bool(body, "parallel_tool_calls")
    optional_str(body, "user")
    _object(body.get("metadata"), "metadata")
    previous = optional_str(body, "previous_response_id")
    include = _include(body.get("include"))
    reasoning = _object(body.get("reasoning"), "reasoning") or {}
    summary = reasoning.get("summary")
    if summary is not None and summary not in SUMMARIES:
        raise _bad_value(summary, "reasoning.summary", SUMMARIES)
    text = _object(body.get("text"), "text") or {}
    _object(text.get("format"), "text.format")
    tools = _tool_names(body.get("tools"))
    input_items = _input_items(body.get("input"))
    request = ResponsesRequest(
        api=API,
        body=body,
        headers=headers,
        model=model,
        stream=stream,
        tools=tools,
        max_tokens=max_tokens,
        response_id="resp_" + secrets.token_hex(24),
        input_items=input_items,
        instructions=instructions,
        previous_response_id=previous,
        store=store is not False,
        summaries=summary is not None,
        encrypted="reasoning.encrypted_content" in include,
        obfuscate=include_obfuscation(body),
    )
    if previous is None and not any(item.get("type") == "item_reference" for item in input_items):
        _derive(request, list(input_items))
    return request


def attach(request: ParsedRequest, conversations: Conversations) -> None:
    """Give the request the server's conversation store: continue `previous_response_id`, resolve references.

    An id this run never gave continues nothing: `validation/responses.py` refuses it (unless validation is off).
    """
    assert isinstance(request, ResponsesRequest)  # the app calls this protocol's hook with its own requests
    request.conversations = conversations
    if request.previous_response_id is None and request.items:
        return
    items: list[Item] = []
    if request.previous_response_id is not None:
        stored = conversations.recall(request.previous_response_id)
        request.previous_known = stored is not None
        items.extend(stored or [])
    for index, item in enumerate(request.input_items):
        if item.get("type") == "item_reference":
            found = conversations.find_item(item["id"])
            if found is None:
                raise RequestError(
                    f"Item with id '{item['id']}' not found.", param=f"input[{index}].id", code="invalid_value"
                )
            item = found
        items.append(item)
    _derive(request, items)


def _include(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_type("include", "an array of strings", value)
    for index, name in enumerate(value):
        if name not in INCLUDABLE:
            raise _bad_value(name, f"include[{index}]", INCLUDABLE)
    return list(value)


def _tool_names(tools: Any) -> list[str]:
    """Names the request offers: function and custom tools by name, built-in tools (web_search ...) by type."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array of objects", tools)
    names = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, Mapping):
            raise invalid_type(where, "an object", tool)
        kind = tool.get("type")
        if not isinstance(kind, str):
            raise _missing(f"{where}.type")
        if kind in ("function", "custom"):
            # Responses tools are flat; a Chat-style `{"type": "function", "function": {...}}` has no `name` here.
            names.append(_required_str(tool, "name", where))
        else:
            names.append(kind)
    return names


def _input_items(value: Any) -> list[Item]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise RequestError(
            f"Invalid type for 'input': expected one of a string or an array of input items, but got "
            f"{type_name(value)} instead.",
            param="input",
            code="invalid_type",
        )
    return [_check_item(index, item) for index, item in enumerate(value)]


def _check_item(index: int, item: Any) -> Item:
    where = f"input[{index}]"
    if not isinstance(item, Mapping):
        raise invalid_type(where, "an object", item)
    kind = item.get("type")
    if kind is None and "role" in item:
        kind = "message"  # EasyInputMessage: `{role, content}` with no type
    if kind is None:
        raise _missing(f"{where}.type")
    if kind not in ITEM_TYPES:
        raise _bad_value(kind, f"{where}.type", ITEM_TYPES)
    if kind == "message":
        _check_message(item, where)
    elif kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            _required_str(item, key, where)
    elif kind == "function_call_output":
        _required_str(item, "call_id", where)
        output = item.get("output")
        if output is None:
            raise _missing(f"{where}.output")
        if not isinstance(output, str | list):
            raise invalid_type(f"{where}.output", "a string or an array of content items", output)
    elif kind == "item_reference":
        _required_str(item, "id", where)
    return {**item, "type": kind}


def _check_message(item: Mapping[str, Any], where: str) -> None:
    role = item.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if role not in ROLES:
        raise _bad_value(role, f"{where}.role", ROLES)
    content = item.get("content")
    if content is None:
        raise _missing(f"{where}.content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid_type(f"{where}.content", "a string or an array of content items", content)
    # The model's own messages hold output parts; everything else holds input parts.
    allowed = OUTPUT_PARTS if role == "assistant" else INPUT_PARTS
    for j, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise invalid_type(f"{where}.content[{j}]", "an object", part)
        kind = part.get("type")
        if kind not in allowed:
            raise _bad_value(kind, f"{where}.content[{j}].type", allowed)
        if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise invalid_type(f"{where}.content[{j}].text", "a string", part.get("text"))


def _derive(request: ResponsesRequest, items: list[Item]) -> None:
    """Fill the neutral fields from the whole conversation."""
    request.items = items
    messages: list[tuple[str, str]] = [("system", request.instructions)] if request.instructions else []
    system = [request.instructions] if request.instructions else []
    calls: dict[str, str] = {}  # call_id -> function name
    results: list[str] = []
    turn = 0
    tokens = 3 + (3 + count_tokens(request.instructions) if request.instructions else 0)
    in_model_turn = False
    for item in items:
        kind = item.get("type")
        role = item.get("role")
        if kind in _MODEL_ITEMS or (kind == "message" and role == "assistant"):
            text = content_text(item.get("content")) if kind == "message" else ""
            if kind in ("function_call", "custom_tool_call"):
                calls[str(item.get("call_id"))] = str(item.get("name"))
                tokens += count_tokens(str(item.get("name"))) + count_tokens(str(item.get("arguments", "")))
            if in_model_turn:
                last_role, last_text = messages[-1]
                messages[-1] = (last_role, last_text + text)
            else:
                messages.append(("assistant", text))
                turn += 1
                results = []
                tokens += 3
            in_model_turn = True
            tokens += count_tokens(text)
            continue
        in_model_turn = False
        if kind == "message":
            text = content_text(item.get("content"))
            messages.append((str(role), text))
            if role in ("system", "developer"):
                system.append(text)
            tokens += 3 + count_tokens(text)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            # An output answering no call is refused by `validation/responses.py`; here it is just a tool message.
            text = content_text(item.get("output"))
            messages.append(("tool", text))
            name = calls.get(str(item.get("call_id")))
            if name is not None:
                results.append(name)
            tokens += 3 + count_tokens(text)
    user = [text for role, text in messages if role == "user"]
    request.messages = messages
    request.prompts = user[-1:]
    request.system = "\n".join(system) if system else None
    request.tool_results = results
    request.turn = turn
    request.prompt_tokens = tokens
