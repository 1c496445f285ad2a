"""compat: the OpenAI Agents SDK in chat-completions mode runs a function-tool loop (README recipe).

Tracing is disabled: it would otherwise upload traces to OpenAI.
"""

from __future__ import annotations

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from offline import no_network  # noqa: F401  (the fixture, used through pytestmark)
from openai import AsyncOpenAI

from mockllm import MockLLM

pytestmark = [pytest.mark.compat, pytest.mark.usefixtures("no_network")]


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"12 degrees in {city}"


@pytest.mark.asyncio
@pytest.mark.mockllm("data/compat/openai_agents.yaml")
async def test_function_tool_loop(mockllm: MockLLM) -> None:
    set_tracing_disabled(True)
    async with AsyncOpenAI(base_url=mockllm.openai_base_url, api_key="sk-test") as client:
        agent = Agent(
            name="Weather",
            instructions="You are a weather assistant.",
            tools=[get_weather],
            model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client),
        )
        result = await Runner.run(agent, "What's the weather in Oslo?")
    assert result.final_output == "It is 12 degrees in Oslo."
    assert [entry.scenario for entry in mockllm.requests] == ["weather", "weather-answer"]
    assert mockllm.requests[1].body["messages"][-1]["content"] == "12 degrees in Oslo"
