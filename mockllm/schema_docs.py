"""Descriptions of every key of the scenario format, for the JSON Schema that `mockllm schema` prints.

Editors show them on hover and in completion lists. They live here, in one table, rather than on the pydantic
fields, so that `scenarios.py` stays a readable model of the format. `tests/test_cli.py` checks that every
property of the schema has one.
"""

from __future__ import annotations

from typing import Any

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "ScenarioFile": {
        "version": "The format version; always 1.",
        "scenarios": "The scenarios, matched in this order (the first whose conditions hold answers).",
        "recorded": "Set by `--record`: where and when this file was recorded (upstream, date, mockllm version, "
        "redaction patterns applied to requests before they are matched).",
    },
    "Scenario": {
        "id": "A unique id, shown in the journal, the logs and errors; `<file>-<n>` when not given.",
        "when": "The conditions a request must meet; every one given must hold. No `when` matches every request.",
        "reply": "The one answer to send (use `replies` for a sequence).",
        "replies": "Answers for successive matching requests, in order; `then` says what happens after the last.",
        "then": "After the last of `replies`: repeat-last (default), cycle, or fall-through (stop matching).",
        "dialect": "Render this scenario's replies in this dialect instead of the server's `--dialect`.",
        "validate": "off: answer requests this scenario matches even when they break a rule the real API enforces "
        "(for tests that send a bad request on purpose); the server's `--validate` applies otherwise.",
    },
    "When": {
        "request": "Recordings: the whole request body (volatile fields dropped, secrets redacted) must equal this.",
        "api": "The API the request came in on: chat, completions, responses, messages or embeddings (models: "
        "recordings of GET /v1/models).",
        "model": "The request's `model`: a plain string (exact) or {contains|regex|glob: ...}.",
        "stream": "true for streamed requests, false for the others.",
        "prompt": "The text of the last user message (each prompt for /v1/completions): a string condition.",
        "system": "The system prompt (system and developer messages joined): a string condition.",
        "messages": "A message count (system included), or a list of {role, content} conditions matched one to one.",
        "tools": "Tools the request must offer, by name (string conditions); others may be offered too.",
        "after_tool": "The request carries a result of this tool after the last assistant message.",
        "headers": "Request header conditions by (case-insensitive) header name.",
        "body": "A subset of the request JSON that must be equal (nested mappings compared key by key).",
        "turn": "How many assistant messages the conversation already has (tool-call messages count).",
    },
    "MessageCondition": {
        "role": "The message's role: a string condition.",
        "content": "The message's text: a string condition.",
    },
    "StringCondition": {
        "exact": "Equal to this string (a plain string means the same).",
        "contains": "Contains this substring (case-sensitive).",
        "regex": "Python `re.search` finds this pattern (anchor with ^ and $ for a full match).",
        "glob": "The whole string matches this shell pattern (`fnmatch`: *, ?, [seq]).",
    },
    "Reply": {
        "redacted_reasoning": "Redacted reasoning: opaque data, sent as Anthropic's `redacted_thinking` block.",
        "text": "The answer's text, split into chunks by the tokenizer (one token a chunk).",
        "chunks": "The answer's text as explicit chunks, sent one a chunk.",
        "reasoning": "Reasoning text, sent as each protocol sends reasoning (thinking, reasoning items, ...).",
        "refusal": "A refusal, sent as each protocol sends one.",
        "tool_calls": "Tool calls the model makes: name, arguments, optional id and argument chunks.",
        "finish_reason": "stop (default), length, tool_calls (default with tool calls) or content_filter; each "
        "protocol names it its own way.",
        "usage": "Token counts; each one not given is counted by the tokenizer.",
        "model": "The model name echoed back (default: the request's).",
        "headers": "Extra response headers.",
        "choices": "One reply per choice for n > 1, repeated in order when shorter than n.",
        "vectors": "Embeddings: one vector (a list of numbers) per input, sent as given.",
        "timing": "Delays: ttft, chunk or tokens_per_second, jitter, headers.",
        "error": "An HTTP error sent instead of the answer, before any byte of the body.",
        "fault": "A failure in the middle of a streamed answer: error_event, end, disconnect, malformed, stall.",
        "raw": "A recorded exchange (`--record`): status, headers, and the body or the stream's events, replayed "
        "byte for byte.",
    },
    "ChoiceSpec": {
        "redacted_reasoning": "This choice's redacted reasoning (opaque data).",
        "text": "This choice's text, split into chunks by the tokenizer.",
        "chunks": "This choice's text as explicit chunks.",
        "reasoning": "This choice's reasoning text.",
        "refusal": "This choice's refusal.",
        "tool_calls": "This choice's tool calls.",
        "finish_reason": "This choice's finish reason.",
    },
    "ToolCallSpec": {
        "name": "The tool's name.",
        "arguments": "The arguments: a mapping (sent as JSON) or a string (sent as is).",
        "id": "The call id (default: a fresh `call_...`).",
        "chunks": "The arguments as explicit fragments, one a chunk; they must join to `arguments`.",
    },
    "UsageSpec": {
        "cache_creation_tokens": "Input tokens written to the prompt cache (Anthropic's cache_creation_input_tokens).",
        "prompt_tokens": "Input tokens (default: counted from the request).",
        "completion_tokens": "Output tokens (default: counted from the reply).",
        "cached_tokens": "Input tokens read from the prompt cache.",
        "reasoning_tokens": "Output tokens spent on reasoning (default: counted from `reasoning`).",
    },
    "TimingSpec": {
        "ttft": "Time to the first content chunk, from the request's arrival (250ms, 1.5s, or seconds).",
        "chunk": "Time between content chunks.",
        "tokens_per_second": "Content chunks per second (instead of `chunk`).",
        "jitter": "Standard deviation of each delay, drawn from the seeded generator, never below zero.",
        "headers": "Delay before the status line (for read-timeout tests); nothing is sent before it.",
    },
    "ErrorSpec": {
        "status": "The HTTP status, 400-599.",
        "type": "The error type (default: the status's usual type in the protocol's shape).",
        "code": "The error code (default: the status's usual code).",
        "message": "The error message (default: the status's usual message).",
        "param": "The parameter the error names.",
        "retry_after": "Sets retry-after and retry-after-ms (scaled by --time-scale, never below 1 ms).",
        "should_retry": "Sets x-should-retry, which the SDKs obey over the status.",
        "headers": "Extra response headers.",
        "body": "A raw body that replaces the JSON error (a string is sent as is).",
        "probability": "Send the error on this share of matching requests (seeded); otherwise answer normally.",
    },
    "FaultSpec": {
        "form": "error_event on the Responses API: `nested` (default, as the live API sends it) or `flat` "
        "(the SDK's ResponseErrorEvent).",
        "kind": "error_event, end, disconnect, malformed or stall.",
        "after": "How many content chunks reach the client before the fault (0: before the first).",
        "type": "error_event: the error's type.",
        "message": "error_event: the error's message.",
        "for": "stall: end the body cleanly after this long (default: stall until the client gives up).",
        "probability": "Apply the fault on this share of matching requests (seeded).",
    },
}


DESCRIPTIONS["RawReply"] = {
    "status": "The recorded HTTP status.",
    "headers": "The recorded response headers that matter to clients (content type, request ids, rate limits, "
    "retry-after); credentials and hop-by-hop headers are never kept.",
    "body": "A non-streamed answer: the body text exactly as received (decompressed).",
    "events": "A streamed answer: its SSE events in order.",
    "tail": "What a stream sent after its last complete event (a final event without its blank line), sent as is.",
    "at": "When the body was complete, in seconds from the request's arrival.",
}
DESCRIPTIONS["RawEvent"] = {
    "data": "The event's data, exactly as received.",
    "event": "The event's name (`event:` line), for the APIs that name their events.",
    "at": "When the event arrived, in seconds from the request's arrival; without it, it follows the one before.",
}
DESCRIPTIONS["Recorded"] = {
    "upstream": "The base URL the exchanges were recorded from.",
    "date": "When they were recorded (UTC).",
    "mockllm": "The mockllm version that recorded them.",
    "redact": "The --redact patterns applied when recording; also applied to incoming requests before they are "
    "compared, so replay needs no flags.",
}


def describe(schema: dict[str, Any]) -> None:
    """Fill in the description of every property of the scenario format's models, in place."""
    for name, definition in [("ScenarioFile", schema), *schema.get("$defs", {}).items()]:
        texts = DESCRIPTIONS.get(name, {})
        for key, prop in definition.get("properties", {}).items():
            if key in texts and not prop.get("description"):
                prop["description"] = texts[key]
