"""`FakeUpstream` behaves like the real APIs: the real `openai` and `anthropic` SDKs pointed straight at it."""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from fake_upstream import FakeUpstream, _accepts_gzip, _split_events
from sse_utils import split_events

CAPTURES = Path(__file__).resolve().parent / "data" / "captures"
CHAT = "/v1/chat/completions"


def hello(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(gap=0.001) as server:
        yield server


@pytest.fixture
def oai(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test-123", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(upstream: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.url, api_key="sk-ant-test-456", max_retries=0) as client:
        yield client


def wire_bytes(upstream: FakeUpstream, path: str, body: dict[str, Any], **headers: str) -> tuple[httpx.Response, bytes]:
    """POST and keep the body exactly as it came off the wire (not decompressed)."""
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", upstream.url + path, json=body, headers=headers) as response,
    ):
        return response, b"".join(response.iter_raw())


# --- OpenAI Chat Completions --------------------------------------------------------------------------------


def test_chat_answer_echoes_the_prompt_with_the_real_headers(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(**hello("what is up"))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: what is up"
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.service_tier == "default"
    assert re.fullmatch(r"req_[0-9a-f]{32}", raw.headers["x-request-id"])
    assert completion._request_id == raw.headers["x-request-id"]
    assert raw.headers["openai-processing-ms"].isdigit()
    assert raw.headers["set-cookie"].startswith("__cf_bm=")
    for name in ("limit", "remaining", "reset"):
        assert raw.headers[f"x-ratelimit-{name}-requests"]
        assert raw.headers[f"x-ratelimit-{name}-tokens"]
    assert raw.headers["content-encoding"] == "gzip"  # httpx asks for gzip, so the body came compressed


def test_chat_body_is_gzipped_only_when_allowed_and_pretty_printed(upstream: FakeUpstream) -> None:
    zipped, wire = wire_bytes(upstream, CHAT, hello(), **{"accept-encoding": "gzip, deflate"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) == len(wire)
    text = gzip.decompress(wire).decode()
    assert text.startswith('{\n  "id": "chatcmpl-')  # 2-space indent, no trailing newline (§2.1)
    assert not text.endswith("\n")
    assert list(json.loads(text))[:5] == ["id", "object", "created", "model", "choices"]
    plain, wire = wire_bytes(upstream, CHAT, hello(), **{"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert json.loads(wire)["object"] == "chat.completion"
    _, wire = wire_bytes(upstream, CHAT, hello(), **{"accept-encoding": "br, gzip;q=0"})
    assert wire.startswith(b"{\n")


def test_chat_stream_through_the_sdk(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(**hello("one two three"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: one two three"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    with oai.chat.completions.stream(**hello("via the helper")) as stream:
        assert stream.get_final_completion().choices[0].message.content == "Echo: via the helper"


def test_chat_stream_bytes_carry_obfuscation_service_tier_and_done(upstream: FakeUpstream) -> None:
    response, wire = wire_bytes(upstream, CHAT, hello(stream=True))
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "content-encoding" not in response.headers  # streams are never compressed
    events = split_events(wire)
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert all(e.startswith(b"data: {") for e in events[:-1])
    assert all(list(c)[-1] == "obfuscation" and c["service_tier"] == "default" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert len({c["obfuscation"] for c in chunks}) > 1  # random, not a constant
    assert len({c["id"] for c in chunks}) == 1


def test_chat_stream_options_usage_and_no_obfuscation(upstream: FakeUpstream) -> None:
    options = {"include_usage": True, "include_obfuscation": False}
    _, wire = wire_bytes(upstream, CHAT, hello(stream=True, stream_options=options))
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in split_events(wire)[:-1]]
    assert all("obfuscation" not in c for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] > 0


# --- Anthropic Messages -------------------------------------------------------------------------------------


def test_messages_stream_through_the_sdk(upstream: FakeUpstream, claude: anthropic.Anthropic) -> None:
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with claude.messages.stream(**request) as stream:
        assert "".join(stream.text_stream) == "Echo: hi"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 2
    message = claude.messages.with_raw_response.create(**request)
    assert message.parse().content[0].text == "Echo: hi"
    assert message.headers["request-id"].startswith("req_")
    assert "x-request-id" not in message.headers
    assert message.headers["anthropic-ratelimit-requests-remaining"].isdigit()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", message.headers["anthropic-ratelimit-tokens-reset"])
    # anthropic 2.x sends the key as a bearer token (older SDKs and curl use x-api-key; both are echoed).
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-ant-test-456"
    assert upstream.requests[0].headers["anthropic-version"]


def test_messages_bytes_named_events_padding_and_compact_body(upstream: FakeUpstream) -> None:
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    _, wire = wire_bytes(upstream, "/v1/messages", {**request, "stream": True})
    events = split_events(wire)
    names = [e.split(b"\n")[0].removeprefix(b"event: ").decode() for e in events]
    assert names[0] == "message_start"
    assert names[-1] == "message_stop"
    assert "ping" in names
    assert b'data: {"type": "ping"}' in events[names.index("ping")]
    padded = [e for e in events if re.search(rb"\} +\}$", e) or re.search(rb'" +\}$', e)]
    assert padded, "no data JSON is padded with spaces before its last brace (§7.2)"
    for event in events:
        name, data = event.split(b"\n")
        assert json.loads(data.removeprefix(b"data: "))["type"] == name.removeprefix(b"event: ").decode()
    _, wire = wire_bytes(upstream, "/v1/messages", request, **{"accept-encoding": "identity"})
    assert b"\n" not in wire
    assert b'": ' not in wire
    assert json.loads(wire)["content"] == [{"type": "text", "text": "Echo: hi"}]


# --- the other OpenAI routes --------------------------------------------------------------------------------


def test_responses_completions_embeddings_and_models(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    assert oai.responses.create(model="gpt-4.1-mini", input="ping").output_text == "Echo: ping"
    with oai.responses.stream(model="gpt-4.1-mini", input=[{"role": "user", "content": "pong"}]) as stream:
        assert stream.get_final_response().output_text == "Echo: pong"
    _, wire = wire_bytes(upstream, "/v1/responses", {"model": "gpt-4.1-mini", "input": "x", "stream": True})
    events = split_events(wire)
    assert b"[DONE]" not in wire
    assert [json.loads(e.split(b"\n")[1][6:])["sequence_number"] for e in events] == list(range(len(events)))

    legacy = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this")
    assert legacy.choices[0].text == "Echo: Say this"
    pieces = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say that", stream=True)
    assert "".join(p.choices[0].text for p in pieces) == "Echo: Say that"

    vectors = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b", "a"])  # base64 on the wire
    assert [len(v.embedding) for v in vectors.data] == [8, 8, 8]
    assert vectors.data[0].embedding == vectors.data[2].embedding != vectors.data[1].embedding
    assert upstream.requests[-1].body["encoding_format"] == "base64"

    assert "gpt-4o-mini" in [m.id for m in oai.models.list()]
    with anthropic.Anthropic(base_url=upstream.url, api_key="k", max_retries=0) as claude:
        assert claude.models.list().data[0].id.startswith("claude-")


def test_unknown_route_and_bad_json(upstream: FakeUpstream) -> None:
    with httpx.Client() as client:
        missing = client.post(upstream.url + "/v1/nothing", json={})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/nothing)"
        broken = client.post(upstream.url + CHAT, content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 400
    assert upstream.requests[-1].raw == b"{not json"
    assert upstream.requests[-1].body is None


# --- scripted errors ----------------------------------------------------------------------------------------


def test_fail_next_429_then_the_sdk_retry_succeeds(upstream: FakeUpstream) -> None:
    upstream.fail_next(429, {"retry-after": "0.01"})
    with openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=1) as client:
        answer = client.chat.completions.create(**hello("again"))
    assert answer.choices[0].message.content == "Echo: again"
    retry_counts = [r.headers["x-stainless-retry-count"] for r in upstream.requests]
    assert retry_counts == ["0", "1"]


def test_fail_next_statuses_raise_the_sdk_errors(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    upstream.fail_next(429, {"retry-after": "7"})
    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(**hello())
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"] == "7"
    assert re.fullmatch(r"req_[0-9a-f]{32}", limited.value.request_id or "")
    upstream.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(**hello(), stream=True)  # an error before any bytes is JSON, not SSE (§5.3)
    upstream.fail_next(503, body="<html>upstream connect error</html>")
    with pytest.raises(openai.InternalServerError) as html:
        oai.chat.completions.create(**hello())
    assert html.value.response.text == "<html>upstream connect error</html>"
    assert oai.chat.completions.create(**hello()).choices[0].message.content == "Echo: hello there"


def test_401_body_is_four_space_indented_with_a_newline(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    upstream.fail_next(401)
    _, wire = wire_bytes(upstream, CHAT, hello(), **{"accept-encoding": "identity"})
    assert wire.startswith(b'{\n    "error": {\n        "message": "Incorrect API key provided')
    assert wire.endswith(b"}\n")
    upstream.fail_next(401)
    with pytest.raises(openai.AuthenticationError) as denied:
        oai.models.list()
    assert denied.value.code == "invalid_api_key"


def test_anthropic_errors(upstream: FakeUpstream, claude: anthropic.Anthropic) -> None:
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "x"}],
    }
    upstream.fail_next(529)
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(**request)
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert overloaded.value.request_id
    assert overloaded.value.request_id.startswith("req_")
    upstream.fail_next(
        429, {"retry-after": "3"}, {"type": "error", "error": {"type": "rate_limit_error", "message": "m"}}
    )
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(**request)
    assert limited.value.response.text == '{"type":"error","error":{"type":"rate_limit_error","message":"m"}}'


def test_require_key_refuses_other_keys(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    upstream.require_key = "sk-right"
    with pytest.raises(openai.AuthenticationError):
        oai.chat.completions.create(**hello())
    with openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-right", max_retries=0) as good:
        assert good.chat.completions.create(**hello()).choices[0].message.content == "Echo: hello there"


# --- streaming control --------------------------------------------------------------------------------------


def test_hold_sends_the_first_chunk_then_waits_for_release(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    release = upstream.hold()
    stream = oai.chat.completions.create(**hello("held"), stream=True)
    chunks = iter(stream)
    first = next(chunks)
    assert first.choices[0].delta.role == "assistant"
    assert upstream.holding.wait(5)  # the first chunk arrived while the rest did not exist yet
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.extend(chunks))
    reader.start()
    reader.join(0.1)
    assert reader.is_alive()
    assert got == []
    release.set()
    reader.join(5)
    assert "".join(c.choices[0].delta.content or "" for c in got) == "Echo: held"
    assert not upstream.holding.is_set()
    # One-shot: the next stream is not held.
    free = oai.chat.completions.create(**hello("free"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in free) == "Echo: free"


def test_reset_after_n_chunks_resets_the_connection(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    upstream.reset_after(2)
    received: list[Any] = []
    # openai 3.x reads through httpx2, whose ReadError is not httpx's: match on the name and the message.
    with pytest.raises(Exception, match="Connection reset by peer") as failed:
        received.extend(oai.chat.completions.create(**hello("one two three"), stream=True))
    assert type(failed.value).__name__ == "ReadError"
    assert len(received) == 2  # the events sent before the reset all arrived
    again = oai.chat.completions.create(**hello("whole"), stream=True)  # one-shot
    assert "".join(c.choices[0].delta.content or "" for c in again) == "Echo: whole"


def test_delay_before_the_status_line_times_the_client_out(upstream: FakeUpstream) -> None:
    upstream.delay = 0.5
    with (
        openai.OpenAI(base_url=upstream.url + "/v1", api_key="k", max_retries=0, timeout=0.05) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.chat.completions.create(**hello())
    upstream.delay = 0
    with openai.OpenAI(base_url=upstream.url + "/v1", api_key="k", max_retries=0, timeout=5) as client:
        assert client.chat.completions.create(**hello()).choices[0].message.content == "Echo: hello there"


def test_serve_capture_sends_the_file_byte_for_byte(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    path = CAPTURES / "openai" / "chat-stream-text.sse"
    upstream.serve_capture(path)
    _, wire = wire_bytes(upstream, CHAT, hello(stream=True))
    assert wire == path.read_bytes()
    upstream.serve_capture(path)
    text = "".join(
        c.choices[0].delta.content or "" for c in oai.chat.completions.create(**hello(), stream=True) if c.choices
    )
    assert text.startswith("I'm unable to provide real-time weather")


def test_serve_capture_anthropic(upstream: FakeUpstream, claude: anthropic.Anthropic) -> None:
    path = CAPTURES / "anthropic" / "messages-stream-text-basic-edited.sse"
    upstream.serve_capture(path)
    request: dict[str, Any] = {
        "model": "claude-3-opus-latest",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "x"}],
    }
    claude.messages.create(**request)  # not streamed: the capture waits for the next stream
    with claude.messages.stream(**request) as stream:
        assert stream.get_final_text() == "Hello there!"
    assert "x-request-id" not in upstream.requests[-1].headers  # a request header check: nothing leaked


# --- requests recorded, keys echoed -------------------------------------------------------------------------


def test_requests_are_recorded_with_headers_and_bodies(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(**hello("first"))
    oai.chat.completions.create(**hello("second"), stream=True).close()
    first, second = upstream.requests
    assert (first.method, first.path) == ("POST", CHAT)
    assert first.headers["authorization"] == "Bearer sk-test-123"
    assert first.body == hello("first")
    assert second.body["stream"] is True
    assert json.loads(second.raw) == second.body
    upstream.clear()
    assert upstream.requests == []


def test_echo_my_key_puts_the_key_in_the_header_and_the_text(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(**hello("please echo my key"))
    assert raw.headers["x-echo-key"] == "Bearer sk-test-123"
    assert raw.parse().choices[0].message.content == "Echo: please echo my key (key: Bearer sk-test-123)"
    plain = oai.chat.completions.with_raw_response.create(**hello("do not"))
    assert "x-echo-key" not in plain.headers
    with anthropic.Anthropic(base_url=upstream.url, api_key="sk-ant-secret", max_retries=0) as claude:
        request: dict[str, Any] = {"model": "claude-sonnet-4-20250514", "max_tokens": 8}
        with claude.messages.stream(**request, messages=[{"role": "user", "content": "Echo my key"}]) as stream:
            assert stream.response.headers["x-echo-key"] == "Bearer sk-ant-secret"
            assert stream.get_final_text().endswith("(key: Bearer sk-ant-secret)")
    body: dict[str, Any] = {**request, "messages": [{"role": "user", "content": "echo my key"}]}
    response, _ = wire_bytes(
        upstream, "/v1/messages", body, **{"x-api-key": "sk-ant-old", "anthropic-version": "2023-06-01"}
    )
    assert response.headers["x-echo-key"] == "sk-ant-old"
    upstream.echo_key = True
    assert oai.models.with_raw_response.list().headers["x-echo-key"] == "Bearer sk-test-123"


# --- helpers ------------------------------------------------------------------------------------------------


def test_split_events_keeps_every_byte() -> None:
    raw = b"data: a\n\nevent: e\ndata: b\n\ntrailing"
    assert _split_events(raw) == [b"data: a\n\n", b"event: e\ndata: b\n\n", b"trailing"]
    for path in sorted(CAPTURES.glob("*/*.sse")):
        assert b"".join(_split_events(path.read_bytes())) == path.read_bytes()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("gzip, deflate", True), ("br;q=1, GZIP;q=0.5", True), ("gzip;q=0", False), ("identity", False), ("", False)],
)
def test_accepts_gzip(value: str, expected: bool) -> None:
    assert _accepts_gzip(value) is expected
