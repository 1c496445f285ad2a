"""compat: instructor's structured output asks for one tool named after the response model (README recipe)."""

from __future__ import annotations

import instructor
import openai
import pytest
from offline import no_network  # noqa: F401  (the fixture, used through pytestmark)
from pydantic import BaseModel

from mockllm import MockLLM

pytestmark = [pytest.mark.compat, pytest.mark.usefixtures("no_network")]


class City(BaseModel):
    name: str
    country: str


@pytest.mark.mockllm("data/compat/instructor.yaml")
def test_structured_output(mockllm: MockLLM) -> None:
    with openai.OpenAI(base_url=mockllm.openai_base_url, api_key="sk-test") as raw:
        client = instructor.from_openai(raw)
        city = client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=City,
            messages=[{"role": "user", "content": "Which city is the capital of Norway?"}],
        )
    assert (city.name, city.country) == ("Oslo", "Norway")
    [entry] = mockllm.requests
    assert entry.scenario == "city"
    assert entry.body["tool_choice"] == {"type": "function", "function": {"name": "City"}}
