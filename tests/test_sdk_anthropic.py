"""Anthropic Messages (`POST /v1/messages`) as the official `anthropic` client and LangChain's `ChatAnthropic` see
it: the same provider-neutral scenarios that serve Chat Completions, rendered in Anthropic's wire format."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ThinkingConfigEnabledParam, ToolParam
from conftest import StartServer
from sse_utils import split_events

from mockllm import MockServer
from mockllm.protocols.anthropic import signature

WEATHER = """
version: 1
scenarios:
  - id: weather-answer
    when: {after_tool: get_weather}
    reply: {text: It is 12 degrees in Oslo.}
  - id: weather
    when: {prompt: {contains: weather}, tools: [get_weather]}
    reply:
      reasoning: The user wants the weather; I should call the tool.
      text: Let me check.
      tool_calls:
        - name: get_weather
          arguments: {city: Oslo}
  - id: greet
    when: {prompt: hi}
    reply: {text: Hello there!, usage: {prompt_tokens: 20, cached_tokens: 5, cache_creation_tokens: 3}}
"""
TOOLS: list[ToolParam] = [
    {"name": "get_weather", "description": "Weather in a city", "input_schema": {"type": "object"}}
]
FIVE = "One two three four five"  # five content chunks
_clients: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Any:
    yield
    while _clients:
        _clients.pop().close()


def client_for(server: MockServer, **options: Any) -> anthropic.Anthropic:
    options.setdefault("max_retries", 0)
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", **options)
    _clients.append(client)
    return client


def serve(start_server: StartServer, reply: dict[str, Any] | None = None, **scenario: Any) -> MockServer:
    """A server with one scenario (`reply`, or the scenario's keys) answering every request."""
    body = {"id": "only", **({"reply": reply} if reply is not None else {}), **scenario}
    return start_server(scenarios_yaml=json.dumps({"version": 1, "scenarios": [body]}))


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def journal(server: MockServer) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = httpx.get(server.url + "/_mockllm/requests").json()
    return entries


def post(server: MockServer, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(server.url + "/v1/messages", json=body, headers=headers or {}, timeout=10)


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in split_events(raw):
        name, data = event.split(b"\n")
        out.append((name[len(b"event: ") :].decode(), json.loads(data[len(b"data: ") :])))
    return out


# -- create and stream ------------------------------------------------------------------------------------------


def test_create_answers_in_anthropic_shape_with_its_headers(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER)
    raw = client_for(server).messages.with_raw_response.create(model="claude-x", max_tokens=100, messages=user("hi"))
    message = raw.parse()
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there!"
    assert (message.stop_reason, message.stop_sequence, message.model) == ("end_turn", None, "claude-x")
    assert message.id.startswith("msg_01")
    # Anthropic counts cached prompt tokens apart: 20 in all = 12 new + 5 read + 3 written.
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (12, 5, 3)
    assert usage.output_tokens == 3  # Hello, " there", "!"
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-organization-id"]
    assert "x-request-id" not in raw.headers
    assert "x-ratelimit-limit-requests" not in raw.headers
    assert raw.headers["content-type"] == "application/json"


def test_stream_text_stream_and_final_message(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER)
    with client_for(server).messages.stream(model="claude-x", max_tokens=100, messages=user("hi")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Hello", " there", "!"]
    assert final.content[0].type == "text"
    assert final.content[0].text == "Hello there!"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (12, 3, 5)


def test_stream_wire_format(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER)
    body = {"model": "claude-x", "max_tokens": 100, "stream": True, "messages": user("What is the weather?")}
    response = post(server, {**body, "tools": TOOLS})
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["request-id"].startswith("req_")
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in response.content
    got = events(response.content)
    names = [name for name, _ in got]
    # No thinking block: the request did not enable thinking (the real API sends none then).
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert [p["content_block"]["type"] for n, p in got if n == "content_block_start"] == ["text", "tool_use"]
    assert [p["index"] for n, p in got if n == "content_block_start"] == [0, 1]
    assert [p["index"] for n, p in got if n == "content_block_stop"] == [0, 1]
    fragments = [p["delta"]["partial_json"] for n, p in got if p.get("delta", {}).get("type") == "input_json_delta"]
    assert fragments[0] == ""
    assert json.loads("".join(fragments)) == {"city": "Oslo"}
    assert names[-2:] == ["message_delta", "message_stop"]
    delta = got[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == sum(1 for n, _ in got if n == "content_block_delta") - 1


# -- tools and thinking -----------------------------------------------------------------------------------------


def test_tool_use_loop(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER)
    client = client_for(server)
    messages = user("What is the weather in Oslo?")
    first = client.messages.create(model="claude-x", max_tokens=500, messages=messages, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Oslo"})
    assert call.id.startswith("toolu_01")
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12 C"}]},
    ]
    second = client.messages.create(model="claude-x", max_tokens=500, messages=messages, tools=TOOLS)
    assert second.content[0].type == "text"
    assert second.content[0].text == "It is 12 degrees in Oslo."
    assert [entry["scenario"] for entry in journal(server)] == ["weather", "weather-answer"]


def test_thinking_blocks_survive_the_accumulator_and_go_back(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER)
    client = client_for(server)
    messages = user("What is the weather in Oslo?")
    thinking: ThinkingConfigEnabledParam = {"type": "enabled", "budget_tokens": 2000}
    with client.messages.stream(
        model="claude-x", max_tokens=4000, tools=TOOLS, messages=messages, thinking=thinking
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    block = final.content[0]
    assert block.type == "thinking"
    assert block.thinking == "The user wants the weather; I should call the tool."
    assert block.signature == signature(block.thinking)
    assert block.signature
    (call,) = [b for b in final.content if b.type == "tool_use"]
    result: MessageParam = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12"}],
    }
    # Sent back whole, thinking first: accepted.
    back: list[MessageParam] = [*messages, {"role": "assistant", "content": final.content}, result]
    answer = client.messages.create(model="claude-x", max_tokens=4000, tools=TOOLS, messages=back, thinking=thinking)
    assert answer.content[-1].type == "text"
    assert answer.content[-1].text == "It is 12 degrees in Oslo."
    # Sent back without its thinking block: the API's 400.
    stripped: list[MessageParam] = [*messages, {"role": "assistant", "content": final.content[1:]}, result]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-x", max_tokens=4000, tools=TOOLS, messages=stripped, thinking=thinking)
    assert "Expected `thinking` or `redacted_thinking`, but found `text`" in caught.value.message


def test_redacted_thinking_block(start_server: StartServer) -> None:
    server = serve(start_server, {"redacted_reasoning": "EmwKAhgBEgy3va3pzix", "text": "Done."})
    client = client_for(server)
    thinking: ThinkingConfigEnabledParam = {"type": "enabled", "budget_tokens": 1024}
    with client.messages.stream(model="m", max_tokens=2000, messages=user("x"), thinking=thinking) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["redacted_thinking", "text"]
    assert final.content[0].type == "redacted_thinking"
    assert final.content[0].data == "EmwKAhgBEgy3va3pzix"
    plain = client.messages.create(model="m", max_tokens=2000, messages=user("x"))
    assert [block.type for block in plain.content] == ["text"]  # thinking off: no thinking block at all


# -- stop reasons -----------------------------------------------------------------------------------------------


def test_stop_sequences_max_tokens_and_refusal(start_server: StartServer) -> None:
    server = start_server(
        scenarios_yaml="""
        version: 1
        scenarios:
          - {id: refuse, when: {prompt: bad}, reply: {refusal: I can't help with that.}}
          - {id: text, reply: {text: One two. Three four five.}}
        """
    )
    client = client_for(server)
    cut = client.messages.create(model="m", max_tokens=100, messages=user("x"), stop_sequences=["Three", "."])
    assert cut.content[0].type == "text"
    assert cut.content[0].text == "One two"
    assert (cut.stop_reason, cut.stop_sequence) == ("stop_sequence", ".")
    with client.messages.stream(model="m", max_tokens=2, messages=user("x")) as stream:
        short = stream.get_final_message()
    assert short.content[0].type == "text"
    assert short.content[0].text == "One two"
    assert (short.stop_reason, short.usage.output_tokens) == ("max_tokens", 2)
    with client.messages.stream(model="m", max_tokens=100, messages=user("bad")) as stream:
        refused = stream.get_final_message()
    assert refused.content[0].type == "text"
    assert refused.content[0].text == "I can't help with that."
    assert refused.stop_reason == "refusal"
    assert refused.stop_details is not None
    assert refused.stop_details.type == "refusal"


# -- errors and faults ------------------------------------------------------------------------------------------


def test_missing_max_tokens_is_the_api_400(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER)
    response = post(server, {"model": "m", "messages": user("hi")})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("max_tokens: Field required (mockllm rule `max-tokens-required`")
    assert body["request_id"] == response.headers["request-id"]
    assert journal(server)[-1]["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"model": "m", "max_tokens": 0, "messages": user("hi")}, "max_tokens: Input should be greater than"),
        ({"max_tokens": 5, "messages": user("hi")}, "model: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
        ({"model": "m", "max_tokens": 5, "messages": user("")}, "messages.0: all messages must have non-empty"),
        ({"model": "m", "max_tokens": 5, "messages": user("hi"), "stop_sequences": "x"}, "stop_sequences: Input"),
        (
            {"model": "m", "max_tokens": 2000, "messages": user("hi"), "thinking": {"type": "enabled"}},
            "thinking.enabled.budget_tokens: Field required",
        ),
        (
            {
                "model": "m",
                "max_tokens": 1500,
                "messages": user("hi"),
                "thinking": {"type": "enabled", "budget_tokens": 2000},
            },
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]},
                ],
            },
            "messages.0.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. Each `tool_result`"
            " block must have a corresponding `tool_use` block in the previous message.",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": "and?"},
                ],
            },
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t1.",
        ),
    ],
)
def test_requests_the_api_refuses(start_server: StartServer, body: dict[str, Any], message: str) -> None:
    server = start_server(scenarios_yaml=WEATHER)
    response = post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_system_string_or_blocks_is_matched(start_server: StartServer) -> None:
    server = serve(start_server, {"text": "Arr."}, when={"system": "You are a pirate.\nBe brief."})
    client = client_for(server)
    blocks: Any = [{"type": "text", "text": "You are a pirate."}, {"type": "text", "text": "Be brief."}]
    assert client.messages.create(model="m", max_tokens=9, system=blocks, messages=user("x")).content
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="m", max_tokens=9, system="You are a parrot.", messages=user("x"))
    # The miss names the closest scenario and what differed, in Anthropic's error shape, and is not retried.
    assert caught.value.type == "not_found_error"
    assert "only" in caught.value.message
    assert "system" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_529_is_retried_then_answered(start_server: StartServer) -> None:
    # retry-after-ms 1 keeps the SDK's retry instant (it honours the header before its own backoff, §7.5).
    error = {"status": 529, "headers": {"retry-after-ms": "1"}}
    server = serve(start_server, replies=[{"error": error}, {"text": "Finally!"}])
    message = client_for(server, max_retries=2).messages.create(model="m", max_tokens=9, messages=user("x"))
    assert message.content[0].type == "text"
    assert message.content[0].text == "Finally!"
    assert [entry["status"] for entry in journal(server)] == [529, 200]
    with pytest.raises(anthropic.OverloadedError) as caught:
        client_for(serve(start_server, {"error": {"status": 529}})).messages.create(
            model="m", max_tokens=9, messages=user("x")
        )
    assert caught.value.status_code == 529
    assert caught.value.type == "overloaded_error"
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": caught.value.request_id,
    }


def test_429_carries_retry_after_and_rate_limit_headers(start_server: StartServer) -> None:
    # At scale 1 retry-after goes out as written (scaled values are tested in test_sdk_faults.py).
    scenario = {"id": "only", "reply": {"error": {"status": 429, "retry_after": "2s"}}}
    server = start_server(scenarios_yaml=json.dumps({"version": 1, "scenarios": [scenario]}), time_scale=1)
    response = post(server, {"model": "m", "max_tokens": 5, "messages": user("x")})
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "2"
    assert response.headers["request-id"] == response.json()["request_id"]
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        assert response.headers[f"anthropic-ratelimit-{kind}-remaining"] == "0"
        reset = response.headers[f"anthropic-ratelimit-{kind}-reset"]
        # An RFC 3339 timestamp (not a duration, as OpenAI's), when the limit resets: after retry_after.
        assert reset.endswith("Z")
        assert 0 < (datetime.fromisoformat(reset) - datetime.now(UTC)).total_seconds() < 60


def test_mid_stream_error_raises_api_status_error_with_status_200(start_server: StartServer) -> None:
    fault = {"kind": "error_event", "after": 2, "type": "overloaded_error", "message": "Overloaded"}
    server = serve(start_server, {"text": FIVE, "fault": fault})
    got: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client_for(server, max_retries=2).messages.stream(model="m", max_tokens=50, messages=user("x")) as stream,
    ):
        got.extend(stream.text_stream)
    assert got == ["One", " two"]
    assert type(caught.value) is anthropic.APIStatusError
    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"
    (entry,) = journal(server)  # not retried
    assert (entry["fault"], entry["chunks"]) == ("error_event", 2)


@pytest.mark.parametrize("after", [0, 3, 5])
def test_end_fault_counts_content_deltas(start_server: StartServer, after: int) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "end", "after": after}})
    response = post(server, {"model": "m", "max_tokens": 50, "stream": True, "messages": user("x")})
    got = events(response.content)
    assert sum(1 for name, _ in got if name == "content_block_delta") == after
    assert "message_delta" not in [name for name, _ in got]
    assert "message_stop" not in [name for name, _ in got]
    assert journal(server)[-1]["chunks"] == after


def test_thinking_deltas_count_as_content_and_the_signature_does_not(start_server: StartServer) -> None:
    server = serve(start_server, {"reasoning": "Hmm, well.", "text": "Yes.", "fault": {"kind": "end", "after": 4}})
    thinking = {"type": "enabled", "budget_tokens": 1024}
    response = post(
        server, {"model": "m", "max_tokens": 2000, "stream": True, "messages": user("x"), "thinking": thinking}
    )
    deltas = [p["delta"]["type"] for name, p in events(response.content) if name == "content_block_delta"]
    # "Hmm", ",", " well", "." then the signature before the block stop, and nothing of the text block.
    assert deltas == ["thinking_delta"] * 4 + ["signature_delta"]


# -- clients ----------------------------------------------------------------------------------------------------


def test_async_client(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER)

    async def run() -> tuple[str, list[str]]:
        async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="k", max_retries=0) as client:
            message = await client.messages.create(model="m", max_tokens=9, messages=user("hi"))
            async with client.messages.stream(model="m", max_tokens=9, messages=user("hi")) as stream:
                pieces = [piece async for piece in stream.text_stream]
        assert message.content[0].type == "text"
        return message.content[0].text, pieces

    assert asyncio.run(run()) == ("Hello there!", ["Hello", " there", "!"])


def test_models_list_and_retrieve_for_an_anthropic_client(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=WEATHER, models=["claude-sonnet-4-5"])
    client = client_for(server)
    page = client.models.list()
    assert [model.id for model in page.data] == ["claude-sonnet-4-5"]
    assert page.data[0].type == "model"
    assert page.data[0].display_name
    assert client.models.retrieve("claude-sonnet-4-5").id == "claude-sonnet-4-5"
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-nope")
    assert caught.value.type == "not_found_error"
    assert "claude-nope" in caught.value.message
    # An OpenAI client (no anthropic-version header) still gets OpenAI's list.
    assert httpx.get(server.url + "/v1/models").json()["object"] == "list"


def test_langchain_chat_anthropic_tool_loop(start_server: StartServer) -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return f"12 C in {city}"

    server = start_server(scenarios_yaml=WEATHER)
    model = ChatAnthropic(
        model="claude-sonnet-4-5", base_url=server.anthropic_base_url, api_key="k", max_retries=0, max_tokens=500
    ).bind_tools([get_weather])
    messages: list[Any] = [HumanMessage("What is the weather in Oslo?")]
    first = model.invoke(messages)
    assert [call["name"] for call in first.tool_calls] == ["get_weather"]
    assert first.tool_calls[0]["args"] == {"city": "Oslo"}
    messages += [
        first,
        ToolMessage(get_weather.invoke(first.tool_calls[0]["args"]), tool_call_id=first.tool_calls[0]["id"]),
    ]
    answer = model.invoke(messages)
    assert answer.content == "It is 12 degrees in Oslo."
    assert [entry["scenario"] for entry in journal(server)] == ["weather", "weather-answer"]
