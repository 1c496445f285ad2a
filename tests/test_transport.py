"""Both HTTP protocols the server can run (httptools, the default; h11, the fallback) keep the guarantees the
rest of the suite checks on the default: streams, the `disconnect` fault's reset, the request-read timeout and the
request-head limit. Frames due together share a write, and a repeated request is spliced from the frame cache:
the SDK still sees fresh ids."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from mockllm import MockServer
from mockllm.loading import load_text

SCENARIOS = """
version: 1
scenarios:
  - id: words
    when: {prompt: words}
    reply: {chunks: ["one ", "two ", "three ", "four ", "five"]}
  - id: cut
    when: {prompt: cut}
    reply: {chunks: ["one ", "two ", "three ", "four ", "five"], fault: {kind: disconnect, after: 2}}
  - id: tools
    when: {prompt: tools}
    reply:
      tool_calls: [{name: get_weather, arguments: '{"city": "Paris"}'}]
"""


@pytest.fixture(params=["httptools", "h11"], scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    scenarios = load_text(SCENARIOS, "<test>")
    with MockServer(scenarios=scenarios, time_scale=0, request_timeout=0.5, http=request.param) as running:
        yield running


def client(server: MockServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)


def ask(server: MockServer, prompt: str) -> list[openai.types.chat.ChatCompletionChunk]:
    stream = client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}], stream=True
    )
    return list(stream)


def test_a_stream_arrives_whole(server: MockServer) -> None:
    chunks = ask(server, "words")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four five"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_repeated_requests_get_fresh_ids(server: MockServer) -> None:
    first, second = ask(server, "tools"), ask(server, "tools")
    assert first[0].id != second[0].id  # spliced from the cache, not replayed
    assert len({c.id for c in second}) == 1  # one id across the stream
    calls = [next(c.choices[0].delta.tool_calls for c in s if c.choices and c.choices[0].delta.tool_calls)
             for s in (first, second)]  # fmt: skip
    assert all(call[0].id and call[0].id.startswith("call_") for call in calls)
    assert calls[0][0].id != calls[1][0].id
    assert calls[1][0].function is not None
    assert calls[1][0].function.name == "get_weather"
    assert len(first) == len(second)


def test_disconnect_fault_resets_the_connection(server: MockServer) -> None:
    seen: list[str] = []

    def read() -> None:
        for chunk in client(server).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "cut"}], stream=True
        ):
            seen.append(chunk.choices[0].delta.content or "")

    with pytest.raises(Exception) as raised:  # openai 3.3 lets httpx2's ReadError through unwrapped
        read()
    chain: list[BaseException] = []
    cause: BaseException | None = raised.value
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ConnectionResetError) or "reset" in str(c).lower() for c in chain), chain
    assert "".join(seen) == "one two "


def test_a_trickled_request_gets_a_408(server: MockServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        started = time.monotonic()
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 408"), received[:100]
    assert b"--request-timeout" in received
    assert time.monotonic() - started < 4


def test_an_oversized_head_is_refused(server: MockServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /_mockllm/health HTTP/1.1\r\nhost: x\r\n")
        received = b""
        try:
            for _ in range(50):  # 400 KB of headers, in pieces as a flood arrives
                sock.sendall(b"x-flood: " + b"a" * 8000 + b"\r\n")
        except OSError:
            pass  # closed while sending: what it should do
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except OSError:
            pass
    # mockllm's 431 on httptools, h11's own 400 on the fallback
    assert received.startswith(b"HTTP/1.1 431" if server.http == "httptools" else b"HTTP/1.1 400"), received[:100]
    assert httpx.get(server.url + "/_mockllm/health").status_code == 200


def test_an_unknown_protocol_is_refused() -> None:
    server = MockServer(http="spdy")
    with pytest.raises(ValueError, match="http='spdy' is not a protocol"):
        server.start()


def test_the_frame_cache_keeps_scenario_replies_only() -> None:
    with MockServer(scenarios=load_text(SCENARIOS, "<test>"), time_scale=0, fallback="echo") as server:
        cache = server.state.frame_cache
        ask(server, "words")
        ask(server, "words")
        assert (cache.misses, cache.hits) == (1, 1)
        ask(server, "no scenario says this")  # the echo fallback: rendered, not kept
        assert (cache.misses, cache.hits) == (1, 1)
        server.reset()
        ask(server, "words")
        assert (cache.misses, cache.hits) == (2, 1)
