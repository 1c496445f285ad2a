"""LangChain's `OpenAIEmbeddings` against the mock: text and token-id inputs.

By default LangChain tokenizes each text with tiktoken and sends token ids. tiktoken downloads its encoding from
the internet on first use, and mockllm cannot turn token ids back into text offline either, so the recipe is
`check_embedding_ctx_length=False`: LangChain then sends the text, `prompt` conditions match and the vectors equal
those of the same text sent by any other client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from mockllm import MockServer
from mockllm.loading import load_text

SCENARIOS = """
version: 1
scenarios:
  - id: fixed
    when: {api: embeddings, prompt: {contains: pinned}}
    reply:
      vectors: [[0.6, 0.8, 0.0]]
"""
SMALL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(scenarios=load_text(SCENARIOS, "embeddings.yaml"), time_scale=0) as server:
        yield server


def test_langchain_sends_text_and_gets_the_same_vectors_as_the_sdk(server: MockServer) -> None:
    from langchain_openai import OpenAIEmbeddings

    # Keyword arguments through a dict: LangChain's pydantic aliases (base_url, api_key) are not visible to mypy.
    options: dict[str, Any] = {"base_url": server.openai_base_url, "api_key": "sk-test"}
    embedder = OpenAIEmbeddings(model=SMALL, check_embedding_ctx_length=False, **options)
    vectors = embedder.embed_documents(["hello world"])
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        direct = client.embeddings.create(model=SMALL, input="hello world").data[0].embedding
    assert vectors[0] == pytest.approx(direct)
    assert embedder.embed_query("a pinned text") == pytest.approx([0.6, 0.8, 0.0])  # the prompt condition matched
    first = httpx.get(server.url + "/_mockllm/requests").json()[0]
    assert first["body"]["input"] == ["hello world"]


def test_token_ids_are_hashed_but_never_read_as_text(server: MockServer) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        # What LangChain sends by default: token ids instead of the text ("hello world" in cl100k_base).
        ids = client.embeddings.create(model=SMALL, input=[[15339, 1917]]).data[0].embedding
        text = client.embeddings.create(model=SMALL, input="hello world").data[0].embedding
    assert len(ids) == len(text) == 1536
    assert ids != pytest.approx(text)  # deterministic, but not the text's vector
    # A prompt condition cannot see token ids; the miss says why and names the client setting.
    server.add(
        "version: 1\nscenarios:\n  - {id: hello, when: {api: completions, prompt: hello world}, reply: {text: hi}}"
    )
    response = httpx.post(server.url + "/v1/completions", json={"model": "m", "prompt": [15339, 1917]}, timeout=10)
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "the input arrived as token ids" in message
    assert "check_embedding_ctx_length=False" in message
