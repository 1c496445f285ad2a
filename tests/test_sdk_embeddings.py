"""The official `openai` client against `/v1/embeddings`: hashed vectors, dimensions, encodings, fixed vectors."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse

from mockllm import MockServer, ScenarioError
from mockllm.loading import load_text
from mockllm.protocols.embeddings import hashed_vector
from mockllm.tokens import count_tokens

SCENARIOS = """
version: 1
scenarios:
  - id: fixed
    when: {api: embeddings, prompt: {glob: "fixed*"}}
    reply:
      vectors: [[0.6, 0.8, 0.0]]
  - id: limited
    when: {api: embeddings, prompt: limited}
    reply:
      error: {status: 429, retry_after: 1s}
  - id: vllm-embedder
    dialect: vllm
    when: {api: embeddings, model: intfloat/e5-small}
    reply: {}
"""
SMALL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    """One server for the module: no test here changes its state."""
    with MockServer(scenarios=load_text(SCENARIOS, "embeddings.yaml"), time_scale=0) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def post(server: MockServer, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/embeddings", json={"model": SMALL, **body}, timeout=10)


def norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def as_float32(vector: list[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def test_the_sdk_default_base64_decodes_to_unit_vectors(server: MockServer, client: openai.OpenAI) -> None:
    response = client.embeddings.create(model=SMALL, input="hello")
    assert isinstance(response, CreateEmbeddingResponse)
    [item] = response.data
    assert (item.object, item.index, len(item.embedding)) == ("embedding", 0, 1536)
    assert norm(item.embedding) == pytest.approx(1.0, abs=1e-5)
    assert response.model == SMALL
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (1, 1)
    # The SDK asks for base64 when the caller names no format, and decodes little-endian float32.
    journal = httpx.get(server.url + "/_mockllm/requests", timeout=10).json()
    assert journal[-1]["body"]["encoding_format"] == "base64"
    assert (journal[-1]["scenario"], journal[-1]["status"]) == (None, 200)


def test_float_and_base64_carry_the_same_float32_numbers(server: MockServer) -> None:
    floats = post(server, input="hello", encoding_format="float").json()["data"][0]["embedding"]
    encoded = post(server, input="hello", encoding_format="base64").json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    assert base64.b64decode(encoded) == as_float32(floats)
    assert max(len(repr(x)) for x in floats) <= 16  # float32 precision, not seventeen digits of a double


def test_vectors_are_the_same_across_requests_runs_and_processes(server: MockServer, client: openai.OpenAI) -> None:
    first = client.embeddings.create(model=SMALL, input="hello", dimensions=4, encoding_format="float")
    second = client.embeddings.create(model=SMALL, input="hello", dimensions=4, encoding_format="float")
    assert first.data[0].embedding == second.data[0].embedding
    # Pinned: a change of these figures breaks every stored expectation of mockllm's users.
    assert first.data[0].embedding == [0.327386737, -0.615596354, -0.409853399, 0.588114977]
    # Another interpreter, with another hash seed, computes the same vector (Python's hash() is not used).
    code = "from mockllm.protocols.embeddings import hashed_vector as h; print(h('hello', 4))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        timeout=60,
    ).stdout
    assert as_float32(json.loads(out)) == as_float32(first.data[0].embedding)


def test_different_inputs_get_different_vectors(client: openai.OpenAI) -> None:
    response = client.embeddings.create(model=SMALL, input=["a cat", "a dog", "a cat"], encoding_format="float")
    assert [item.index for item in response.data] == [0, 1, 2]
    cat, dog, cat_again = (item.embedding for item in response.data)
    assert cat == cat_again
    assert abs(math.fsum(x * y for x, y in zip(cat, dog, strict=True))) < 0.2  # nearly orthogonal
    assert response.usage.prompt_tokens == 3 * count_tokens("a cat")


def test_dimensions_shorten_and_renormalise_the_full_vector(client: openai.OpenAI) -> None:
    full = client.embeddings.create(model=SMALL, input="hello", encoding_format="float").data[0].embedding
    short = client.embeddings.create(model=SMALL, input="hello", dimensions=256).data[0].embedding
    assert len(short) == 256
    assert norm(short) == pytest.approx(1.0, abs=1e-5)
    scale = norm(full[:256])
    assert short == pytest.approx([x / scale for x in full[:256]], abs=1e-6)


@pytest.mark.parametrize(
    ("model", "size"),
    [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536)],
)
def test_each_model_has_its_native_size(client: openai.OpenAI, model: str, size: int) -> None:
    assert len(client.embeddings.create(model=model, input="x").data[0].embedding) == size


def test_other_models_get_1536_dimensions(client: openai.OpenAI) -> None:
    assert len(client.embeddings.create(model="my-embedder", input="x").data[0].embedding) == 1536


def test_token_id_inputs(client: openai.OpenAI) -> None:
    one = client.embeddings.create(model=SMALL, input=[1, 2, 3], encoding_format="float")
    assert len(one.data) == 1
    assert one.usage.prompt_tokens == 3
    two = client.embeddings.create(model=SMALL, input=[[1, 2], [3]], encoding_format="float")
    assert [item.index for item in two.data] == [0, 1]
    assert as_float32(two.data[0].embedding) == as_float32(hashed_vector([1, 2], 1536))
    assert two.data[0].embedding != one.data[0].embedding
    text = client.embeddings.create(model=SMALL, input="1 2", encoding_format="float").data[0].embedding
    assert text != two.data[0].embedding  # token ids and text are hashed apart


def test_openai_body_shape(server: MockServer) -> None:
    response = post(server, input=["a", "b"], encoding_format="float", dimensions=8)
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{\n  "object": "list"')  # pretty-printed, as OpenAI sends it
    body = response.json()
    CreateEmbeddingResponse.model_validate(body)
    assert list(body) == ["object", "data", "model", "usage"]
    assert list(body["data"][0]) == ["object", "index", "embedding"]
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_vllm_dialect_body_shape(server: MockServer, client: openai.OpenAI) -> None:
    body = post(server, model="intfloat/e5-small", input="a", encoding_format="float", dimensions=8).json()
    CreateEmbeddingResponse.model_validate(body)
    assert list(body) == ["id", "object", "created", "model", "data", "usage"]
    assert body["id"].startswith("embd-")
    assert list(body["data"][0]) == ["index", "object", "embedding"]
    assert body["usage"] == {
        "prompt_tokens": 1,
        "total_tokens": 1,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
    }
    parsed = client.embeddings.create(model="intfloat/e5-small", input="a")
    assert len(parsed.data[0].embedding) == 1536


def test_a_scenario_fixes_the_vectors(server: MockServer, client: openai.OpenAI) -> None:
    response = client.embeddings.create(model=SMALL, input="fixed one", encoding_format="float")
    assert response.data[0].embedding == [0.6, 0.8, 0.0]
    decoded = client.embeddings.create(model=SMALL, input="fixed one").data[0].embedding
    assert decoded == pytest.approx([0.6, 0.8, 0.0], abs=1e-7)
    journal = httpx.get(server.url + "/_mockllm/requests", timeout=10).json()
    assert journal[-1]["scenario"] == "fixed"


def test_fixed_vectors_that_do_not_fit_the_request_are_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=SMALL, input=["fixed one", "fixed two"])
    assert "`fixed` fixes 1 vector (reply.vectors) but this request has 2 inputs" in caught.value.message
    assert caught.value.param == "input"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=SMALL, input="fixed one", dimensions=8)
    assert caught.value.param == "dimensions"
    assert "vectors of 3 dimensions" in caught.value.message


def test_a_scenario_error_applies_to_embeddings(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client.embeddings.create(model=SMALL, input="limited")
    assert caught.value.response.headers["retry-after-ms"] == "1"  # 1s at --time-scale 0: 1 ms


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ("[]", "`vectors` is empty"),
        ("[[0.1, 0.2], [0.3]]", "vectors[1] has 1 numbers but vectors[0] has 2"),
        ("[[0.1], []]", "vectors[1] is empty"),
        ("[[.nan]]", "not finite"),
        ("[0.1, 0.2]", "vectors[0]"),
    ],
)
def test_bad_vectors_fail_at_load_with_the_line(vectors: str, message: str) -> None:
    text = f"version: 1\nscenarios:\n  - id: bad\n    reply:\n      vectors: {vectors}\n"
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "emb.yaml")
    problem = caught.value.problems[0]  # a flat list is one problem per number
    assert message in str(problem)
    assert problem.line == 5
    assert "vectors" in problem.path


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": None}, "input", "missing_required_parameter"),
        ({"input": ""}, "input", "empty_string"),
        ({"input": ["ok", ""]}, "input[1]", "empty_string"),
        ({"input": []}, "input", "empty_array"),
        ({"input": [1.5]}, "input[0]", "invalid_type"),
        ({"input": [["a"]]}, "input[0]", "invalid_type"),
        ({"input": {"text": "a"}}, "input", "invalid_type"),
        ({"input": ["a"] * 2049}, "input", "array_above_max_length"),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format", "invalid_value"),
        ({"input": "a", "dimensions": 0}, "dimensions", "integer_below_min_value"),
        ({"input": "a", "dimensions": 1537}, "dimensions", "integer_above_max_value"),
        ({"input": "a", "model": "text-embedding-ada-002", "dimensions": 8}, "dimensions", None),
        ({"input": "a", "model": None}, "model", None),
        ({"input": "a", "user": 5}, "user", "invalid_type"),
    ],
)
def test_bad_requests_get_a_400_naming_the_parameter(
    server: MockServer, body: dict[str, Any], param: str, code: str | None
) -> None:
    response = post(server, **body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
