"""The Responses API as the real clients see it: `openai`, LangChain's `ChatOpenAI(use_responses_api=True)` and the
OpenAI Agents SDK, each driving the mock over a real socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from sse_utils import openai_client

from mockllm import MockServer

WEATHER = [
    {"id": "weather-answer", "when": {"after_tool": "get_weather"}, "reply": {"text": "It is 12 degrees in Oslo."}},
    {
        "id": "weather",
        "when": {"prompt": {"contains": "weather"}, "tools": ["get_weather"]},
        "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    },
]
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def serve(start_server: Any, *scenarios: dict[str, Any], **options: Any) -> MockServer:
    document = {"version": 1, "scenarios": list(scenarios)}
    server: MockServer = start_server(scenarios_yaml=json.dumps(document), **options)
    return server


def client_for(server: MockServer) -> openai.OpenAI:
    client: openai.OpenAI = openai_client(server)
    return client


def journal(server: MockServer) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = httpx.get(server.url + "/_mockllm/requests").json()
    return entries


def test_create(start_server: Any) -> None:
    server = serve(start_server, {"id": "hi", "reply": {"text": "Hello there!", "reasoning": "Greet back."}})
    response = client_for(server).responses.create(
        model="gpt-4.1", input="hi", reasoning={"summary": "auto"}, include=["reasoning.encrypted_content"]
    )
    assert response.output_text == "Hello there!"
    assert response.status == "completed"
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert [part.text for part in reasoning.summary] == ["Greet back."]
    assert reasoning.encrypted_content
    assert response.usage is not None
    assert response.usage.output_tokens == 6
    assert response.usage.output_tokens_details.reasoning_tokens == 3
    assert journal(server)[-1]["api"] == "responses"


def test_stream_and_get_final_response(start_server: Any) -> None:
    server = serve(start_server, {"id": "hi", "reply": {"text": "Hello there!"}})
    deltas = []
    with client_for(server).responses.stream(model="gpt-4.1", input="hi", instructions="Be kind.") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert deltas == ["Hello", " there", "!"]
    assert final.output_text == "Hello there!"
    assert final.instructions == "Be kind."
    assert journal(server)[-1]["chunks"] == 3


def test_tool_loop_with_function_call_output(start_server: Any) -> None:
    server = serve(start_server, *WEATHER)
    client = client_for(server)
    conversation: list[Any] = [{"role": "user", "content": "What's the weather in Oslo?"}]
    first = client.responses.create(model="gpt-4.1", input=conversation, tools=TOOLS)
    (call,) = first.output
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    conversation += [item.model_dump(exclude_none=True) for item in first.output]
    conversation.append({"type": "function_call_output", "call_id": call.call_id, "output": "12C"})
    with client.responses.stream(model="gpt-4.1", input=conversation, tools=TOOLS) as stream:
        second = stream.get_final_response()
    assert second.output_text == "It is 12 degrees in Oslo."
    assert [entry["scenario"] for entry in journal(server)] == ["weather", "weather-answer"]


def test_previous_response_id(start_server: Any) -> None:
    server = serve(start_server, *WEATHER)
    client = client_for(server)
    first = client.responses.create(model="gpt-4.1", input="What's the weather in Oslo?", tools=TOOLS)
    call = first.output[0]
    assert call.type == "function_call"
    second = client.responses.create(
        model="gpt-4.1",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "12C"}],
        tools=TOOLS,
    )
    assert second.output_text == "It is 12 degrees in Oslo."
    assert second.previous_response_id == first.id
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gpt-4.1", previous_response_id="resp_never", input="hi")
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"


def test_max_output_tokens_is_incomplete(start_server: Any) -> None:
    server = serve(start_server, {"id": "long", "reply": {"text": " ".join(["word"] * 40)}})
    with client_for(server).responses.stream(model="gpt-4.1", input="hi", max_output_tokens=16) as stream:
        kinds = [event.type for event in stream]
    assert kinds[-1] == "response.incomplete"
    response = client_for(server).responses.create(model="gpt-4.1", input="hi", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_nested_error_raises_api_error(start_server: Any) -> None:
    fault = {"kind": "error_event", "after": 2, "type": "insufficient_quota", "message": "You exceeded your quota."}
    server = serve(start_server, {"id": "f", "reply": {"text": "One two three four", "fault": fault}})
    deltas: list[str] = []

    def consume() -> None:
        for event in client_for(server).responses.create(model="gpt-4.1", input="hi", stream=True):
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)

    with pytest.raises(openai.APIError) as info:
        consume()
    assert not isinstance(info.value, openai.APIStatusError)  # no status, never retried (wire-formats.md §4)
    assert info.value.message == "You exceeded your quota."
    assert deltas == ["One", " two"]


def test_flat_error_is_an_event_then_failed(start_server: Any) -> None:
    fault = {"kind": "error_event", "after": 1, "form": "flat", "message": "Boom."}
    server = serve(start_server, {"id": "f", "reply": {"text": "One two", "fault": fault}})
    with client_for(server).responses.stream(model="gpt-4.1", input="hi") as stream:
        kinds = []
        for event in stream:
            kinds.append(event.type)
            if event.type == "error":
                assert event.message == "Boom."
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert kinds[-2:] == ["error", "response.failed"]


def test_end_fault_is_noticed_by_get_final_response(start_server: Any) -> None:
    server = serve(start_server, {"id": "f", "reply": {"text": "One two", "fault": {"kind": "end", "after": 2}}})
    with client_for(server).responses.stream(model="gpt-4.1", input="hi") as stream:
        for _ in stream:
            pass
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()


def test_langchain_tool_loop(start_server: Any) -> None:
    from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    server = serve(start_server, *WEATHER)

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "12C" if city == "Oslo" else "unknown"

    llm = ChatOpenAI(
        model="gpt-4.1", use_responses_api=True, base_url=server.openai_base_url, api_key="sk-test", max_retries=0
    ).bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("What's the weather in Oslo?")]
    first = llm.invoke(messages)
    assert [call["name"] for call in first.tool_calls] == ["get_weather"]
    call = first.tool_calls[0]
    messages += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    chunks = list(llm.stream(messages))  # the second turn streamed
    assert len(chunks) > 3
    assert "".join(chunk.text for chunk in chunks) == "It is 12 degrees in Oslo."
    assert [entry["scenario"] for entry in journal(server)] == ["weather", "weather-answer"]
    assert all(entry["api"] == "responses" for entry in journal(server))


def test_agents_sdk_tool_loop(start_server: Any) -> None:
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # never export traces: nothing may reach the network
    server = serve(start_server, *WEATHER)
    called: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        called.append(city)
        return "12C"

    async def run() -> Any:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
        try:
            model = OpenAIResponsesModel(model="gpt-4.1", openai_client=client)
            agent = Agent(name="weather", instructions="Answer briefly.", tools=[get_weather], model=model)
            return await Runner.run(agent, "What's the weather in Oslo?", run_config=RunConfig(tracing_disabled=True))
        finally:
            await client.close()

    result = asyncio.run(run())
    assert result.final_output == "It is 12 degrees in Oslo."
    assert called == ["Oslo"]
    entries = journal(server)
    assert [entry["scenario"] for entry in entries] == ["weather", "weather-answer"]
    assert entries[1]["body"]["instructions"] == "Answer briefly."
