"""Dialect profiles: the anatomy of each one on the wire, and the clients that read it.

`openai` is covered byte for byte by test_fidelity.py and `vllm-0.10` against the published schemas by
test_vllm_dialect.py; here: current `vllm`, `azure` (its own paths, `openai.AzureOpenAI`, LangChain's
`AzureChatOpenAI`), `gemini-openai`, and `mockllm check`'s dialect warnings.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import DATA
from jsonschema import Draft202012Validator
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from mockllm import MockServer
from mockllm.cli import main
from mockllm.loading import load_text

SCENARIOS = """
version: 1
scenarios:
  - id: think
    when: {prompt: Think}
    reply: {reasoning: Let me think about it., text: The answer is 42.}
  - id: blocked
    when: {prompt: Blocked}
    reply: {error: {status: 400, code: content_filter}}
  - id: filtered
    when: {prompt: Filtered}
    reply: {text: Some words, finish_reason: content_filter}
  - id: deployment
    when: {model: my-gpt4o, prompt: Deployment}
    reply: {text: Matched the deployment.}
  - id: weather
    when: {prompt: Weather}
    reply: {tool_calls: [{name: get_weather, arguments: {city: Oslo}}]}
  - id: hello
    reply: {text: Hello there.}
"""
SAFE = {"filtered": False, "severity": "safe"}
CATEGORIES = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
BASETEN = Draft202012Validator(
    json.loads((DATA / "schemas" / "baseten-chat-completion-stream-response.schema.json").read_text(encoding="utf-8"))
)
API_VERSION = "2024-10-21"


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    """One server in the default openai dialect: the Azure and Gemini paths force their own."""
    with MockServer(scenarios=load_text(SCENARIOS, "dialects.yaml"), time_scale=0) as server:
        yield server


@pytest.fixture(scope="module")
def vllm() -> Iterator[MockServer]:
    with MockServer(scenarios=load_text(SCENARIOS, "dialects.yaml"), dialect="vllm", time_scale=0) as server:
        yield server


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": prompt}], **extra}


def events(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON chunks of a stream; the `[DONE]` terminator is checked."""
    assert response.status_code == 200, response.text
    raw = response.content.split(b"\n\n")
    assert raw[-2:] == [b"data: [DONE]", b""]
    return [json.loads(event.removeprefix(b"data: ")) for event in raw[:-2]]


def post(server: MockServer, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=headers, timeout=10)


# -- vllm (current) ---------------------------------------------------------------------------------------------


def test_vllm_sends_reasoning_and_the_fingerprint_on_the_last_chunk_only(vllm: MockServer) -> None:
    chunks = events(post(vllm, "/v1/chat/completions", chat("Think", stream=True)))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert all("reasoning_content" not in delta for delta in deltas)  # removed from vLLM's output (§12.1)
    assert "".join(delta.get("reasoning", "") for delta in deltas) == "Let me think about it."
    assert "".join(delta.get("content", "") for delta in deltas) == "The answer is 42."
    assert [("system_fingerprint" in chunk) for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1]["system_fingerprint"].startswith("vllm-")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # With usage asked for, the usage chunk is the last one and carries it.
    usage = events(
        post(vllm, "/v1/chat/completions", chat("Think", stream=True, stream_options={"include_usage": True}))
    )
    assert usage[-1]["choices"] == []
    assert "system_fingerprint" in usage[-1]
    assert all("system_fingerprint" not in chunk for chunk in usage[:-1])
    # Baseten's strict schema documents vllm-0.10: the current profile's last chunk breaks it, the rest validate.
    assert all(BASETEN.is_valid(chunk) for chunk in chunks[:-1])
    assert not BASETEN.is_valid(chunks[-1])
    body = post(vllm, "/v1/chat/completions", chat("Think")).json()
    message = body["choices"][0]["message"]
    assert (message["reasoning"], message["content"]) == ("Let me think about it.", "The answer is 42.")
    assert "reasoning_content" not in message
    assert body["system_fingerprint"] == chunks[-1]["system_fingerprint"]


def test_vllm_token_ids_only_when_asked(vllm: MockServer) -> None:
    plain = events(post(vllm, "/v1/chat/completions", chat("Hi", stream=True)))
    assert all("token_ids" not in chunk["choices"][0] and "prompt_token_ids" not in chunk for chunk in plain)
    chunks = events(post(vllm, "/v1/chat/completions", chat("Hi", stream=True, return_token_ids=True)))
    assert [("prompt_token_ids" in chunk) for chunk in chunks] == [True] + [False] * (len(chunks) - 1)
    for chunk in chunks:
        [choice] = chunk["choices"]
        text = choice["delta"].get("content") or ""
        assert isinstance(choice["token_ids"], list)
        assert len(choice["token_ids"]) == (1 if text else 0)  # one token a content chunk
    body = post(vllm, "/v1/chat/completions", chat("Hi", return_token_ids=True)).json()
    assert len(body["choices"][0]["token_ids"]) == 3  # "Hello", " there", "."
    assert len(body["prompt_token_ids"]) == body["usage"]["prompt_tokens"]


def test_the_openai_sdk_keeps_vllms_reasoning_field(vllm: MockServer) -> None:
    with openai.OpenAI(base_url=vllm.openai_base_url, api_key="k", max_retries=0) as client:
        completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Think"}])
        stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Think"}], stream=True)
        streamed = "".join((chunk.choices[0].delta.model_extra or {}).get("reasoning") or "" for chunk in stream)
    assert (completion.choices[0].message.model_extra or {})["reasoning"] == "Let me think about it."
    assert streamed == "Let me think about it."


@pytest.mark.parametrize("dialect", ["vllm", "vllm-0.10"])
def test_litellm_reads_reasoning_in_both_vllm_dialects(
    dialect: str, start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiteLLM's hosted_vllm path maps `reasoning` (and the old `reasoning_content`) to `reasoning_content`."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: the bundled cost map
    with warnings.catch_warnings():  # LiteLLM warns about pydantic and TypedDicts it does not own
        warnings.simplefilter("ignore")
        import litellm

        server = start_server(scenarios_yaml=SCENARIOS, dialect=dialect)
        options: dict[str, Any] = {
            "model": "hosted_vllm/m",
            "api_base": server.openai_base_url,
            "api_key": "k",
            "messages": [{"role": "user", "content": "Think"}],
        }
        response = litellm.completion(**options)
        assert response.choices[0].message.reasoning_content == "Let me think about it."
        assert response.choices[0].message.content == "The answer is 42."
        pieces = [chunk.choices[0].delta for chunk in litellm.completion(stream=True, **options)]
        assert "".join(getattr(delta, "reasoning_content", None) or "" for delta in pieces) == "Let me think about it."


# -- azure --------------------------------------------------------------------------------------------------------

AZURE_CHAT = f"/openai/deployments/my-gpt4o/chat/completions?api-version={API_VERSION}"


def test_azure_stream_anatomy(server: MockServer) -> None:
    response = post(server, AZURE_CHAT, chat("Hi", stream=True), **{"api-key": "k"})
    assert response.headers["x-request-id"]
    assert response.headers["apim-request-id"]
    first, *chunks = events(response)
    # The prompt's verdict comes first, in an envelope with nothing else (wire-formats.md §12.2).
    assert first == {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [
            {
                "prompt_index": 0,
                "content_filter_results": {**CATEGORIES, "jailbreak": {"filtered": False, "detected": False}},
            }
        ],
    }
    role, *content, finish = chunks
    assert role["choices"][0]["content_filter_results"] == {}
    assert all(chunk["choices"][0]["content_filter_results"] == CATEGORIES for chunk in content)
    assert finish["choices"][0]["content_filter_results"] == {}
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in content) == "Hello there."
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["id"].startswith("chatcmpl-")
        assert chunk["system_fingerprint"]


def test_azure_matches_the_deployment_as_the_model(server: MockServer) -> None:
    body = post(server, AZURE_CHAT, {"messages": [{"role": "user", "content": "Deployment"}]}, **{"api-key": "k"})
    assert body.status_code == 200, body.text
    payload = body.json()
    ChatCompletion.model_validate(payload)
    assert payload["choices"][0]["message"]["content"] == "Matched the deployment."
    assert payload["choices"][0]["content_filter_results"] == CATEGORIES
    assert payload["prompt_filter_results"][0]["prompt_index"] == 0
    other = f"/openai/deployments/other/chat/completions?api-version={API_VERSION}"
    body = post(server, other, chat("Deployment", model="my-gpt4o"), **{"api-key": "k"})
    assert body.json()["choices"][0]["message"]["content"] == "Hello there."  # the path, not the body, names it


def test_azure_refuses_a_missing_api_version_or_key(server: MockServer) -> None:
    path = "/openai/deployments/my-gpt4o/chat/completions"
    missing = post(server, path, chat("Hi"), **{"api-key": "k"})
    assert (missing.status_code, missing.json()) == (404, {"error": {"code": "404", "message": "Resource not found"}})
    entry = httpx.get(server.url + "/_mockllm/requests", timeout=10).json()[-1]
    assert "api-version" in entry["miss"]
    assert "api_version" in entry["miss"]
    keyless = post(server, path + f"?api-version={API_VERSION}", chat("Hi"))
    assert keyless.status_code == 401
    assert keyless.json()["error"]["code"] == "401"
    bearer = post(server, path + f"?api-version={API_VERSION}", chat("Hi"), authorization="Bearer entra-token")
    assert bearer.status_code == 200  # Entra ID tokens are accepted too


def test_azure_openai_sdk(server: MockServer) -> None:
    with openai.AzureOpenAI(azure_endpoint=server.url, api_key="k", api_version=API_VERSION, max_retries=0) as client:
        completion = client.chat.completions.create(
            model="my-gpt4o", messages=[{"role": "user", "content": "Deployment"}]
        )
        assert completion.choices[0].message.content == "Matched the deployment."
        # Iterating the raw stream hands over Azure's filter chunk, whose `choices` is empty...
        raw = list(
            client.chat.completions.create(model="my-gpt4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
        )
        assert raw[0].choices == []
        assert raw[0].object == ""  # type: ignore[comparison-overlap]  # the SDK types it as a chunk; it is not
        with pytest.raises(IndexError):
            [chunk.choices[0] for chunk in raw]  # what a naive client does
        # ... while the SDK's stream helper drops it (its `object` is not a chunk's).
        with client.chat.completions.stream(model="my-gpt4o", messages=[{"role": "user", "content": "Hi"}]) as stream:
            final = stream.get_final_completion()
        assert final.choices[0].message.content == "Hello there."
        with pytest.raises(openai.BadRequestError) as blocked:
            client.chat.completions.create(model="my-gpt4o", messages=[{"role": "user", "content": "Blocked"}])
        filtered = client.chat.completions.create(model="my-gpt4o", messages=[{"role": "user", "content": "Filtered"}])
        embedding = client.embeddings.create(model="my-embedder", input="hello")
        text = client.completions.create(model="my-gpt4o", prompt="Deployment")
    assert blocked.value.code == "content_filter"
    body = blocked.value.body
    assert isinstance(body, dict)
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert body["innererror"]["content_filter_result"]["violence"] == {"filtered": True, "severity": "medium"}
    choice = filtered.choices[0]
    assert choice.finish_reason == "content_filter"
    assert (choice.model_extra or {})["content_filter_results"]["violence"]["filtered"] is True
    assert len(embedding.data[0].embedding) > 0
    assert text.choices[0].text == "Matched the deployment."


def test_langchain_azure_chat_openai(server: MockServer) -> None:
    from langchain_openai import AzureChatOpenAI

    model = AzureChatOpenAI(
        azure_endpoint=server.url,
        azure_deployment="my-gpt4o",
        api_version=API_VERSION,
        api_key="k",
        max_retries=0,
    )
    assert model.invoke("Deployment").content == "Matched the deployment."
    # LangChain skips the empty-choices filter chunk when it streams.
    assert "".join(str(chunk.content) for chunk in model.stream("Deployment")) == "Matched the deployment."
    with pytest.raises(openai.BadRequestError):
        model.invoke("Blocked")


# -- gemini-openai ------------------------------------------------------------------------------------------------


def test_gemini_anatomy_and_errors(server: MockServer) -> None:
    base = server.url + "/v1beta/openai/"
    chunks = events(post(server, "/v1beta/openai/chat/completions", chat("Hi", stream=True)))
    for chunk in chunks:
        assert not chunk["id"].startswith("chatcmpl-")  # Google's ids (§12.3)
        assert "system_fingerprint" not in chunk
        ChatCompletionChunk.model_validate(chunk)
    assert "x-ratelimit-limit-requests" not in post(server, "/v1beta/openai/chat/completions", chat("Hi")).headers
    with openai.OpenAI(base_url=base, api_key="k", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}]
        )
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="gemini-2.5-flash", messages=[])
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve("gemini-nope")
        vectors = client.embeddings.create(model="text-embedding-004", input=["a", "b"])
    assert completion.choices[0].message.content == "Hello there."
    assert completion.system_fingerprint is None
    assert not completion.id.startswith("chatcmpl-")
    assert bad.value.body == {
        "code": 400,
        "message": "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
        "array instead.",
        "status": "INVALID_ARGUMENT",
    }
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["status"] == "NOT_FOUND"
    assert len(vectors.data) == 2


def test_gemini_models(start_server: Any) -> None:
    server = start_server(scenarios_yaml=SCENARIOS, models=["gemini-2.5-flash"])
    listing = httpx.get(server.url + "/v1beta/openai/models", timeout=10).json()
    card = {"object": "model", "created": 1700000000, "owned_by": "google"}
    assert listing["data"] == [{"id": "my-gpt4o", **card}, {"id": "gemini-2.5-flash", **card}]
    card = httpx.get(server.url + "/v1beta/openai/models/gemini-2.5-flash", timeout=10).json()
    assert card["owned_by"] == "google"


def test_a_scenario_dialect_applies_on_v1_but_not_on_a_dialects_own_path(start_server: Any) -> None:
    yaml = "version: 1\nscenarios:\n  - dialect: vllm\n    reply: {reasoning: Hmm., text: Hi.}\n"
    server = start_server(scenarios_yaml=yaml)
    on_v1 = post(server, "/v1/chat/completions", chat("x")).json()
    assert on_v1["choices"][0]["message"]["reasoning"] == "Hmm."
    on_azure = post(server, AZURE_CHAT, chat("x"), **{"api-key": "k"}).json()
    assert "reasoning" not in on_azure["choices"][0]["message"]
    assert "content_filter_results" in on_azure["choices"][0]


# -- mockllm check ------------------------------------------------------------------------------------------------

CHECKED = """version: 1
scenarios:
  - id: thinker
    when: {prompt: a}
    reply: {reasoning: Hmm., text: Hi.}
  - id: refuser
    when: {prompt: b}
    reply: {refusal: No.}
  - id: legacy-tools
    when: {api: completions}
    reply: {tool_calls: [{name: f, arguments: {}}]}
  - id: blocked
    when: {prompt: c}
    reply: {error: {status: 400, code: content_filter}}
  - id: vllm-thinker
    dialect: vllm
    when: {prompt: d}
    reply: {reasoning: Hmm., text: Hi.}
"""


@pytest.mark.parametrize(
    ("dialect", "flagged"),
    [
        ("openai", ["thinker", "legacy-tools", "blocked"]),
        ("vllm", ["refuser", "legacy-tools", "blocked"]),
        ("azure", ["thinker", "legacy-tools"]),
        ("gemini-openai", ["thinker", "legacy-tools", "blocked"]),
    ],
)
def test_check_warns_what_the_client_will_see(
    dialect: str, flagged: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(CHECKED, encoding="utf-8")
    assert main(["check", "--dialect", dialect, str(path)]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert [line.split("`")[1] for line in lines] == flagged
    assert all(line.startswith(f"warning: {path}:") for line in lines)
    assert out == f"ok: 5 scenarios in 1 file, {len(flagged)} warnings\n"
    if "thinker" in flagged:
        assert f"the {dialect} dialect has no reasoning field: the client sees only the text" in err
    if "refuser" in flagged:
        assert "the client sees the refusal as ordinary `content`" in err
