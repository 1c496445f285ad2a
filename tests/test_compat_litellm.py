"""compat: LiteLLM's `completion` through its `openai/` provider, streaming and not, with a tool loop (README recipe).

LiteLLM is imported inside the tests (its import is slow), after `LITELLM_LOCAL_MODEL_COST_MAP=True`: otherwise it
fetches its model-cost map from the internet at import time.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from offline import no_network  # noqa: F401  (the fixture, used through pytestmark)

from mockllm import MockLLM

pytestmark = [pytest.mark.compat, pytest.mark.usefixtures("no_network")]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def litellm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The `litellm` module, imported offline; what it leaves open is closed after the test."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    yield litellm
    # LiteLLM caches its HTTP clients across calls: close them, or their sockets outlive the test.
    cache = litellm.in_memory_llm_clients_cache
    for client in list(cache.cache_dict.values()):
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
    cache.flush_cache()  # type: ignore[no-untyped-call]  # LiteLLM leaves it unannotated
    # A blocking call logs its timing on the thread's event loop, which `asyncio.get_event_loop()` creates and
    # nobody closes; close it here, before the garbage collector reports it in another test.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return  # no loop: set to None by an earlier test, and LiteLLM then used asyncio.run
    loop.close()
    asyncio.set_event_loop(None)


@pytest.mark.mockllm("data/compat/litellm.yaml")
def test_completion_and_streaming(mockllm: MockLLM, litellm: Any) -> None:
    messages = [{"role": "user", "content": "Say hello"}]
    response = litellm.completion(
        model="openai/gpt-4o-mini", api_base=mockllm.openai_base_url, api_key="sk-test", messages=messages
    )
    assert response.choices[0].message.content == "Hello from the mock!"
    stream = litellm.completion(
        model="openai/gpt-4o-mini", api_base=mockllm.openai_base_url, api_key="sk-test", messages=messages, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "Hello from the mock!"
    assert [(entry.scenario, entry.stream) for entry in mockllm.requests] == [("greet", False), ("greet", True)]


@pytest.mark.mockllm("data/compat/litellm.yaml")
def test_tool_loop(mockllm: MockLLM, litellm: Any) -> None:
    options: dict[str, Any] = {
        "model": "openai/gpt-4o-mini",
        "api_base": mockllm.openai_base_url,
        "api_key": "sk-test",
        "tools": [WEATHER_TOOL],
    }
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Oslo?"}]
    message = litellm.completion(messages=messages, **options).choices[0].message
    while message.tool_calls:
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            city = json.loads(call.function.arguments)["city"]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": f"12 degrees in {city}"})
        message = litellm.completion(messages=messages, **options).choices[0].message
    assert message.content == "It is 12 degrees in Oslo."
    assert [entry.scenario for entry in mockllm.requests] == ["weather", "weather-answer"]
