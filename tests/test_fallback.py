"""`--fallback echo` and `--fallback lorem`: answers for requests no scenario matches."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sse_utils import openai_client

from mockllm.app import lorem
from mockllm.tokens import count_tokens


def conversation(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_echo_repeats_the_last_user_message(start_server: Any) -> None:
    server = start_server(fallback="echo")
    client: openai.OpenAI = openai_client(server)
    completion = client.chat.completions.create(model="m", messages=conversation("Repeat after me, please."))
    assert completion.choices[0].message.content == "Repeat after me, please."
    stream = client.chat.completions.create(model="m", messages=conversation("Stream it back."), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Stream it back."
    entries = httpx.get(server.url + "/_mockllm/requests").json()
    assert [(e["status"], e["scenario"], e["miss"]) for e in entries] == [(200, None, None)] * 2


def test_lorem_sends_max_tokens_of_filler(start_server: Any) -> None:
    server = start_server(fallback="lorem")
    client: openai.OpenAI = openai_client(server)
    completion = client.chat.completions.create(model="m", messages=conversation("anything"), max_tokens=7)
    text = completion.choices[0].message.content or ""
    assert text.startswith("Lorem ipsum")
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7 == count_tokens(text)
    again = client.chat.completions.create(model="m", messages=conversation("something else"), max_tokens=7)
    assert again.choices[0].message.content == text  # deterministic
    default = client.chat.completions.create(model="m", messages=conversation("anything"))
    assert default.usage is not None
    assert default.usage.completion_tokens == 50
    assert default.choices[0].finish_reason == "stop"


def test_scenarios_still_answer_first(start_server: Any) -> None:
    server = start_server(
        fallback="echo", scenarios_yaml="version: 1\nscenarios:\n  - when: {prompt: hi}\n    reply: {text: Hello!}\n"
    )
    client: openai.OpenAI = openai_client(server)
    assert client.chat.completions.create(model="m", messages=conversation("hi")).choices[0].message.content == (
        "Hello!"
    )


@pytest.mark.parametrize("count", [1, 50, 500])
def test_lorem_is_exactly_count_tokens(count: int) -> None:
    pieces = lorem(count)
    assert len(pieces) == count
    assert count_tokens("".join(pieces)) == count
