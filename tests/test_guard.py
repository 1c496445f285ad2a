"""The guard (mockllm/guard.py): --api-key and --admin-token 401s through the real SDKs, --max-body 413s, the bind
warning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import EXAMPLES, StartServer

from mockllm import MockServer
from mockllm.guard import exposure_warning, in_container, mask

KEY = "mock-key-Zq81xv"  # not an `sk-` shape: the guard must not rely on the built-in secret patterns
TOKEN = "admin-token-Pw44"
HELLO: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def keyed(start_server: StartServer) -> MockServer:
    return start_server(EXAMPLES, api_key=KEY, admin_token=TOKEN)


def oai(server: MockServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=key, max_retries=0)


def ant(server: MockServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=key, max_retries=0)


def test_openai_sdk_gets_authentication_error_for_a_wrong_key(keyed: MockServer) -> None:
    with oai(keyed, "sk-wrong-key-000000abcd") as client, pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
    assert "Incorrect API key provided: sk-…abcd." in caught.value.message
    assert "sk-wrong-key-000000abcd" not in caught.value.message  # the key the client sent is masked
    assert "--api-key" in caught.value.message  # and the message names the fix


def test_openai_sdk_with_the_key_is_answered(keyed: MockServer) -> None:
    with oai(keyed, KEY) as client:
        assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content
        assert [m.id for m in client.models.list()]


def test_anthropic_sdk_gets_authentication_error(keyed: MockServer) -> None:
    with ant(keyed, "wrong") as client, pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=HELLO)
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"].startswith("invalid x-api-key")
    assert caught.value.response.headers["request-id"] == body["request_id"]


def test_anthropic_sdk_with_the_key_is_answered(keyed: MockServer) -> None:
    with ant(keyed, KEY) as client:
        reply = client.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=HELLO)
    assert reply.content


@pytest.mark.parametrize(
    "headers", [{"authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}, {"api-key": KEY}], ids=["bearer", "x", "azure"]
)
def test_every_key_header_is_accepted(keyed: MockServer, headers: dict[str, str]) -> None:
    response = httpx.post(keyed.openai_base_url + "/chat/completions", json={"model": "m", "messages": HELLO},
                          headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text


def test_a_missing_key_names_the_header(keyed: MockServer) -> None:
    response = httpx.post(keyed.openai_base_url + "/chat/completions", json={"model": "m", "messages": HELLO})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("You didn't provide an API key.")
    assert error["code"] is None
    response = httpx.post(keyed.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": HELLO})
    assert response.json()["error"] == {
        "type": "authentication_error",
        "message": response.json()["error"]["message"],
    }
    assert response.json()["error"]["message"].startswith("x-api-key header is required")


def test_unknown_paths_and_model_routes_need_the_key_too(keyed: MockServer) -> None:
    assert httpx.get(keyed.openai_base_url + "/models").status_code == 401
    assert httpx.post(keyed.openai_base_url + "/nowhere", json={}).status_code == 401


def test_a_refused_request_is_journaled_without_the_key(keyed: MockServer) -> None:
    httpx.post(keyed.openai_base_url + "/chat/completions", json={"model": "m", "messages": HELLO},
               headers={"authorization": "Bearer sk-not-it-1234567890"})  # fmt: skip
    [entry] = keyed.state.journal.entries()
    assert entry.status == 401
    assert entry.error is not None
    assert entry.error["type"] == "invalid_request_error"
    text = json.dumps(entry.to_json())
    assert KEY not in text
    assert "sk-not-it-1234567890" not in text


def test_admin_token(keyed: MockServer) -> None:
    base = keyed.url + "/_mockllm"
    refused = httpx.get(base + "/requests")
    assert refused.status_code == 401
    assert "--admin-token" in refused.json()["error"]["message"]
    assert httpx.get(base + "/requests", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(base + "/requests", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.post(base + "/reset", headers={"x-mockllm-admin-token": TOKEN}).status_code == 200
    # The API key is not the admin token.
    assert httpx.delete(base + "/scenarios", headers={"authorization": f"Bearer {KEY}"}).status_code == 401
    # A liveness probe needs no secret (the Dockerfile's HEALTHCHECK).
    assert httpx.get(base + "/health").status_code == 200


def test_without_a_key_the_server_is_open(examples: MockServer) -> None:
    with oai(examples, "anything") as client:
        assert client.chat.completions.create(model="m", messages=HELLO).choices[0].message.content
    assert httpx.get(examples.url + "/_mockllm/requests").status_code == 200


# -- --max-body --------------------------------------------------------------------------------------------------


@pytest.fixture
def small(start_server: StartServer) -> MockServer:
    return start_server(EXAMPLES, max_body=2000)


def test_openai_sdk_gets_413_over_max_body(small: MockServer) -> None:
    with oai(small, "k") as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 5000}])
        assert caught.value.status_code == 413
        assert caught.value.code == "request_too_large"
        assert "limit of 2000 bytes" in caught.value.message
        assert "--max-body" in caught.value.message
        # The connection that carried the refused body still answers.
        assert client.chat.completions.create(model="m", messages=HELLO).choices[0].message.content


def test_anthropic_sdk_gets_request_too_large(small: MockServer) -> None:
    with ant(small, "k") as client, pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x" * 5000}])
    assert caught.value.status_code == 413
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "request_too_large"


def _chunks(total: int, size: int = 500) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


def test_a_chunked_body_is_refused_at_the_chunk_that_passes_the_limit(small: MockServer) -> None:
    with httpx.Client() as client:
        response = client.post(small.openai_base_url + "/chat/completions", content=_chunks(100_000))
        assert response.status_code == 413
        assert "limit of 2000 bytes" in response.json()["error"]["message"]
        again = client.post(small.openai_base_url + "/chat/completions", json={"model": "m", "messages": HELLO})
        assert again.status_code == 200
    [entry, _] = small.state.journal.entries()
    assert entry.status == 413
    assert entry.body is None  # not read, not kept


def test_a_body_at_the_limit_is_read(start_server: StartServer) -> None:
    body = json.dumps({"model": "m", "messages": HELLO}).encode()
    server = start_server(EXAMPLES, max_body=len(body))
    response = httpx.post(server.openai_base_url + "/chat/completions", content=body)
    assert response.status_code == 200
    too_big = httpx.post(server.openai_base_url + "/chat/completions", content=body + b" ")
    assert too_big.status_code == 413


def test_the_default_limit_is_ten_megabytes(examples: MockServer) -> None:
    assert examples.settings.max_body == 10 * 1024 * 1024
    big = httpx.post(examples.openai_base_url + "/chat/completions", content=b" " * (10 * 1024 * 1024 + 1))
    assert big.status_code == 413


def test_the_admin_api_has_the_limit_too(small: MockServer) -> None:
    response = httpx.post(small.url + "/_mockllm/scenarios", content="#" * 5000)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"max_body": 0}, "max_body=0 is too small"),
        ({"request_timeout": 0}, "request_timeout=0 must be more than 0"),
        ({"api_key": " "}, "api_key is empty"),
        ({"admin_token": "a\nb"}, "admin_token is empty or holds a line break"),
    ],
)
def test_bad_guard_settings(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MockServer(**options)


# -- binding every interface ---------------------------------------------------------------------------------------


def test_binding_every_interface_outside_a_container_warns() -> None:
    warning = exposure_warning("0.0.0.0", None, container=False)
    assert warning is not None
    assert "--api-key" in warning
    assert "127.0.0.1" in warning
    assert exposure_warning("::", None, container=False) is not None
    assert exposure_warning("0.0.0.0", KEY, container=False) is not None  # still exposed, but guarded
    assert KEY not in (exposure_warning("0.0.0.0", KEY, container=False) or "")


def test_no_warning_on_loopback_or_in_a_container() -> None:
    assert exposure_warning("127.0.0.1", None, container=False) is None
    assert exposure_warning("::1", None, container=False) is None
    assert exposure_warning("0.0.0.0", None, container=True) is None


def test_container_detection(tmp_path: Any) -> None:
    assert in_container({"MOCKLLM_IN_CONTAINER": "1"}, markers=())
    assert not in_container({}, markers=(str(tmp_path / "absent"),))
    marker = tmp_path / ".dockerenv"
    marker.touch()
    assert in_container({}, markers=(str(marker),))


def test_the_dockerfile_says_it_runs_in_a_container() -> None:
    from conftest import ROOT

    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "MOCKLLM_IN_CONTAINER=1" in text
    assert "MOCKLLM_HOST=0.0.0.0" in text


def test_mask() -> None:
    assert mask("-".join(("sk", "proj", "abcdefghijklmnopabcd"))) == "sk-…abcd"
    assert mask("short") == "…"
