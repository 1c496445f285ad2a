"""Property-based: whatever a client sends to any route (the admin API included), the server answers with a
well-formed error in that route's protocol shape, never a 500, a traceback or a hang, and keeps answering.

One server per module, keep-alive connections, small bodies; every test is seeded (`derandomize=True`), bounded by
`max_examples` (10,500 cases across the file) and by each request's timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import given as given_
from hypothesis import strategies as st
from mutation import key_paths

from mockllm import MockServer
from mockllm.loading import load_text

# The scenarios the fuzzed requests meet: a plain answer, an error, a fault, so that rendering runs as well.
SCENARIOS = """
version: 1
scenarios:
  - id: hello
    when: {prompt: {contains: hello}}
    reply: {text: "Hello there"}
  - id: limited
    when: {prompt: {contains: limit}}
    reply: {error: {status: 429}}
  - id: broken
    when: {prompt: {contains: break}}
    reply: {text: "half an answer", fault: {kind: error_event}}
"""

API_ROUTES = {
    "/v1/chat/completions": "openai",
    "/v1/completions": "openai",
    "/v1/embeddings": "openai",
    "/v1/responses": "openai",
    "/v1/messages": "anthropic",
    "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21": "azure",
    "/openai/deployments/gpt-4o/completions?api-version=2024-10-21": "azure",
    "/openai/deployments/gpt-4o/embeddings": "azure",  # no api-version: Azure's own 404
    "/v1beta/openai/chat/completions": "google",
    "/v1beta/openai/embeddings": "google",
}
GET_ROUTES = {
    "/v1/models": "openai",
    "/v1/models/gpt-4o": "openai",
    "/v1/models/nope": "openai",
    "/v1beta/openai/models": "google",
    "/v1beta/openai/models/nope": "google",
    "/_mockllm/health": "admin",
    "/_mockllm/scenarios": "admin",
    "/_mockllm/requests": "admin",
}
OTHER_PATHS = ["/", "/v1", "/v2/chat/completions", "/v1/messages/batches", "/_mockllm/nope", "/v1/chat/completions/x"]
ALL_PATHS = [*API_ROUTES, *GET_ROUTES, *OTHER_PATHS]

# Real requests of every API, which the mutations start from.
VALID_BODIES: list[dict[str, Any]] = [
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], "stream": True},
    {"model": "gpt-4o", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "limit"}]},
    {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "break"}]}],
     "stream": True, "stream_options": {"include_usage": True}},
    {"model": "gpt-4o", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
     "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c", "content": "1"}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
    {"model": "gpt-3.5-turbo-instruct", "prompt": "hello", "max_tokens": 5, "logprobs": 2, "echo": True},
    {"model": "text-embedding-3-small", "input": ["hello", "world"], "dimensions": 8, "encoding_format": "base64"},
    {"model": "gpt-4o", "input": "hello", "stream": True, "instructions": "be brief"},
    {"model": "gpt-4o", "input": [{"role": "user", "content": [{"type": "input_text", "text": "break"}]}],
     "previous_response_id": "resp_x"},
    {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}],
     "stream": True, "system": [{"type": "text", "text": "s"}]},
    {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": [{"type": "text",
     "text": "limit"}]}], "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}},
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["", "\u0000", "\U0001f600", "user", "assistant", "tool", "text", "function", "hello", "limit"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
KEYS = sorted({key for body in VALID_BODIES for key in body} | {"n", "stop", "tool_choice", "response_format"})


@st.composite
def mutated_bodies(draw: st.DrawFn) -> Any:
    """A real request with one to three of its values replaced, removed or added."""
    body: Any = json.loads(json.dumps(draw(st.sampled_from(VALID_BODIES))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(key_paths(body)))
        if not path:
            if draw(st.booleans()):
                body[draw(st.sampled_from(KEYS))] = draw(json_values)
            continue
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
        if not isinstance(body, dict):
            break
    return body


raw_bodies = st.one_of(
    mutated_bodies().map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"{", b"\xff\xfe{}", b'{"model": "\xc3\x28"}', b'{"model": "\\ud83d"}', b"[]" * 3, b"null"]),
)
content_types = st.sampled_from(
    [None, "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json; charset=latin-1", "application/yaml", "\u00e9/\u00e9"]
)  # fmt: skip
header_names = st.sampled_from(
    ["anthropic-version", "x-mockllm-scenario", "authorization", "api-key", "x-stainless-lang", "openai-beta",
     "accept", "x-api-key", "anthropic-beta"]
)  # fmt: skip
# h11 sends no header value with whitespace at either end; the rest of printable ASCII and Latin-1 goes, but DEL,
# which is no field character (RFC 9110 §5.5): the server's HTTP parser refuses it with a 400 before any route.
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20
).map(str.strip)
headers = st.dictionaries(header_names, header_values, max_size=3)
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(scenarios=load_text(SCENARIOS, "<test>"), time_scale=0, journal_size=50) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
        still_answers(http)  # after all the fuzzing of this worker, the server answers a normal request


def shape_of(path: str) -> str:
    for known in (API_ROUTES, GET_ROUTES):
        if path in known:
            return known[path]
    return "anthropic" if path.rstrip("/").endswith("/messages") else "openai"


def check_answer(response: httpx.Response, path: str) -> None:
    """Below 500; a 4xx is a JSON error in the route's shape; nothing leaks a traceback."""
    assert response.status_code < 500, (path, response.status_code, response.text)
    assert "Traceback" not in response.text
    if response.status_code < 400 or response.request.method == "HEAD":
        return
    body = response.json()
    assert isinstance(body, dict), response.text
    error = body["error"]
    assert isinstance(error["message"], str), response.text
    assert error["message"], response.text
    shape = shape_of(path)
    if shape == "anthropic":
        assert body["type"] == "error", response.text
        assert isinstance(error["type"], str), response.text
    elif shape == "google" and response.status_code != 404:
        assert isinstance(error["code"], int), response.text
        assert isinstance(error["status"], str), response.text
    elif shape == "azure":
        assert "code" in error, response.text
    elif shape == "openai":
        assert "type" in error, response.text


def still_answers(client: httpx.Client) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello there"


def send(client: httpx.Client, method: str, path: str, body: bytes, content_type: str | None, extra: Any) -> None:
    sent = dict(extra)
    if content_type is not None:
        sent["content-type"] = content_type
    if path.startswith("/openai/") and "authorization" not in sent and "api-key" not in sent and body[:1] == b"{":
        sent["api-key"] = "k"  # past Azure's key check to the body (most of the time)
    raw_headers = {name.encode(): value.encode("latin-1") for name, value in sent.items()}  # bytes: non-ASCII goes too
    response = client.request(method, path, content=body, headers=raw_headers)
    check_answer(response, path)


SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@settings(SETTINGS, max_examples=4000)
@given_(path=st.sampled_from(list(API_ROUTES)), body=raw_bodies, content_type=content_types, extra=headers)
def test_api_routes_answer_any_body_with_their_error_shape(
    client: httpx.Client, path: str, body: bytes, content_type: str | None, extra: dict[str, str]
) -> None:
    send(client, "POST", path, body, content_type, extra)


@settings(SETTINGS, max_examples=3000)
@given_(path=st.sampled_from(list(API_ROUTES)), body=mutated_bodies(), extra=headers)
def test_mutated_real_requests_are_answered_or_refused_clearly(
    client: httpx.Client, path: str, body: Any, extra: dict[str, str]
) -> None:
    send(client, "POST", path, json.dumps(body).encode(), "application/json", extra)


@settings(SETTINGS, max_examples=3000)
@given_(method=methods, path=st.sampled_from(ALL_PATHS), body=raw_bodies, content_type=content_types, extra=headers)
def test_every_route_and_method_answers_without_a_500(
    client: httpx.Client, method: str, path: str, body: bytes, content_type: str | None, extra: dict[str, str]
) -> None:
    send(client, method, path, body, content_type, extra)


@settings(SETTINGS, max_examples=500)
@given_(body=raw_bodies, content_type=content_types)
def test_admin_scenarios_refuse_any_body_clearly(client: httpx.Client, body: bytes, content_type: str | None) -> None:
    sent = {b"content-type": content_type.encode("latin-1")} if content_type else {}
    response = client.post("/_mockllm/scenarios", content=body, headers=sent)
    check_answer(response, "/_mockllm/scenarios")
    if response.status_code == 201:
        client.delete("/_mockllm/scenarios")  # a valid document: back to the module's scenarios


def test_a_normal_request_is_answered(client: httpx.Client) -> None:
    still_answers(client)
    assert client.get("/_mockllm/health").json()["status"] == "ok"
