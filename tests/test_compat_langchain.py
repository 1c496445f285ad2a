"""compat: LangChain's `ChatOpenAI` with bound tools runs a tool loop against the mock (README recipe)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, BaseMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from offline import no_network  # noqa: F401  (the fixture, used through pytestmark)

from mockllm import MockLLM

pytestmark = [pytest.mark.compat, pytest.mark.usefixtures("no_network")]


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"12 degrees in {city}"


@pytest.mark.mockllm("data/compat/langchain.yaml")
def test_chat_openai_tool_loop(mockllm: MockLLM) -> None:
    model = ChatOpenAI(model="gpt-4o-mini", base_url=mockllm.openai_base_url, api_key="sk-test")
    agent = model.bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("What's the weather in Oslo?")]
    reply = agent.invoke(messages)
    while isinstance(reply, AIMessage) and reply.tool_calls:
        messages.append(reply)
        for call in reply.tool_calls:
            messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
        reply = agent.invoke(messages)
    assert reply.content == "It is 12 degrees in Oslo."
    assert [entry.scenario for entry in mockllm.requests] == ["weather", "weather-answer"]
    assert mockllm.requests[1].body["messages"][-1]["content"] == "12 degrees in Oslo"


@pytest.mark.mockllm("data/compat/langchain.yaml")
def test_chat_openai_streams_the_tool_call(mockllm: MockLLM) -> None:
    model = ChatOpenAI(model="gpt-4o-mini", base_url=mockllm.openai_base_url, api_key="sk-test", streaming=True)
    chunks = list(model.bind_tools([get_weather]).stream("What's the weather in Oslo?"))
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    merged: BaseMessageChunk = chunks[0]  # type: ignore[assignment]  # stream() is typed as yielding AIMessage
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert isinstance(merged, AIMessageChunk)
    assert [(call["name"], call["args"]) for call in merged.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert mockllm.requests[0].stream is True
