"""Timing, errors and faults as the official `openai` client sees them."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import struct
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sse_utils import openai_client, post_raw, split_events

from mockllm import MockServer

FIVE = "One two three four five"  # five content chunks


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def serve(start_server: Any, reply: dict[str, Any], **options: Any) -> MockServer:
    """A server with one scenario answering every request with `reply`."""
    document = {"version": 1, "scenarios": [{"id": "only", "reply": reply}]}
    server: MockServer = start_server(scenarios_yaml=json.dumps(document), **options)
    return server


def client_for(server: MockServer, **options: Any) -> openai.OpenAI:
    client: openai.OpenAI = openai_client(server, **options)
    return client


def journal(server: MockServer) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = httpx.get(server.url + "/_mockllm/requests").json()
    return entries


def stream_contents(server: MockServer, **options: Any) -> tuple[list[str], BaseException | None]:
    """Content deltas the SDK yielded before the stream ended or raised, and what it raised."""
    got: list[str] = []
    try:
        stream = client_for(server, **options).chat.completions.create(model="m", messages=user("hi"), stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    except Exception as exc:
        return got, exc
    return got, None


# -- errors ------------------------------------------------------------------------------------------------


LIMITED_THEN_OK = """
version: 1
scenarios:
  - id: limited
    replies:
      - error: {status: 429, retry_after: 1s}
      - text: Made it.
"""


def test_429_with_retry_after_then_success(start_server: Any) -> None:
    server = serve(start_server, {"text": "unused"}, time_scale=1)
    server.add(LIMITED_THEN_OK)
    completion = client_for(server, max_retries=2).chat.completions.create(model="m", messages=user("hi"))
    assert completion.choices[0].message.content == "Made it."
    first, second = journal(server)
    assert first["status"] == 429
    assert first["error"]["type"] == "requests"
    assert second["status"] == 200
    gap = second["time"] - first["time"]
    assert 0.9 <= gap < 5, gap  # the SDK honoured retry-after: 1


def test_time_scale_0_makes_the_retry_immediate(start_server: Any) -> None:
    # The same 1 s retry-after, served at --time-scale 0: the SDK waits 1 ms, not 1 s (nor its own ~0.5 s backoff,
    # which it would use for a retry-after of 0).
    server = serve(start_server, {"text": "unused"}, time_scale=0)
    server.add(LIMITED_THEN_OK)
    raw = post_raw(server.url, "/v1/chat/completions", {"model": "m", "messages": user("hi")})
    assert (raw.headers["retry-after-ms"], raw.headers["retry-after"]) == ("1", "0.001")
    server.reset()
    server.add(LIMITED_THEN_OK)
    completion = client_for(server, max_retries=2).chat.completions.create(model="m", messages=user("hi"))
    assert completion.choices[0].message.content == "Made it."
    first, second = journal(server)
    assert second["time"] - first["time"] < 0.3


def test_429_headers_and_body(start_server: Any) -> None:
    server = serve(start_server, {"error": {"status": 429, "retry_after": "1.5s"}}, time_scale=1)
    response = post_raw(server.url, "/v1/chat/completions", {"model": "m", "messages": user("hi")})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.json() == {
        "error": {
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


@pytest.mark.parametrize(
    ("scale", "seconds", "millis"), [(1, "2", "2000"), (0.1, "0.2", "200"), (0.0001, "0.001", "1"), (0, "0.001", "1")]
)
def test_retry_after_is_scaled_by_the_time_scale(start_server: Any, scale: float, seconds: str, millis: str) -> None:
    server = serve(start_server, {"error": {"status": 429, "retry_after": 2}}, time_scale=scale)
    response = post_raw(server.url, "/v1/chat/completions", {"model": "m", "messages": user("hi")})
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == (seconds, millis)


def test_should_retry_false_stops_the_retry(start_server: Any) -> None:
    server = serve(start_server, {"error": {"status": 500, "should_retry": False}})
    with pytest.raises(openai.InternalServerError):
        client_for(server, max_retries=2).chat.completions.create(model="m", messages=user("hi"))
    assert len(journal(server)) == 1


def test_500_is_retried_twice_then_raises(start_server: Any) -> None:
    server = serve(start_server, {"error": {"status": 500}})
    with pytest.raises(openai.InternalServerError) as info:
        client_for(server, max_retries=2).chat.completions.create(model="m", messages=user("hi"))
    assert info.value.status_code == 500
    assert info.value.type == "server_error"
    assert [entry["status"] for entry in journal(server)] == [500, 500, 500]


@pytest.mark.parametrize(
    ("status", "exception", "type_", "code"),
    [
        (400, openai.BadRequestError, "invalid_request_error", None),
        (401, openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
        (403, openai.PermissionDeniedError, "request_forbidden", "unsupported_country_region_territory"),
        (404, openai.NotFoundError, "invalid_request_error", "model_not_found"),
        (422, openai.UnprocessableEntityError, "invalid_request_error", None),
        (503, openai.InternalServerError, "server_error", None),
    ],
)
def test_default_error_bodies(
    start_server: Any, status: int, exception: type[openai.APIStatusError], type_: str, code: str | None
) -> None:
    server = serve(start_server, {"error": {"status": status}})
    with pytest.raises(exception) as info:
        client_for(server).chat.completions.create(model="m", messages=user("hi"))
    assert info.value.status_code == status
    assert info.value.type == type_
    assert info.value.code == code
    assert info.value.message


def test_custom_error_fields_headers_and_raw_body(start_server: Any) -> None:
    server = serve(
        start_server,
        {
            "error": {
                "status": 400,
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
                "param": "messages",
                "message": "This model's maximum context length is 8 tokens.",
                "headers": {"x-extra": "1"},
            }
        },
    )
    with pytest.raises(openai.BadRequestError) as info:
        client_for(server).chat.completions.create(model="m", messages=user("hi"))
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    assert info.value.response.headers["x-extra"] == "1"
    (entry,) = journal(server)
    assert entry["error"] == {
        "status": 400,
        "type": "invalid_request_error",
        "message": "This model's maximum context length is 8 tokens.",
    }
    raw = serve(start_server, {"error": {"status": 502, "body": "<html>Bad gateway</html>"}})
    response = post_raw(raw.url, "/v1/chat/completions", {"model": "m", "messages": user("hi")})
    assert response.status_code == 502
    assert response.text == "<html>Bad gateway</html>"


def test_error_inside_replies_fails_twice_then_succeeds(start_server: Any) -> None:
    server = start_server(
        scenarios_yaml="""
version: 1
scenarios:
  - id: flaky
    replies:
      - error: {status: 503, retry_after: 0.1}
      - error: {status: 500, retry_after: 0.1}
      - text: Finally!
"""
    )
    completion = client_for(server, max_retries=2).chat.completions.create(model="m", messages=user("hi"))
    assert completion.choices[0].message.content == "Finally!"
    assert [entry["status"] for entry in journal(server)] == [503, 500, 200]


def test_probability_draws_are_seeded_and_reset(start_server: Any) -> None:
    reply = {"text": "ok", "error": {"status": 500, "probability": 0.5}}
    server = serve(start_server, reply, seed=7)

    def outcomes(on: MockServer) -> list[int]:
        body = {"model": "m", "messages": user("hi")}
        return [post_raw(on.url, "/v1/chat/completions", body).status_code for _ in range(16)]

    first = outcomes(server)
    assert set(first) == {200, 500}
    httpx.post(server.url + "/_mockllm/reset")
    assert outcomes(server) == first  # re-seeded: the same draws whatever ran before
    assert outcomes(serve(start_server, reply, seed=7)) == first  # the same seed in another server
    assert outcomes(serve(start_server, reply, seed=8)) != first


# -- faults ------------------------------------------------------------------------------------------------


def test_error_event_after_two_chunks(start_server: Any) -> None:
    server = serve(
        start_server, {"text": FIVE, "fault": {"kind": "error_event", "after": 2, "message": "The server broke"}}
    )
    got, error = stream_contents(server, max_retries=2)
    assert got == ["One", " two"]
    assert type(error) is openai.APIError  # the base class: no status, not retried
    assert error.message == "The server broke"
    assert error.body == {"message": "The server broke", "type": "server_error", "param": None, "code": None}
    (entry,) = journal(server)
    assert entry["fault"] == "error_event"
    assert entry["chunks"] == 2
    raw = post_raw(server.url, "/v1/chat/completions", {"model": "m", "messages": user("hi"), "stream": True})
    events = split_events(raw.content)
    assert events[-1] == b"data: [DONE]"
    assert json.loads(events[-2][len(b"data: ") :])["error"]["message"] == "The server broke"


def test_end_stops_quietly_without_finish_or_done(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "end", "after": 3}})
    got, error = stream_contents(server)
    assert error is None
    assert got == ["One", " two", " three"]
    raw = post_raw(server.url, "/v1/chat/completions", {"model": "m", "messages": user("hi"), "stream": True})
    assert b"[DONE]" not in raw.content
    assert b'finish_reason":"stop' not in raw.content
    assert len(split_events(raw.content)) == 4  # role chunk and three content chunks


def test_disconnect_is_a_connection_reset(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "disconnect", "after": 2}})
    got, error = stream_contents(server)
    assert got == ["One", " two"]
    # Most openai 3.x releases wrap a transport error raised while iterating a stream in APIConnectionError;
    # openai 3.3 lets the transport's own ReadError (httpx2) through unwrapped.
    assert isinstance(error, openai.APIConnectionError) or type(error).__name__ == "ReadError", repr(error)
    chain = []
    cause: BaseException | None = error
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ConnectionResetError) or "reset" in str(c).lower() for c in chain), chain
    (entry,) = journal(server)
    assert entry["fault"] == "disconnect"
    assert entry["chunks"] == 2
    # The client saw the 200 status line, then a reset: the journal says both.
    assert (entry["status"], entry["outcome"]) == (200, "reset")


def test_disconnect_on_a_non_streamed_request(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "disconnect"}})
    with pytest.raises(openai.APIConnectionError):
        client_for(server).chat.completions.create(model="m", messages=user("hi"))
    # No status line ever reached the client.
    assert [(e["status"], e["outcome"]) for e in journal(server)] == [(None, "reset")]


def test_malformed_line_then_the_stream_goes_on(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "malformed", "after": 2}})
    got, error = stream_contents(server)
    assert got == ["One", " two"]
    # The SDK parses each data line with json.loads and lets the decode error through, unwrapped.
    assert isinstance(error, json.JSONDecodeError)
    raw = post_raw(server.url, "/v1/chat/completions", {"model": "m", "messages": user("hi"), "stream": True})
    events = split_events(raw.content)
    assert events[3] == b'data: {"id": "malformed'
    assert events[-1] == b"data: [DONE]"
    assert len(events) == 1 + 5 + 1 + 1 + 1  # role, content, bad line, finish, [DONE]


def test_stall_until_the_client_times_out(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "stall", "after": 1}}, time_scale=1)
    started = time.monotonic()
    got, error = stream_contents(server, timeout=0.5)
    assert got == ["One"]
    # APITimeoutError, or on openai 3.3 the transport's own ReadTimeout (httpx2) unwrapped.
    assert isinstance(error, openai.APITimeoutError) or type(error).__name__ == "ReadTimeout", repr(error)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while journal(server)[0]["status"] is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the server notices the client is gone and ends the response
    assert journal(server)[0]["fault"] == "stall"


def test_stall_for_ends_cleanly_after_the_pause(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "stall", "after": 2, "for": "300ms"}}, time_scale=1)
    started = time.monotonic()
    got, error = stream_contents(server)
    assert error is None
    assert got == ["One", " two"]
    assert time.monotonic() - started >= 0.25


def test_headers_delay_longer_than_the_timeout(start_server: Any) -> None:
    server = serve(start_server, {"text": "Late.", "timing": {"headers": "3s"}}, time_scale=1)
    with pytest.raises(openai.APITimeoutError):
        client_for(server, timeout=0.5).chat.completions.create(model="m", messages=user("hi"))
    got, error = stream_contents(server, timeout=0.5)
    assert got == []
    # APITimeoutError, or on openai 3.3 the transport's own ReadTimeout (httpx2) unwrapped.
    assert isinstance(error, openai.APITimeoutError) or type(error).__name__ == "ReadTimeout", repr(error)


@pytest.mark.parametrize("stream", [False, True])
def test_headers_delay_holds_back_the_status_line(start_server: Any, stream: bool) -> None:
    server = serve(start_server, {"text": "Late.", "timing": {"headers": "300ms"}}, time_scale=1)
    body = {"model": "m", "messages": user("hi"), "stream": stream}
    started = time.monotonic()
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=10) as response:
        status_after = time.monotonic() - started  # httpx returns once the status line and headers are in
        response.read()
    assert response.status_code == 200
    assert status_after >= 0.29, status_after


def test_fault_probability_zero_never_fires(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "fault": {"kind": "disconnect", "after": 1, "probability": 0}})
    got, error = stream_contents(server)
    assert error is None
    assert "".join(got) == FIVE
    assert journal(server)[0]["fault"] is None


# -- timing ------------------------------------------------------------------------------------------------


def test_ttft_and_chunk_gaps_seen_by_the_client(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "timing": {"ttft": "300ms", "chunk": "100ms"}}, time_scale=1)
    client = client_for(server)
    started = time.monotonic()
    arrivals = []
    for chunk in client.chat.completions.create(model="m", messages=user("hi"), stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    # Chunk k is due 300 ms + k x 100 ms after arrival. A loaded machine may send it late (the next one then
    # catches up, deadlines being absolute) but never early; the upper bound is generous for a busy 2-core box.
    due = [0.3 + 0.1 * k for k in range(5)]
    assert len(arrivals) == 5
    assert all(arrival >= deadline - 0.01 for arrival, deadline in zip(arrivals, due, strict=True)), arrivals
    assert arrivals[0] < 1.5
    (entry,) = journal(server)
    times = entry["chunk_times"]
    assert all(sent >= deadline - 0.002 for sent, deadline in zip(times, due, strict=True)), times
    assert times == sorted(times)


def test_time_scale_multiplies_every_delay(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "timing": {"ttft": "1s", "chunk": "500ms"}}, time_scale=0.2)
    stream_contents(server)
    times = journal(server)[0]["chunk_times"]
    due = [0.2 + 0.1 * k for k in range(5)]  # 1 s and 500 ms, scaled by 0.2
    assert all(sent >= deadline - 0.002 for sent, deadline in zip(times, due, strict=True)), times
    assert times[-1] < 2.0  # far below the unscaled 3 s


def test_tokens_per_second(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "timing": {"tokens_per_second": 20}}, time_scale=1)
    stream_contents(server)
    times = journal(server)[0]["chunk_times"]
    assert times[-1] >= 0.2 - 0.002  # the fifth chunk is due after four gaps of 50 ms


def test_non_streamed_reply_waits_for_the_whole_stream(start_server: Any) -> None:
    server = serve(start_server, {"text": FIVE, "timing": {"ttft": "200ms", "chunk": "50ms"}}, time_scale=1)
    started = time.monotonic()
    client_for(server).chat.completions.create(model="m", messages=user("hi"))
    assert time.monotonic() - started >= 0.38  # 200 ms + 4 x 50 ms


def test_jitter_varies_the_gaps(start_server: Any) -> None:
    reply = {"text": FIVE, "timing": {"chunk": "40ms", "jitter": "20ms"}}
    server = serve(start_server, reply, time_scale=1, seed=3)
    stream_contents(server)
    times = journal(server)[0]["chunk_times"]
    gaps = [round(later - earlier, 3) for earlier, later in itertools.pairwise(times)]
    assert len(set(gaps)) > 1
    assert all(gap >= 0 for gap in gaps)


def test_a_client_that_hangs_up_mid_stream_ends_the_response_quietly(
    start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(start_server, {"text": "word " * 20000})
    body = json.dumps({"model": "m", "messages": user("hi"), "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(5):
            with socket.create_connection((server.host, server.port)) as sock:
                sock.sendall(request)
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # hang up with RST
        deadline = time.monotonic() + 5
        while any(entry["duration"] is None for entry in journal(server)) and time.monotonic() < deadline:
            time.sleep(0.02)
    entries = journal(server)
    assert len(entries) == 5
    assert all(entry["duration"] is not None for entry in entries)  # every response ended
    assert all(entry["chunks"] < 20000 for entry in entries)  # and stopped early
    assert not [r for r in caplog.records if "socket.send() raised exception" in r.getMessage()]
