"""The official `openai` client against legacy Completions (`/v1/completions`) as OpenAI sends them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types import Completion
from pydantic import ValidationError

from mockllm import MockServer
from mockllm.loading import load_text
from mockllm.tokens import count_tokens, tokenize

SCENARIOS = """
version: 1
scenarios:
  - id: paris
    when: {api: completions, prompt: {contains: France}}
    reply: {text: " Paris. It is the largest city of the country."}
  - id: two-choices
    when: {api: completions, prompt: {glob: "Pick*"}}
    reply:
      choices:
        - text: " one"
        - text: " two"
  - id: long
    when: {api: completions, prompt: Go on}
    reply: {text: "a b c d e f g h i j k l m n o p q r s t u v w x y z"}
  - id: tools-only
    when: {api: completions, prompt: Call a tool}
    reply: {tool_calls: [{name: get_weather, arguments: {city: Oslo}}]}
  - id: broken
    when: {api: completions, prompt: Break}
    reply:
      text: " one two three four"
      fault: {kind: error_event, after: 2, message: engine died}
  - id: chat
    when: {api: chat}
    reply: {text: Hello}
  - id: tokens
    when: {api: completions, model: token-model}
    reply: {text: " ok"}
"""
MODEL = "gpt-3.5-turbo-instruct"
ANSWER = " Paris. It is the largest city of the country."


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    """One server for the module: no test here changes its state."""
    with MockServer(scenarios=load_text(SCENARIOS, "completions.yaml"), time_scale=0) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def stream_events(server: MockServer, **body: Any) -> list[dict[str, Any]]:
    """The parsed chunks of a raw streamed response, after checking the framing and the `[DONE]` at the end."""
    response = httpx.post(server.url + "/v1/completions", json={"model": MODEL, "stream": True, **body}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.content
    assert raw.endswith(b"data: [DONE]\n\n")
    events = raw[: -len(b"data: [DONE]\n\n")].split(b"\n\n")
    assert events[-1] == b""
    chunks = []
    for event in events[:-1]:
        assert event.startswith(b"data: "), event
        chunks.append(json.loads(event[len(b"data: ") :]))
    return chunks


def validate_chunk(chunk: dict[str, Any]) -> None:
    """A streamed chunk is an `openai.types.Completion`, but for the null `finish_reason` of unfinished chunks.

    The SDK types `finish_reason` without null, yet OpenAI streams null on every chunk but the last
    (wire-formats.md §3.1), and the SDK builds stream chunks without validating them; that one difference is
    allowed.
    """
    try:
        Completion.model_validate(chunk)
    except ValidationError as exc:
        others = [error for error in exc.errors() if error["loc"][-1] != "finish_reason" or error["input"] is not None]
        assert not others, others


def post(server: MockServer, **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/completions", json={"model": MODEL, **body}, timeout=10)


def test_non_streamed_completion_parses_with_the_sdk(server: MockServer, client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="The capital of France is")
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == MODEL
    [choice] = completion.choices
    assert (choice.index, choice.text, choice.finish_reason, choice.logprobs) == (0, ANSWER, "stop", None)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_tokens("The capital of France is")
    assert completion.usage.completion_tokens == len(tokenize(ANSWER))
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    raw = post(server, prompt="The capital of France is")
    assert raw.headers["content-type"] == "application/json"
    assert raw.text.startswith('{\n  "id": "cmpl-')  # pretty-printed like OpenAI's other bodies
    assert list(raw.json()) == ["id", "object", "created", "model", "choices", "usage"]
    assert list(raw.json()["choices"][0]) == ["text", "index", "logprobs", "finish_reason"]


def test_streamed_completion_parses_with_the_sdk(client: openai.OpenAI) -> None:
    with client.completions.create(model=MODEL, prompt="The capital of France is", stream=True) as stream:
        chunks = list(stream)
    assert all(isinstance(chunk, Completion) and chunk.object == "text_completion" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert "".join(chunk.choices[0].text for chunk in chunks) == ANSWER
    assert [chunk.choices[0].finish_reason for chunk in chunks][-2:] == [None, "stop"]


def test_stream_chunks_have_openais_key_order_and_a_last_empty_chunk(server: MockServer) -> None:
    chunks = stream_events(server, prompt="The capital of France is")
    for chunk in chunks:
        validate_chunk(chunk)
        # wire-formats.md §3.1: `model` after `choices`, `text_completion` on every chunk.
        assert list(chunk) == ["id", "object", "created", "choices", "model"]
        assert chunk["object"] == "text_completion"
        assert list(chunk["choices"][0]) == ["text", "index", "logprobs", "finish_reason"]
    assert [chunk["choices"][0]["text"] for chunk in chunks[:-1]] == tokenize(ANSWER)
    assert chunks[-1]["choices"] == [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]


def test_a_list_of_prompts_times_n_gives_one_choice_each_with_the_right_index(
    server: MockServer, client: openai.OpenAI
) -> None:
    prompts = ["Pick A:", "Pick B:"]
    completion = client.completions.create(model=MODEL, prompt=prompts, n=2, echo=True)
    choices = sorted(completion.choices, key=lambda choice: choice.index)
    assert [choice.index for choice in choices] == [0, 1, 2, 3]
    # Choice i answers prompt i // n; the reply's `choices` are used in turn.
    assert [choice.text for choice in choices] == ["Pick A: one", "Pick A: two", "Pick B: one", "Pick B: two"]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_tokens("Pick A:") + count_tokens("Pick B:")
    chunks = stream_events(server, prompt=prompts, n=2)
    seen: list[int] = []
    texts: dict[int, str] = {}
    for chunk in chunks:
        [choice] = chunk["choices"]
        if choice["index"] not in seen:
            assert choice["index"] == len(seen), "each index first appears in order, 0 first"
            seen.append(choice["index"])
        texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert texts == {0: " one", 1: " two", 2: " one", 3: " two"}
    finishes = [chunk["choices"][0] for chunk in chunks if chunk["choices"][0]["finish_reason"]]
    assert sorted(choice["index"] for choice in finishes) == [0, 1, 2, 3]


def test_every_prompt_must_satisfy_the_prompt_condition(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model=MODEL, prompt=["France?", "Spain?"])
    assert "paris" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_max_tokens_cuts_the_reply_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=3)
    [choice] = completion.choices
    assert choice.text == "".join(tokenize(ANSWER)[:3])
    assert choice.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


def test_max_tokens_defaults_to_16_as_on_openai_and_vllm(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="Go on")
    [choice] = completion.choices
    assert choice.finish_reason == "length"
    assert choice.text == "a b c d e f g h i j k l m n o p"
    longer = client.completions.create(model=MODEL, prompt="Go on", max_tokens=100)
    assert longer.choices[0].finish_reason == "stop"


def test_stop_cuts_before_the_stop_string(server: MockServer, client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="The capital of France is", stop=[" It", "zzz"])
    [choice] = completion.choices
    assert (choice.text, choice.finish_reason) == (" Paris.", "stop")
    body = post(server, prompt="The capital of France is", stop=" It").json()
    assert "stop_reason" not in body["choices"][0]  # vLLM's field, not OpenAI's
    chunks = stream_events(server, prompt="The capital of France is", stop="largest")
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == " Paris. It is the "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_echo_puts_the_prompt_before_the_completion(server: MockServer, client: openai.OpenAI) -> None:
    prompt = "The capital of France is"
    completion = client.completions.create(model=MODEL, prompt=prompt, echo=True)
    assert completion.choices[0].text == prompt + ANSWER
    chunks = stream_events(server, prompt=prompt, echo=True)
    # The prompt rides in the first chunk, with the first token.
    assert chunks[0]["choices"][0]["text"] == prompt + tokenize(ANSWER)[0]
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == prompt + ANSWER
    only_prompt = client.completions.create(model=MODEL, prompt=prompt, echo=True, max_tokens=0)
    assert (only_prompt.choices[0].text, only_prompt.choices[0].finish_reason) == (prompt, "length")


def check_legacy_logprobs(logprobs: dict[str, Any], text: str, top: int, start: int = 0) -> None:
    """tokens join to the text; offsets follow the tokens; every figure is a logprob; dicts hold the top ones."""
    tokens = logprobs["tokens"]
    assert "".join(tokens) == text
    assert len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == len(logprobs["text_offset"])
    assert len(tokens) == len(logprobs["text_offset"])
    offset = start
    for token, logprob, alternatives, token_offset in zip(
        tokens, logprobs["token_logprobs"], logprobs["top_logprobs"], logprobs["text_offset"], strict=True
    ):
        assert token_offset == offset
        offset += len(token)
        if logprob is None:  # the first echoed prompt token has nothing before it
            assert alternatives is None
            continue
        assert logprob <= 0
        assert len(alternatives) == max(top, 1)
        assert alternatives[token] == logprob == max(alternatives.values())
        assert sum(2.718281828459045**value for value in alternatives.values()) <= 1.0 + 1e-9


def test_legacy_logprobs_are_consistent_with_the_text(server: MockServer, client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="The capital of France is", logprobs=3)
    choice = completion.choices[0]
    assert choice.logprobs is not None
    check_legacy_logprobs(choice.logprobs.model_dump(), ANSWER, 3)
    # Deterministic: the same text gets the same figures, streamed or not.
    again = post(server, prompt="The capital of France is", logprobs=3).json()["choices"][0]["logprobs"]
    assert again == choice.logprobs.model_dump()
    chunks = stream_events(server, prompt="The capital of France is", logprobs=3)
    offset = 0
    merged: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for chunk in chunks:
        [streamed] = chunk["choices"]
        check_legacy_logprobs(streamed["logprobs"], streamed["text"], 3, offset)
        offset += len(streamed["text"])
        for key, values in merged.items():
            values.extend(streamed["logprobs"][key])
    assert merged == again


def test_legacy_logprobs_with_echo_and_zero_alternatives(server: MockServer) -> None:
    prompt = "The capital of France is"
    choice = post(server, prompt=prompt, logprobs=0, echo=True).json()["choices"][0]
    logprobs = choice["logprobs"]
    check_legacy_logprobs(logprobs, prompt + ANSWER, 0)
    assert logprobs["token_logprobs"][0] is None
    assert all(value is not None for value in logprobs["token_logprobs"][1:])
    assert all(len(top) == 1 for top in logprobs["top_logprobs"][1:])


def test_include_usage_adds_a_usage_chunk(server: MockServer, client: openai.OpenAI) -> None:
    with client.completions.create(
        model=MODEL, prompt="The capital of France is", stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == len(tokenize(ANSWER))
    raw = stream_events(server, prompt="The capital of France is", stream_options={"include_usage": True})
    assert list(raw[-1]) == ["id", "object", "created", "choices", "model", "usage"]
    assert all("usage" not in chunk for chunk in raw[:-1])


def test_prompts_given_as_token_ids(server: MockServer, client: openai.OpenAI) -> None:
    one = client.completions.create(model="token-model", prompt=[1, 2, 3])
    assert [choice.text for choice in one.choices] == [" ok"]
    assert one.usage is not None
    assert one.usage.prompt_tokens == 3
    two = client.completions.create(model="token-model", prompt=[[1, 2], [3]])
    assert [choice.index for choice in two.choices] == [0, 1]
    response = post(server, model="token-model", prompt=[1, 2], echo=True)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "echo"


def test_a_reply_with_only_tool_calls_ends_as_stop(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="Call a tool")
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == ("", "stop")


def test_faults_apply_to_completion_streams(client: openai.OpenAI) -> None:
    texts = []
    stream = client.completions.create(model=MODEL, prompt="Break", stream=True)
    with stream, pytest.raises(openai.APIError, match="engine died"):  # noqa: PT012 - the error comes mid-iteration
        for chunk in stream:
            texts.append(chunk.choices[0].text)
    assert texts == [" one", " two"]


BAD_PARAMETERS = [
    ("temperature", 2.5, "decimal_above_max_value"),
    ("temperature", -0.1, "decimal_below_min_value"),
    ("temperature", "hot", "invalid_type"),
    ("top_p", 1.5, "decimal_above_max_value"),
    ("frequency_penalty", -2.5, "decimal_below_min_value"),
    ("presence_penalty", 2.1, "decimal_above_max_value"),
    ("seed", "42", "invalid_type"),
    ("seed", 1.5, "invalid_type"),
    ("ignore_eos", "yes", "invalid_type"),
    ("top_k", -2, "integer_below_min_value"),
    ("min_p", 1.5, "decimal_above_max_value"),
    ("repetition_penalty", 0, "decimal_below_min_value"),
    ("logit_bias", {"50256": -101}, "invalid_value"),
    ("logprobs", 21, "integer_above_max_value"),
    ("logprobs", True, "invalid_type"),
    ("echo", "true", "invalid_type"),
    ("n", 0, "integer_below_min_value"),
    ("n", 129, "integer_above_max_value"),
    ("best_of", 1, "invalid_value"),  # with n=2 below
    ("max_tokens", -1, "integer_below_min_value"),
    ("stop", 5, None),
    ("stream", "yes", "invalid_type"),
    ("user", 7, "invalid_type"),
    ("suffix", 7, "invalid_type"),
]


@pytest.mark.parametrize(("param", "value", "code"), BAD_PARAMETERS, ids=[f"{p}={v!r}" for p, v, _ in BAD_PARAMETERS])
def test_bad_parameters_get_a_400_naming_them(client: openai.OpenAI, param: str, value: Any, code: str | None) -> None:
    extra = {param: value, **({"n": 2} if param == "best_of" else {})}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=MODEL, prompt="The capital of France is", extra_body=extra)
    error = caught.value
    assert error.status_code == 400
    assert error.param == param
    assert f"'{param}'" in error.message
    assert error.code == code
    assert error.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("prompt", "param", "code"),
    [
        (None, "prompt", "missing_required_parameter"),
        (5, "prompt", "invalid_type"),
        ([], "prompt", "empty_array"),
        (["ok", 5], "prompt[1]", "invalid_type"),
        (["ok", []], "prompt[1]", "empty_array"),
        ([1, -2], "prompt", "invalid_value"),
        ([[1], [True]], "prompt[1]", "invalid_type"),
    ],
)
def test_bad_prompts_get_a_400_naming_them(server: MockServer, prompt: Any, param: str, code: str) -> None:
    body = {} if prompt is None else {"prompt": prompt}
    response = post(server, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


@pytest.mark.parametrize(
    ("param", "value"),
    [("temperature", 3), ("top_p", -1), ("presence_penalty", 9), ("top_logprobs", 21), ("logprobs", "yes")],
)
def test_chat_validates_the_same_sampling_parameters(client: openai.OpenAI, param: str, value: Any) -> None:
    extra = {param: value, **({"logprobs": True} if param == "top_logprobs" else {})}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], extra_body=extra
        )
    assert caught.value.param == param


def test_chat_top_logprobs_needs_logprobs(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], top_logprobs=2
        )
    assert caught.value.param == "top_logprobs"
    assert "'logprobs' must be set to true" in caught.value.message
