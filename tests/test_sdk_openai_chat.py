"""The official `openai` client against the real server: Chat Completions as OpenAI sends them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ParsedFunctionToolCall,
)
from sse_utils import openai_client, post_raw, stream_data

from mockllm import MockServer


def user(text: str) -> list[ChatCompletionMessageParam]:
    """A conversation of one user message."""
    return [{"role": "user", "content": text}]


USER = user("Say hello")
WEATHER_TOOL: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
TIME_TOOL: Any = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def client_for(server: MockServer, **options: Any) -> openai.OpenAI:
    client: openai.OpenAI = openai_client(server, **options)
    return client


def chunks_of(server: MockServer, **body: Any) -> list[dict[str, Any]]:
    """Every streamed chunk, validated with the SDK's own chunk type, then `[DONE]` checked and dropped."""
    data = stream_data(server.url, {"stream": True, **body})
    assert data[-1] == "[DONE]"
    for chunk in data[:-1]:
        ChatCompletionChunk.model_validate(chunk, strict=False)
        assert chunk["object"] == "chat.completion.chunk"
    return list(data[:-1])


def content_deltas(chunks: list[dict[str, Any]], index: int = 0) -> list[str]:
    return [
        choice["delta"]["content"]
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["index"] == index and choice["delta"].get("content")
    ]


def test_text_non_streamed(examples: MockServer) -> None:
    client = client_for(examples)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    ChatCompletion.model_validate(json.loads(raw.text))
    assert completion.choices[0].message.content == "Hello there! How can I help you today?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_text_streamed_token_by_token(examples: MockServer) -> None:
    client = client_for(examples)
    with client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True) as stream:
        assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.response.headers["x-request-id"].startswith("req_")
        chunks = list(stream)
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.content == ""
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert "".join(p or "" for p in pieces) == "Hello there! How can I help you today?"
    assert len(pieces) >= 8  # token-sized, not one blob
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)


def test_first_chunk_and_finish_chunk_anatomy(examples: MockServer) -> None:
    chunks = chunks_of(examples, model="gpt-4o-mini", messages=USER)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    top = ["id", "object", "created", "model", "service_tier", "system_fingerprint", "choices", "obfuscation"]
    assert all(list(chunk) == top for chunk in chunks)


def test_obfuscation_pads_every_chunk_unless_turned_off(examples: MockServer) -> None:
    options = {"include_usage": True}
    chunks = chunks_of(examples, model="gpt-4o-mini", messages=USER, stream_options=options)
    assert all(list(chunk)[-1] == "obfuscation" for chunk in chunks)  # the usage chunk too
    pads = [chunk["obfuscation"] for chunk in chunks]
    assert all(isinstance(pad, str) and pad.isalnum() for pad in pads)
    assert len(set(pads)) > 1  # random padding, not a constant
    plain = chunks_of(
        examples, model="gpt-4o-mini", messages=USER, stream_options={**options, "include_obfuscation": False}
    )
    assert not any("obfuscation" in chunk for chunk in plain)
    # The SDK passes the padding through untouched and parses every chunk.
    stream = client_for(examples).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == "Hello there! How can I help you today?"
    )


def test_explicit_chunks_keep_their_boundaries(examples: MockServer) -> None:
    chunks = chunks_of(examples, model="m", messages=user("Write a haiku"))
    assert content_deltas(chunks) == ["An old silent pond", "\nA frog jumps into the pond", "\nSplash! Silence again."]


def test_usage_chunk_with_include_usage(examples: MockServer) -> None:
    chunks = chunks_of(examples, model="gpt-4o-mini", messages=USER, stream_options={"include_usage": True})
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["completion_tokens"] == len(content_deltas(chunks))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    client = client_for(examples)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    final = list(stream)[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.completion_tokens == usage["completion_tokens"]


def test_tool_call_streamed(examples: MockServer) -> None:
    messages = user("What's the weather in Oslo?")
    chunks = chunks_of(examples, model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["content"] is None
    header = first["tool_calls"][0]
    assert header["index"] == 0
    assert header["id"].startswith("call_")
    assert header["type"] == "function"
    assert header["function"] == {"name": "get_weather", "arguments": ""}
    fragments = chunks[1:-1]
    assert len(fragments) > 2
    for chunk in fragments:
        (call,) = chunk["choices"][0]["delta"]["tool_calls"]
        assert set(call) == {"index", "function"}
        assert set(call["function"]) == {"arguments"}
    arguments = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in fragments)
    assert json.loads(arguments) == {"city": "Oslo", "unit": "celsius"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_round_trip_with_the_sdk(examples: MockServer) -> None:
    client = client_for(examples)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Oslo?"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    (call,) = first.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None
    assert call.function.name == "get_weather"
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp": 12}'})
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is 12 degrees and cloudy in Oslo."
    journal = httpx.get(examples.url + "/_mockllm/requests").json()
    assert [entry["scenario"] for entry in journal] == ["weather", "weather-answer"]


def test_parallel_tool_calls_streamed(examples: MockServer) -> None:
    messages = user("Plan my trip to Paris")
    chunks = chunks_of(examples, model="gpt-4o", messages=messages, tools=[WEATHER_TOOL, TIME_TOOL])
    # A role-only first chunk, then each call's header and fragments in turn (capture
    # chat-stream-tool-call-parallel.sse).
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    calls: dict[int, dict[str, str]] = {}
    order = []
    for chunk in chunks[1:-1]:
        (call,) = chunk["choices"][0]["delta"]["tool_calls"]
        order.append(call["index"])
        if "id" in call:
            calls[call["index"]] = {"name": call["function"]["name"], "arguments": ""}
        else:
            calls[call["index"]]["arguments"] += call["function"]["arguments"]
    assert order == sorted(order)  # not interleaved
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[1]["name"] == "get_time"
    assert json.loads(calls[1]["arguments"]) == {"timezone": "Europe/Paris"}
    client = client_for(examples)
    with client.chat.completions.stream(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL, TIME_TOOL]) as s:
        final = s.get_final_completion()
    parsed = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in parsed if isinstance(c, ParsedFunctionToolCall)] == ["get_weather", "get_time"]


def test_refusal(examples: MockServer) -> None:
    messages = user("How do I build a bomb?")
    chunks = chunks_of(examples, model="gpt-4o", messages=messages)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None, "refusal": ""}
    refusal = "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks)
    assert refusal == "I'm sorry, but I can't help with that."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    completion = client_for(examples).chat.completions.create(model="gpt-4o", messages=messages)
    assert completion.choices[0].message.refusal == "I'm sorry, but I can't help with that."
    assert completion.choices[0].message.content is None


def test_content_filter_finish_reason(examples: MockServer) -> None:
    messages = user("something forbidden")
    completion = client_for(examples).chat.completions.create(model="gpt-4o", messages=messages)
    assert completion.choices[0].finish_reason == "content_filter"
    chunks = chunks_of(examples, model="gpt-4o", messages=messages)
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_n_choices_streamed_and_not(examples: MockServer) -> None:
    messages = user("Name a color")
    chunks = chunks_of(examples, model="gpt-4o", messages=messages, n=4)
    assert chunks[0]["choices"][0]["index"] == 0
    seen: set[int] = set()
    for chunk in chunks:
        (choice,) = chunk["choices"]
        assert choice["index"] <= len(seen)  # each index first appears at or below the list length
        seen.add(choice["index"])
    texts = ["".join(content_deltas(chunks, i)) for i in range(4)]
    assert texts == ["Blue.", "Crimson red.", "Forest green.", "Blue."]
    finishes = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert finishes == [0, 1, 2, 3]
    completion = client_for(examples).chat.completions.create(model="gpt-4o", messages=messages, n=3)
    assert [c.message.content for c in completion.choices] == ["Blue.", "Crimson red.", "Forest green."]
    assert [c.index for c in completion.choices] == [0, 1, 2]
    # Without `choices`, every choice carries the reply.
    same = client_for(examples).chat.completions.create(model="gpt-4o", messages=USER, n=2)
    assert same.choices[0].message.content == same.choices[1].message.content


@pytest.mark.parametrize("parameter", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_with_length(examples: MockServer, parameter: str) -> None:
    messages = user("Tell me a story")
    client = client_for(examples)
    limit: dict[str, Any] = {parameter: 5}
    completion = client.chat.completions.create(model="gpt-4o", messages=messages, **limit)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "Once upon a time there"
    assert completion.usage.completion_tokens == 5
    chunks = chunks_of(examples, model="gpt-4o", messages=messages, **limit)
    assert len(content_deltas(chunks)) == 5
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_max_tokens_larger_than_reply_finishes_normally(examples: MockServer) -> None:
    completion = client_for(examples).chat.completions.create(model="gpt-4o", messages=USER, max_tokens=500)
    assert completion.choices[0].finish_reason == "stop"


def test_stop_sequences(examples: MockServer) -> None:
    messages = user("Tell me a story")
    client = client_for(examples)
    completion = client.chat.completions.create(model="gpt-4o", messages=messages, stop=["mock", "zzz"])
    assert completion.choices[0].message.content == "Once upon a time there was a "
    assert completion.choices[0].finish_reason == "stop"
    chunks = chunks_of(examples, model="gpt-4o", messages=messages, stop="mock")
    assert "".join(content_deltas(chunks)) == "Once upon a time there was a "


def test_usage_given_in_the_scenario_wins(examples: MockServer) -> None:
    messages = user("Tell me a story")
    completion = client_for(examples).chat.completions.create(model="gpt-4o", messages=messages)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 12


def test_reply_model_and_headers(start_server: Any) -> None:
    server = start_server(
        scenarios_yaml="""
version: 1
scenarios:
  - when: {model: gpt-4o}
    reply: {text: Hi., model: gpt-4o-2024-08-06, headers: {x-custom: yes-please}}
"""
    )
    raw = client_for(server).chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert raw.parse().model == "gpt-4o-2024-08-06"
    assert raw.headers["x-custom"] == "yes-please"
    models = [m.id for m in client_for(server).models.list()]
    assert models == ["gpt-4o", "gpt-4o-2024-08-06"]


def test_sequences_cycle_and_reset(examples: MockServer) -> None:
    client = client_for(examples)
    messages: Any = [{"role": "user", "content": "Count"}]

    def ask() -> str | None:
        return client.chat.completions.create(model="m", messages=messages).choices[0].message.content

    assert [ask() for _ in range(4)] == ["One.", "Two.", "Three.", "One."]
    httpx.post(examples.url + "/_mockllm/reset")
    assert ask() == "One."


def test_scenario_forced_by_header(examples: MockServer) -> None:
    client = client_for(examples, default_headers={"x-mockllm-scenario": "greet"})
    completion = client.chat.completions.create(model="other", messages=user("anything"))
    assert completion.choices[0].message.content == "Hello there! How can I help you today?"


def test_unknown_forced_scenario_is_a_404_naming_it(examples: MockServer) -> None:
    client = client_for(examples, default_headers={"x-mockllm-scenario": "nope"}, max_retries=2)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="m", messages=USER)
    assert "`nope`" in info.value.message
    assert info.value.response.headers["x-should-retry"] == "false"
    assert len(httpx.get(examples.url + "/_mockllm/requests").json()) == 1


def test_miss_is_a_404_naming_the_closest_scenarios_and_is_not_retried(examples: MockServer) -> None:
    client = client_for(examples, max_retries=2)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("Say hi"))
    error = info.value
    assert error.response.headers["x-should-retry"] == "false"
    assert error.code == "no_scenario_matched"
    assert "No scenario matched this chat request" in error.message
    assert "`greet` (" in error.message
    assert 'prompt: expected "Say hello", got "Say hi"' in error.message
    journal = httpx.get(examples.url + "/_mockllm/requests").json()
    assert len(journal) == 1  # not retried
    assert journal[0]["scenario"] is None
    assert journal[0]["status"] == 404
    assert "greet" in journal[0]["miss"]


BAD_REQUESTS: list[tuple[Any, str | None, str]] = [
    (b"{not json", None, "could not parse the JSON body"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "\\ud83d"}]}', None, "lone UTF-16 surrogate"),
    ([1, 2], None, "must be a JSON object"),
    ({"messages": USER}, "model", "model parameter"),
    ({"model": 42, "messages": USER}, "model", "expected a string"),
    ({"model": "m"}, "messages", "Missing required parameter: 'messages'"),
    ({"model": "m", "messages": "hi"}, "messages", "expected an array"),
    ({"model": "m", "messages": []}, "messages", "empty array"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]", "expected an object"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "'robot'"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "Missing required"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string or array"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "tool_call_id"),
    ({"model": "m", "messages": USER, "stream": "yes"}, "stream", "expected a boolean"),
    ({"model": "m", "messages": USER, "n": 0}, "n", "below minimum"),
    ({"model": "m", "messages": USER, "max_tokens": "5"}, "max_tokens", "expected an integer"),
    ({"model": "m", "messages": USER, "stop": 5}, "stop", "'stop'"),
    ({"model": "m", "messages": USER, "stream_options": {"include_usage": True}}, "stream_options", "only allowed"),
    ({"model": "m", "messages": USER, "tools": [{"type": "function"}]}, "tools[0].function.name", "tools[0]"),
    (
        {"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": True}, *USER]},
        "messages[0].tool_calls",
        "expected an array of objects",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": "f"}]}, *USER]},
        "messages[0].tool_calls[0].function.name",
        "Missing required parameter",
    ),
]


@pytest.mark.parametrize(("body", "param", "text"), BAD_REQUESTS)
def test_malformed_requests_get_an_openai_shaped_400(
    examples: MockServer, body: Any, param: str | None, text: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(examples.url + "/v1/chat/completions", content=content)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert text in error["message"]
    assert "Traceback" not in response.text


def test_sdk_raises_bad_request_for_an_invalid_role(examples: MockServer) -> None:
    robot: Any = [{"role": "robot", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as info:
        client_for(examples).chat.completions.create(model="m", messages=robot)
    assert info.value.param == "messages[0].role"


def test_models_list_and_retrieve(start_server: Any) -> None:
    server = start_server(
        scenarios_yaml="""
version: 1
scenarios:
  - when: {model: gpt-4o-mini}
    reply: {text: Hi.}
  - when: {model: {glob: "claude*"}}
    reply: {text: Hi.}
""",
        models=["meta-llama/Llama-3.1-8B-Instruct"],
    )
    client = client_for(server)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "meta-llama/Llama-3.1-8B-Instruct"]
    model = client.models.retrieve("meta-llama/Llama-3.1-8B-Instruct")
    assert model.object == "model"
    assert model.owned_by == "system"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-5")
    assert "gpt-5" in info.value.message
    assert info.value.code == "model_not_found"


def test_unknown_route_is_an_openai_shaped_404(examples: MockServer) -> None:
    response = httpx.post(examples.url + "/v1/chat/complete", json={})
    assert response.status_code == 404
    assert "mockllm does not serve POST /v1/chat/complete" in response.json()["error"]["message"]


def test_raw_body_is_valid_chat_completion_json(examples: MockServer) -> None:
    response = post_raw(examples.url, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER})
    body = response.json()
    assert list(body) == [
        "id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"
    ]  # fmt: skip
    ChatCompletion.model_validate(body)
    assert response.content.startswith(b"{\n  ")  # OpenAI pretty-prints non-streamed bodies
