"""The vllm-0.10 dialect (vLLM 0.10, as Ray Serve LLM and Baseten document it): every chunk validates against the
published schemas. (The current `vllm` profile stamps `system_fingerprint` on the last chunk and names reasoning
`reasoning`, which Baseten's strict schema refuses; tests/test_dialects.py covers it.)

The schemas are copied in `tests/data/schemas/` (see its README): Ray Serve LLM's `CompletionStreamResponse`
for `/v1/completions` chunks, Baseten's strict `ChatCompletionStreamResponse` (no extra top-level key) for
chat chunks. The openai dialect's side of each difference is checked here too, next to the vllm one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from conftest import DATA
from jsonschema import Draft202012Validator
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from mockllm import MockServer
from mockllm.loading import load_text
from mockllm.tokens import count_tokens, tokenize

SCHEMAS = DATA / "schemas"
CHAT_SCHEMA = Draft202012Validator(
    json.loads((SCHEMAS / "baseten-chat-completion-stream-response.schema.json").read_text(encoding="utf-8"))
)
COMPLETION_SCHEMA = Draft202012Validator(
    json.loads((SCHEMAS / "ray-serve-completion-stream-response.schema.json").read_text(encoding="utf-8"))
)

SCENARIOS = """
version: 1
scenarios:
  - id: think
    when: {prompt: Think}
    reply:
      reasoning: Let me think about it.
      text: The answer is 42.
      usage: {cached_tokens: 5}
  - id: weather
    when: {prompt: Weather}
    reply:
      tool_calls: [{name: get_weather, arguments: {city: Oslo}}]
  - id: both-cities
    when: {prompt: Two cities}
    reply:
      tool_calls:
        - {name: get_weather, arguments: {city: Oslo}}
        - {name: get_weather, arguments: {city: Bergen}}
  - id: broken
    when: {prompt: Break}
    reply:
      text: one two three
      fault: {kind: error_event, after: 1}
  - id: limited
    when: {prompt: Limited}
    reply: {error: {status: 429}}
  - id: custom-code
    when: {prompt: Custom}
    reply: {error: {status: 400, code: context_too_long, message: too long}}
  - id: llama
    dialect: vllm-0.10
    when: {model: meta-llama/Llama-3.1-8B-Instruct}
    reply: {text: Hello from vLLM.}
  - id: paris
    when: {prompt: {contains: France}}
    reply: {text: " Paris. It is the largest city of the country."}
"""
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def start(dialect: str) -> MockServer:
    return MockServer(scenarios=load_text(SCENARIOS, "vllm.yaml"), dialect=dialect, time_scale=0)


@pytest.fixture(scope="module")
def vllm() -> Iterator[MockServer]:
    """A server whose default dialect is vllm-0.10 (`--dialect vllm-0.10`), the one the published schemas describe."""
    with start("vllm-0.10") as server:
        yield server


@pytest.fixture(scope="module")
def openai_server() -> Iterator[MockServer]:
    """A server in the default openai dialect; the `llama` scenario alone says `dialect: vllm-0.10`."""
    with start("openai") as server:
        yield server


@pytest.fixture
def client(vllm: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=vllm.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def stream(server: MockServer, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks of a streamed response; the framing and the final `[DONE]` are checked."""
    response = httpx.post(server.url + path, json={"stream": True, **body}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    return [json.loads(event.removeprefix(b"data: ")) for event in events[:-2]]


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "llama", "messages": [{"role": "user", "content": prompt}], **extra}


def schema_errors(validator: Draft202012Validator, chunk: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(chunk)]


CHAT_BODIES = {
    "text": chat("The capital of France is"),
    "reasoning": chat("Think"),
    "usage": chat("Think", stream_options={"include_usage": True}),
    "tool-call": chat("Weather"),
    "parallel-tool-calls": chat("Two cities"),
    "n=3": chat("The capital of France is", n=3),
    "logprobs": chat("The capital of France is", logprobs=True, top_logprobs=3),
    "stop": chat("The capital of France is", stop=["largest"]),
    "max-tokens": chat("Think", max_tokens=5, stream_options={"include_usage": True}),
}


@pytest.mark.parametrize("body", CHAT_BODIES.values(), ids=CHAT_BODIES.keys())
def test_every_chat_chunk_validates_against_basetens_schema(vllm: MockServer, body: dict[str, Any]) -> None:
    chunks = stream(vllm, "/v1/chat/completions", body)
    for chunk in chunks:
        assert schema_errors(CHAT_SCHEMA, chunk) == [], chunk
        ChatCompletionChunk.model_validate(chunk)
        for key in ("system_fingerprint", "service_tier", "obfuscation"):
            assert key not in chunk
    *content, last = chunks
    if body.get("stream_options"):
        assert last["choices"] == []
        assert set(last["usage"]) == {"prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details"}
    else:
        content.append(last)
    # `usage` is absent, not null, until the usage chunk (wire-formats.md §8.1).
    assert all("usage" not in chunk for chunk in content)
    for chunk in content:
        for choice in chunk["choices"]:
            assert "refusal" not in choice["delta"]
            assert ("stop_reason" in choice) == (choice["finish_reason"] is not None)
    firsts = [chunk["choices"][0] for chunk in content if "role" in chunk["choices"][0]["delta"]]
    assert [first["delta"] for first in firsts] == [{"role": "assistant", "content": ""}] * body.get("n", 1)


def test_stop_reason_is_the_matched_stop_string_or_null(vllm: MockServer) -> None:
    chunks = stream(vllm, "/v1/chat/completions", chat("The capital of France is", stop=["largest", "zzz"]))
    assert chunks[-1]["choices"][0] | {"delta": None} == {
        "index": 0,
        "delta": None,
        "logprobs": None,
        "finish_reason": "stop",
        "stop_reason": "largest",
    }
    cut = stream(vllm, "/v1/chat/completions", chat("The capital of France is", max_tokens=2))
    assert (cut[-1]["choices"][0]["finish_reason"], cut[-1]["choices"][0]["stop_reason"]) == ("length", None)
    body = httpx.post(vllm.url + "/v1/chat/completions", json=chat("France", stop="largest"), timeout=10).json()
    assert (body["choices"][0]["finish_reason"], body["choices"][0]["stop_reason"]) == ("stop", "largest")


def test_reasoning_streams_as_reasoning_content_before_the_content(vllm: MockServer, client: openai.OpenAI) -> None:
    chunks = stream(vllm, "/v1/chat/completions", chat("Think", stream_options={"include_usage": True}))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    kinds = [next(iter(key for key in delta if key != "role"), "finish") for delta in deltas]
    reasoning = kinds.count("reasoning_content")
    assert kinds == [
        "content",
        *["reasoning_content"] * reasoning,
        *["content"] * (len(kinds) - reasoning - 2),
        "finish",
    ]
    assert "".join(delta.get("reasoning_content", "") for delta in deltas) == "Let me think about it."
    assert "".join(delta.get("content", "") for delta in deltas) == "The answer is 42."
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 5}
    assert usage["completion_tokens"] == count_tokens("Let me think about it.") + count_tokens("The answer is 42.")
    completion = client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "Think"}])
    message = completion.choices[0].message.model_dump()
    assert (message["content"], message["reasoning_content"]) == ("The answer is 42.", "Let me think about it.")


def test_the_openai_dialect_hides_reasoning_but_counts_it(openai_server: MockServer) -> None:
    chunks = stream(openai_server, "/v1/chat/completions", chat("Think", stream_options={"include_usage": True}))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert all("reasoning_content" not in delta and "reasoning" not in delta for delta in deltas)
    assert "".join(delta.get("content") or "" for delta in deltas) == "The answer is 42."
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == count_tokens("Let me think about it.")
    assert usage["completion_tokens"] == count_tokens("Let me think about it.") + count_tokens("The answer is 42.")
    assert usage["prompt_tokens_details"]["cached_tokens"] == 5
    assert all(chunk["usage"] is None for chunk in chunks[:-1])  # OpenAI: null on every chunk, not absent
    body = httpx.post(openai_server.url + "/v1/chat/completions", json=chat("Think"), timeout=10).json()
    ChatCompletion.model_validate(body)
    assert "reasoning_content" not in body["choices"][0]["message"]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == count_tokens("Let me think about it.")


def test_chat_logprobs_in_the_vllm_dialect(vllm: MockServer) -> None:
    chunks = stream(vllm, "/v1/chat/completions", chat("The capital of France is", logprobs=True, top_logprobs=2))
    assert chunks[0]["choices"][0]["logprobs"] is None  # the role chunk
    assert chunks[-1]["choices"][0]["logprobs"] is None  # the finish chunk
    for chunk in chunks[1:-1]:
        choice = chunk["choices"][0]
        assert list(choice["logprobs"]) == ["content"]  # no `refusal` list in vLLM
        [entry] = choice["logprobs"]["content"]
        assert entry["token"] == choice["delta"]["content"]
        assert len(entry["top_logprobs"]) == 2


COMPLETION_BODIES = {
    "text": {"prompt": "The capital of France is"},
    "logprobs": {"prompt": "The capital of France is", "logprobs": 2},
    "echo": {"prompt": "The capital of France is", "echo": True},
    "echo-logprobs": {"prompt": "The capital of France is", "echo": True, "logprobs": 0},
    "usage": {"prompt": "The capital of France is", "stream_options": {"include_usage": True}},
    "prompts-times-n": {"prompt": ["France?", "France!"], "n": 2},
    "stop": {"prompt": "The capital of France is", "stop": "largest"},
    "max-tokens": {"prompt": "The capital of France is", "max_tokens": 3},
}


@pytest.mark.parametrize("body", COMPLETION_BODIES.values(), ids=COMPLETION_BODIES.keys())
def test_every_completion_chunk_validates_against_ray_serves_schema(vllm: MockServer, body: dict[str, Any]) -> None:
    chunks = stream(vllm, "/v1/completions", {"model": "llama", **body})
    for chunk in chunks:
        assert schema_errors(COMPLETION_SCHEMA, chunk) == [], chunk
        assert list(chunk)[:5] == ["id", "object", "created", "model", "choices"]  # vLLM's field order
        assert chunk["object"] == "text_completion"
        assert chunk["id"].startswith("cmpl-")
        assert "system_fingerprint" not in chunk
    if body.get("stream_options"):
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["completion_tokens"] == len(
            tokenize(" Paris. It is the largest city of the country.")
        )
        chunks = chunks[:-1]
    assert all("usage" not in chunk for chunk in chunks)
    for chunk in chunks:
        [choice] = chunk["choices"]
        assert list(choice) == ["index", "text", "logprobs", "finish_reason", "stop_reason"]
    finishes = [chunk["choices"][0] for chunk in chunks if chunk["choices"][0]["finish_reason"]]
    assert len(finishes) == body.get("n", 1) * (len(body["prompt"]) if isinstance(body["prompt"], list) else 1)


def test_completion_stop_reason_and_the_sdk(vllm: MockServer, client: openai.OpenAI) -> None:
    chunks = stream(vllm, "/v1/completions", {"model": "llama", "prompt": "France", "stop": ["largest"]})
    assert (chunks[-1]["choices"][0]["finish_reason"], chunks[-1]["choices"][0]["stop_reason"]) == ("stop", "largest")
    with client.completions.create(model="llama", prompt="France", stream=True) as sdk_stream:
        text = "".join(chunk.choices[0].text for chunk in sdk_stream)
    assert text == " Paris. It is the largest city of the country."
    completion = client.completions.create(model="llama", prompt="France", stop="largest")
    Completion.model_validate(completion.model_dump())
    choice = completion.choices[0].model_dump()
    assert (choice["text"], choice["finish_reason"], choice["stop_reason"]) == (" Paris. It is the ", "stop", "largest")
    body = httpx.post(vllm.url + "/v1/completions", json={"model": "llama", "prompt": "France"}, timeout=10).json()
    assert list(body) == ["id", "object", "created", "model", "choices", "usage"]
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_a_scenario_dialect_overrides_the_server_default(openai_server: MockServer) -> None:
    llama = stream(openai_server, "/v1/chat/completions", {**chat("Hi"), "model": LLAMA})
    for chunk in llama:
        assert schema_errors(CHAT_SCHEMA, chunk) == []
    assert "stop_reason" in llama[-1]["choices"][0]
    other = stream(openai_server, "/v1/chat/completions", chat("The capital of France is"))
    assert all(chunk["system_fingerprint"] and chunk["service_tier"] == "default" for chunk in other)
    assert "stop_reason" not in other[-1]["choices"][0]
    assert other[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    response = httpx.post(openai_server.url + "/v1/chat/completions", json={**chat("Hi"), "model": LLAMA}, timeout=10)
    assert "x-request-id" not in response.headers  # vLLM sends none by default (§8.1)
    assert "x-ratelimit-limit-requests" not in response.headers


PERMISSION_KEYS = [
    "id",
    "object",
    "created",
    "allow_create_engine",
    "allow_sampling",
    "allow_logprobs",
    "allow_search_indices",
    "allow_view",
    "allow_fine_tuning",
    "organization",
    "group",
    "is_blocking",
]


def check_vllm_card(card: dict[str, Any], model: str) -> None:
    assert card["id"] == card["root"] == model
    assert (card["object"], card["owned_by"], card["parent"]) == ("model", "vllm", None)
    assert isinstance(card["max_model_len"], int)
    [permission] = card["permission"]
    assert list(permission) == PERMISSION_KEYS
    assert permission["id"].startswith("modelperm-")
    assert permission["object"] == "model_permission"


def test_models_in_the_vllm_dialect(vllm: MockServer, client: openai.OpenAI) -> None:
    listing = httpx.get(vllm.url + "/v1/models", timeout=10).json()
    assert listing["object"] == "list"
    assert [card["id"] for card in listing["data"]] == [LLAMA]
    check_vllm_card(listing["data"][0], LLAMA)
    assert [model.id for model in client.models.list()] == [LLAMA]
    retrieved = client.models.retrieve(LLAMA)  # ids with `/` work
    assert retrieved.owned_by == "vllm"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("missing")
    # The body's `code` is the int 404; some SDK releases turn it into the string "404", others keep the int.
    assert (str(caught.value.code), caught.value.type) == ("404", "NotFoundError")
    assert caught.value.body == {
        "message": caught.value.body["message"],  # type: ignore[index]
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


def test_a_models_card_follows_the_dialect_of_its_scenario() -> None:
    scenarios = load_text(SCENARIOS, "vllm.yaml")
    with MockServer(scenarios=scenarios, models=["gpt-4o-mini"], time_scale=0) as server:
        listing = httpx.get(server.url + "/v1/models", timeout=10).json()
        card = httpx.get(server.url + "/v1/models/gpt-4o-mini", timeout=10).json()
    assert [card["id"] for card in listing["data"]] == [LLAMA, "gpt-4o-mini"]
    check_vllm_card(listing["data"][0], LLAMA)
    assert (
        listing["data"][1]
        == card
        == {"id": "gpt-4o-mini", "object": "model", "created": 1700000000, "owned_by": "system"}
    )


def test_errors_in_the_vllm_dialect(vllm: MockServer, client: openai.OpenAI) -> None:
    response = httpx.post(vllm.url + "/v1/completions", json={"model": "llama", "prompt": "x", "top_p": 2}, timeout=10)
    assert response.status_code == 400
    assert "x-request-id" not in response.headers
    assert response.json() == {
        "error": {
            "message": "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 2 instead.",
            "type": "BadRequestError",
            "param": "top_p",
            "code": 400,
        }
    }
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "x"}], temperature=5)
    # The body's int 400 comes out as "400" or 400, depending on the SDK release.
    assert (str(bad.value.code), bad.value.type, bad.value.param) == ("400", "BadRequestError", "temperature")
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "no scenario says this"}])
    assert (str(missing.value.code), missing.value.type) == ("404", "NotFoundError")
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "Limited"}])
    assert (str(limited.value.code), limited.value.type) == ("429", "TooManyRequestsError")
    with pytest.raises(openai.BadRequestError) as custom:
        client.chat.completions.create(model="llama", messages=[{"role": "user", "content": "Custom"}])
    assert custom.value.code == "context_too_long"  # a code the scenario sets is kept


def test_a_mid_stream_error_in_the_vllm_dialect(vllm: MockServer) -> None:
    response = httpx.post(vllm.url + "/v1/chat/completions", json=chat("Break", stream=True), timeout=10)
    events = response.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    error = json.loads(events[-3].removeprefix(b"data: "))["error"]
    assert (error["type"], error["code"], error["param"]) == ("InternalServerError", 500, None)


def test_the_schemas_tell_the_dialects_apart(openai_server: MockServer) -> None:
    """The check above can fail: an openai-dialect chunk breaks Baseten's strict top level."""
    chunks = stream(openai_server, "/v1/chat/completions", chat("The capital of France is"))
    errors = schema_errors(CHAT_SCHEMA, chunks[0])
    assert errors
    assert "Additional properties are not allowed" in errors[0]
    assert "system_fingerprint" in errors[0]


def test_a_refusal_is_ordinary_content_in_the_vllm_dialect(start_server: Any) -> None:
    server = start_server(
        dialect="vllm-0.10",
        scenarios_yaml='version: 1\nscenarios:\n  - reply: {refusal: "I can\'t help with that."}\n',
    )
    chunks = stream(server, "/v1/chat/completions", chat("anything"))
    for chunk in chunks:
        CHAT_SCHEMA.validate(chunk)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert text == "I can't help with that."
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test") as sdk:
        completion = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "anything"}])
    assert completion.choices[0].message.content == "I can't help with that."
    assert completion.choices[0].message.refusal is None
