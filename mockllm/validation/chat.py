"""The contract rules of OpenAI Chat Completions (and the one legacy Completions shares).

Messages are OpenAI's own where a real 400 was seen (wire-formats.md §12.5 and error bodies quoted in public issue
threads, noted per rule); where only the documentation or memory says what the API answers, the comment says so.
OpenAI writes a message's index in `param` as `messages.[3].role`, with the odd dot, and so does mockllm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ..protocols.base import ParsedRequest
from .core import Violation

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def check(request: ParsedRequest) -> Violation | None:
    """The first Chat Completions rule this request breaks, or None."""
    body = request.body
    return (
        stream_options(body)
        or _max_tokens_pair(body)
        or _tool_messages(body.get("messages") or [])
        or _tool_choice(body)
        or _response_format(body.get("response_format"))
    )


def stream_options(body: Mapping[str, Any]) -> Violation | None:
    """`stream_options` only with `stream: true` (wire-formats.md §12.5; Chat, legacy Completions, Responses)."""
    if body.get("stream_options") is not None and body.get("stream") is not True:
        return Violation(
            "stream-options-need-stream",
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "`stream_options` is accepted only together with `stream: true`.",
            param="stream_options",
        )
    return None


def _max_tokens_pair(body: Mapping[str, Any]) -> Violation | None:
    # Observed as an OpenAI-shaped 400 (langchain-ai/langgraph#5943): invalid_request_error, code
    # invalid_parameter_combination, param max_tokens.
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        return Violation(
            "max-tokens-or-max-completion-tokens",
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            "send `max_completion_tokens` (the newer name) or `max_tokens`, not both.",
            param="max_tokens",
            code="invalid_parameter_combination",
        )
    return None


def _tool_messages(messages: list[Any]) -> Violation | None:
    """Every `tool` message answers a call of the assistant message just before its run of tool messages, and every
    call of an assistant message is answered before the conversation goes on."""
    asked: list[str] = []  # ids of the calls of the assistant message the current tool messages answer
    answered: set[str] = set()
    owner = -1  # index of that assistant message, -1 when tool messages may not come now
    for index, message in enumerate([*messages, None]):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role == "tool" and message is not None:
            call_id = message.get("tool_call_id")
            if owner < 0:
                # Real body (miurla/morphic#136, smarter-sh/smarter#264): param `messages.[3].role`, code null.
                return Violation(
                    "tool-message-answers-a-call",
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    "a `tool` message must follow an assistant message whose `tool_calls` it answers.",
                    param=f"messages.[{index}].role",
                )
            if call_id not in asked:
                # Wording from memory of real 400s (not in a capture mockllm holds).
                return Violation(
                    "tool-message-answers-a-call",
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    "each `tool` message's `tool_call_id` must be the id of a call in the assistant message before.",
                    param=f"messages.[{index}].tool_call_id",
                )
            answered.add(str(call_id))
            continue
        if owner >= 0:
            missing = [call_id for call_id in asked if call_id not in answered]
            if missing:
                # Real body quoted in BerriAI/litellm#10083 and aliasrobotics/cai#111; param from memory.
                return Violation(
                    "tool-calls-answered",
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}",
                    "every call in an assistant message's `tool_calls` needs its `tool` message before the next "
                    "user or assistant message.",
                    param=f"messages.[{owner}].role",
                )
        calls = message.get("tool_calls") if role == "assistant" and message is not None else None
        if calls:
            asked = [str(call.get("id")) for call in calls if isinstance(call, Mapping)]
            answered, owner = set(), index
        else:
            asked, answered, owner = [], set(), -1
    return None


def _offered(body: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.append(function["name"])
        elif isinstance(tool, Mapping) and isinstance(tool.get("name"), str):  # a `custom` tool
            names.append(tool["name"])
    return names


def _tool_choice(body: Mapping[str, Any]) -> Violation | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not body.get("tools") and choice != "none":
        # Real wording (writer/writer-framework#1013 quotes OpenAI's body).
        return Violation(
            "tool-choice-names-an-offered-tool",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "`tool_choice` needs `tools`; offer the tools or drop `tool_choice`.",
            param="tool_choice",
        )
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        if isinstance(name, str) and name not in _offered(body):
            # The API refuses it (wire-formats.md §12.5); this wording is mockllm's, no real body was at hand.
            return Violation(
                "tool-choice-names-an-offered-tool",
                f"Invalid value for 'tool_choice': function '{name}' is not one of the 'tools' of the request.",
                "a `tool_choice` that names a function must name one of the request's `tools`.",
                param="tool_choice",
            )
    return None


def _response_format(value: Any) -> Violation | None:
    if not isinstance(value, Mapping) or value.get("type") != "json_schema":
        return None
    spec = value.get("json_schema")
    if not isinstance(spec, Mapping):
        # OpenAI's missing/invalid-type wording (its usual pattern; this field's body is from memory).
        return Violation(
            "response-format-json-schema",
            "Missing required parameter: 'response_format.json_schema'.",
            "`response_format: {type: json_schema}` needs a `json_schema` object with a `name` and a `schema`.",
            param="response_format.json_schema",
            code="missing_required_parameter",
        )
    name = spec.get("name")
    if not isinstance(name, str):
        return Violation(
            "response-format-json-schema",
            "Missing required parameter: 'response_format.json_schema.name'.",
            "a json_schema response format needs a `name` (letters, digits, `_` and `-`, at most 64).",
            param="response_format.json_schema.name",
            code="missing_required_parameter",
        )
    if not _NAME.match(name):
        return Violation(
            "response-format-json-schema",
            "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "a json_schema response format's `name` holds letters, digits, `_` and `-` only, at most 64.",
            param="response_format.json_schema.name",
            code="invalid_value",
        )
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, Mapping):
        kind = "string" if isinstance(schema, str) else "array" if isinstance(schema, list) else type(schema).__name__
        return Violation(
            "response-format-json-schema",
            f"Invalid type for 'response_format.json_schema.schema': expected an object, but got {kind} instead.",
            "`json_schema.schema` must be a JSON Schema object.",
            param="response_format.json_schema.schema",
            code="invalid_type",
        )
    if spec.get("strict") is True and isinstance(schema, Mapping):
        return _strict_schema(name, schema)
    return None


def _objects(schema: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """Every object schema inside `schema` with its path, the way OpenAI's `context=(...)` names it."""
    if schema.get("type") == "object" or "properties" in schema:
        yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, Mapping):
            yield from _objects(sub, (*path, "properties", key))
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from _objects(items, (*path, "items"))
    for group in ("$defs", "definitions"):
        for key, sub in (schema.get(group) or {}).items():
            if isinstance(sub, Mapping):
                yield from _objects(sub, (*path, group, key))
    for group in ("anyOf",):
        for position, sub in enumerate(schema.get(group) or ()):
            if isinstance(sub, Mapping):
                yield from _objects(sub, (*path, group, str(position)))


def _strict_schema(name: str, schema: Mapping[str, Any]) -> Violation | None:
    """Structured Outputs' strict mode: every object has `additionalProperties: false` and requires every property.

    Real bodies (dottxt-ai/outlines#844, moeru-ai/xsai#145): param `response_format`, code null, the message
    naming the schema and the context as a Python tuple.
    """
    for path, node in _objects(schema, ()):
        where = f"Invalid schema for response_format '{name}': In context={path!r}, "
        if node.get("additionalProperties") is not False:
            return Violation(
                "response-format-strict-schema",
                where + "'additionalProperties' is required to be supplied and to be false.",
                "with `strict: true` every object in the schema needs `additionalProperties: false`.",
                param="response_format",
            )
        properties = node.get("properties") or {}
        required = node.get("required")
        missing = [key for key in properties if not isinstance(required, list) or key not in required]
        if missing:
            return Violation(
                "response-format-strict-schema",
                where + "'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'.",
                "with `strict: true` every object lists all its properties in `required` (make optional ones "
                "nullable instead).",
                param="response_format",
            )
    return None
