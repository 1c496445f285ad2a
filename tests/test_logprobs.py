"""Fabricated log probabilities: coherent figures, and Chat Completions' logprobs as OpenAI streams them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from mockllm import MockServer
from mockllm.loading import load_text
from mockllm.protocols.logprobs import chat_entry, legacy_logprobs, token_logprob, top_candidates
from mockllm.tokens import tokenize

SCENARIOS = """
version: 1
scenarios:
  - id: hello
    when: {prompt: Hello}
    reply: {text: "Hello there, how are you?"}
  - id: chunks
    when: {prompt: Chunks}
    reply: {chunks: ["Hello there,", " how are you?"]}
  - id: refuse
    when: {prompt: Refuse}
    reply: {refusal: "I cannot help with that."}
"""
ANSWER = "Hello there, how are you?"


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(scenarios=load_text(SCENARIOS, "logprobs.yaml"), time_scale=0) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def stream(server: MockServer, prompt: str, **extra: Any) -> list[dict[str, Any]]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": True, **extra}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [json.loads(event.removeprefix(b"data: ")) for event in events[:-2]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


@pytest.mark.parametrize("token", ["Hello", " there", ",", "\n", " the", "日本"])
@pytest.mark.parametrize("count", [0, 1, 5, 20])
def test_top_candidates_are_coherent(token: str, count: int) -> None:
    for position in range(30):
        candidates = top_candidates(token, position, count)
        assert len(candidates) == count
        if not count:
            continue
        assert candidates[0] == (token, token_logprob(token, position))
        names = [name for name, _ in candidates]
        assert len(set(names)) == count
        values = [value for _, value in candidates]
        assert values == sorted(values, reverse=True)
        assert all(value <= 0 for value in values)
        assert math.fsum(math.exp(value) for value in values) <= 1.0
        assert top_candidates(token, position, count) == candidates  # the same every time


def test_figures_depend_on_the_token_and_its_position() -> None:
    figures = {token_logprob(token, position) for token in ("a", "b", "c") for position in range(20)}
    assert len(figures) == 60
    assert all(-2.6 < value < 0 for value in figures)


def test_chat_entry_shape() -> None:
    entry = chat_entry("日本", 3, 2)
    assert list(entry) == ["token", "logprob", "bytes", "top_logprobs"]
    assert entry["bytes"] == list("日本".encode())
    assert [list(top) for top in entry["top_logprobs"]] == [["token", "logprob", "bytes"]] * 2
    assert entry["top_logprobs"][0] == {"token": "日本", "logprob": entry["logprob"], "bytes": entry["bytes"]}


def test_legacy_logprobs_offsets_and_echoed_first_token() -> None:
    logprobs = legacy_logprobs(["Say", " hi", " Hi"], [None, None, 0], 2, 10)
    assert logprobs["text_offset"] == [10, 13, 16]
    assert (logprobs["token_logprobs"][0], logprobs["top_logprobs"][0]) == (None, None)
    assert logprobs["top_logprobs"][2] == dict(top_candidates(" Hi", 0, 2))


def test_streamed_chat_logprobs_as_openai_sends_them(server: MockServer) -> None:
    chunks = stream(server, "Hello", logprobs=True, top_logprobs=3)
    first, *content, finish = (chunk["choices"][0] for chunk in chunks)
    # wire-formats.md §2.2 "Logprobs": the role chunk opens the lists, each token chunk carries its entries,
    # the finish chunk has null.
    assert first["logprobs"] == {"content": [], "refusal": None}
    assert finish["logprobs"] is None
    assert [choice["delta"]["content"] for choice in content] == tokenize(ANSWER)
    for position, choice in enumerate(content):
        assert choice["logprobs"]["refusal"] is None
        [entry] = choice["logprobs"]["content"]
        assert entry == chat_entry(choice["delta"]["content"], position, 3)
        assert entry["logprob"] <= 0
        assert len(entry["top_logprobs"]) == 3


def test_logprobs_without_top_logprobs_have_empty_alternatives(server: MockServer) -> None:
    chunks = stream(server, "Hello", logprobs=True)
    entries = [entry for chunk in chunks[1:-1] for entry in chunk["choices"][0]["logprobs"]["content"]]
    assert entries
    assert all(entry["top_logprobs"] == [] for entry in entries)
    assert all(chunk["choices"][0]["logprobs"] is None for chunk in stream(server, "Hello"))


def test_a_chunk_of_several_tokens_carries_one_entry_each(server: MockServer) -> None:
    chunks = stream(server, "Chunks", logprobs=True, top_logprobs=1)
    first, second = (chunk["choices"][0]["logprobs"]["content"] for chunk in chunks[1:3])
    assert [entry["token"] for entry in first] == tokenize("Hello there,")
    assert [entry["token"] for entry in second] == tokenize(" how are you?")
    # Positions run on across chunks: the same text gets the same figures as the tokenizer's chunking.
    plain = stream(server, "Hello", logprobs=True, top_logprobs=1)
    assert [*first, *second] == [chunk["choices"][0]["logprobs"]["content"][0] for chunk in plain[1:-1]]


def test_a_refusal_puts_its_logprobs_under_refusal(server: MockServer) -> None:
    chunks = stream(server, "Refuse", logprobs=True, top_logprobs=0)
    first, *refusal, finish = (chunk["choices"][0] for chunk in chunks)
    assert first["logprobs"] == {"content": None, "refusal": []}
    assert finish["logprobs"] is None
    for choice in refusal:
        assert choice["logprobs"]["content"] is None
        assert [entry["token"] for entry in choice["logprobs"]["refusal"]] == [choice["delta"]["refusal"]]


def test_the_sdk_reads_streamed_and_non_streamed_logprobs_alike(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Hello"}]
    completion = client.chat.completions.create(model="gpt-4o", messages=messages, logprobs=True, top_logprobs=2)
    assert isinstance(completion, ChatCompletion)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert "".join(entry.token for entry in logprobs.content) == ANSWER
    assert logprobs.refusal is None
    streamed = []
    with client.chat.completions.create(
        model="gpt-4o", messages=messages, logprobs=True, top_logprobs=2, stream=True
    ) as chunks:
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                streamed.extend(chunk.choices[0].logprobs.content)
    assert streamed == logprobs.content


def test_n_choices_each_carry_their_own_logprobs(server: MockServer) -> None:
    chunks = stream(server, "Hello", logprobs=True, n=2)
    for index in (0, 1):
        mine = [chunk["choices"][0] for chunk in chunks if chunk["choices"][0]["index"] == index]
        tokens = [entry["token"] for choice in mine if choice["logprobs"] for entry in choice["logprobs"]["content"]]
        assert "".join(tokens) == ANSWER
