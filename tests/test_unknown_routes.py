"""Requests to paths the server does not serve are journaled, logged and explained with the likely fix."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from mockllm import MockServer
from mockllm.logs import log_request


def _last(server: MockServer) -> dict[str, object]:
    entries = httpx.get(server.url + "/_mockllm/requests").json()
    assert entries, "the request was not journaled"
    last: dict[str, object] = entries[-1]
    return last


def test_base_url_without_v1_names_the_fix(examples: MockServer) -> None:
    client = openai.OpenAI(base_url=examples.url, api_key="sk-test", max_retries=0)
    with client, pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}])
    message = info.value.message
    assert "mockllm does not serve POST /chat/completions" in message
    assert "missing /v1" in message
    assert "/v1/chat/completions" in message
    assert "POST /v1/chat/completions" in message  # the served routes are listed
    entry = _last(examples)
    assert entry["path"] == "/chat/completions"
    assert entry["status"] == 404
    assert entry["body"] == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
    assert isinstance(entry["miss"], str)
    assert "missing /v1" in entry["miss"]


def test_doubled_v1_from_an_anthropic_client(examples: MockServer) -> None:
    # The Anthropic SDK appends /v1/messages itself: a base URL ending in /v1 doubles it.
    client = anthropic.Anthropic(base_url=examples.url + "/v1", api_key="sk-ant-test", max_retries=0)
    with client, pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "/v1 twice" in info.value.message
    assert info.value.response.headers["x-should-retry"] == "false"
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert _last(examples)["path"] == "/v1/v1/messages"


def test_an_unserved_azure_path_says_what_is_served(examples: MockServer) -> None:
    client = openai.AzureOpenAI(azure_endpoint=examples.url, api_key="k", api_version="2024-10-21", max_retries=0)
    with client, pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="gpt-4o", input="hi")  # Azure: /openai/responses, not served
    assert "Azure OpenAI path" in info.value.message
    assert "/openai/deployments/{deployment}/" in info.value.message
    assert _last(examples)["path"] == "/openai/responses"


def test_wrong_method_on_a_served_path(examples: MockServer) -> None:
    response = httpx.get(examples.url + "/v1/chat/completions")
    assert response.status_code == 404
    assert "takes POST, not GET" in response.json()["error"]["message"]
    assert _last(examples)["method"] == "GET"


def test_unknown_path_is_logged(examples: MockServer, caplog: pytest.LogCaptureFixture) -> None:
    examples.state.listeners.append(log_request)  # as `mockllm serve` registers it
    with caplog.at_level("INFO", logger="mockllm"):
        httpx.post(examples.url + "/v2/chat/completions", json={})
    lines = [record.getMessage() for record in caplog.records]
    assert any("POST /v2/chat/completions miss 404" in line for line in lines), lines
    with caplog.at_level("DEBUG", logger="mockllm"):
        httpx.post(examples.url + "/v2/chat/completions", json={})
    assert any("mockllm does not serve POST /v2/chat/completions" in r.getMessage() for r in caplog.records)
