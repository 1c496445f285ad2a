"""compat: a pydantic-ai `Agent` with an output type, on the chat-completions model, gets its structured output
through its own `final_result` tool (README recipe).

The tests are async and own the `AsyncOpenAI` client: `run_sync` leaves its event loop and connection open, which a
suite with `filterwarnings = error` reports as a ResourceWarning.
"""

from __future__ import annotations

import pytest
from offline import no_network  # noqa: F401  (the fixture, used through pytestmark)
from openai import AsyncOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from mockllm import MockLLM

pytestmark = [pytest.mark.compat, pytest.mark.usefixtures("no_network")]


class City(BaseModel):
    name: str
    country: str


@pytest.mark.asyncio
@pytest.mark.mockllm("data/compat/pydantic_ai.yaml")
async def test_agent_with_an_output_type(mockllm: MockLLM) -> None:
    async with AsyncOpenAI(base_url=mockllm.openai_base_url, api_key="sk-test") as client:
        model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))
        agent = Agent(model, output_type=City)
        result = await agent.run("Which city is the capital of Norway?")
    assert result.output == City(name="Oslo", country="Norway")
    [entry] = mockllm.requests
    assert entry.scenario == "city"
    assert [tool["function"]["name"] for tool in entry.body["tools"]] == ["final_result"]


@pytest.mark.asyncio
@pytest.mark.mockllm("data/compat/pydantic_ai.yaml")
async def test_agent_streams_its_output(mockllm: MockLLM) -> None:
    async with AsyncOpenAI(base_url=mockllm.openai_base_url, api_key="sk-test") as client:
        model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))
        agent = Agent(model, output_type=City)
        async with agent.run_stream("Which city is the capital of Norway?") as result:
            output = await result.get_output()
    assert output == City(name="Oslo", country="Norway")
    assert mockllm.requests[0].stream is True
