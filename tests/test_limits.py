"""Bad input and slow clients: the request-read timeout, header floods, malformed and absurd bodies, alias bombs,
and an admin API that takes content, never a path."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import openai
import pytest
from conftest import EXAMPLES, StartServer

from mockllm import MockServer
from mockllm.app import LOREM_LIMIT
from mockllm.loading import MAX_ALIAS_EXPANSION, ScenarioError, load_text

HELLO: Any = [{"role": "user", "content": "Say hello"}]


def _connect(server: MockServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _trickle_until_closed(sock: socket.socket, piece: bytes, limit: float) -> tuple[float, bytes]:
    """Send `piece` every 20 ms until the server closes the connection; (seconds it took, what the server sent)."""
    start = time.monotonic()
    sock.settimeout(0.02)
    received = b""
    while time.monotonic() - start < limit:
        try:
            data = sock.recv(4096)
            if not data:
                break
            received += data
        except TimeoutError:
            pass
        except OSError:
            break
        try:
            sock.sendall(piece)
        except OSError:
            break
    return time.monotonic() - start, received


@pytest.fixture
def hasty(start_server: StartServer) -> MockServer:
    return start_server(EXAMPLES, request_timeout=0.3)


def _read_all(sock: socket.socket) -> tuple[float, bytes]:
    start = time.monotonic()
    sock.settimeout(10)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return time.monotonic() - start, received


@pytest.mark.parametrize(
    "start",
    [b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n", b"POST /v1/chat/com"],
    ids=["headers", "request-line"],
)
def test_an_unfinished_request_gets_408_and_a_close(hasty: MockServer, start: bytes) -> None:
    with _connect(hasty) as sock:
        sock.sendall(start)
        took, received = _read_all(sock)
    assert took < 5, "the server kept an unfinished request's connection open"
    assert received.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"--request-timeout" in received


def test_an_unfinished_body_gets_408_and_a_close(hasty: MockServer) -> None:
    with _connect(hasty) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        took, received = _read_all(sock)
    assert took < 5
    assert received.startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize(
    ("start", "piece"),
    [
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n", b"x-a: b\r\n"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{", b" "),
    ],
    ids=["headers", "body"],
)
def test_a_trickling_client_is_closed(hasty: MockServer, start: bytes, piece: bytes) -> None:
    # Each byte arriving does not restart the clock: the whole request has `request_timeout` seconds.
    with _connect(hasty) as sock:
        sock.sendall(start)
        took, _ = _trickle_until_closed(sock, piece, limit=10)
    assert took < 5, "the server kept a slowloris connection open"


def test_a_slow_client_does_not_hold_the_server(hasty: MockServer) -> None:
    with _connect(hasty) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        response = httpx.post(hasty.openai_base_url + "/chat/completions", json={"model": "m", "messages": HELLO})
        assert response.status_code == 200


def test_a_slow_answer_is_not_cut(start_server: StartServer) -> None:
    # The timeout guards the request's arrival; once it is in, a reply may take as long as its scenario says.
    scenarios = "version: 1\nscenarios:\n  - reply: {text: late, timing: {headers: 600ms, chunk: 100ms}}\n"
    server = start_server(scenarios_yaml=scenarios, request_timeout=0.2, time_scale=1)
    with httpx.Client(timeout=10) as client:
        for stream in (False, True):
            body = {"model": "m", "messages": HELLO, "stream": stream}
            response = client.post(server.openai_base_url + "/chat/completions", json=body)
            assert response.status_code == 200
            assert "late" in response.text


def test_an_idle_keep_alive_connection_is_not_a_slow_request(hasty: MockServer) -> None:
    with httpx.Client() as client:
        url = hasty.openai_base_url + "/chat/completions"
        assert client.post(url, json={"model": "m", "messages": HELLO}).status_code == 200
        time.sleep(0.5)  # longer than the request timeout, between requests
        assert client.post(url, json={"model": "m", "messages": HELLO}).status_code == 200


def test_a_header_flood_gets_refused_and_closed(examples: MockServer) -> None:
    with _connect(examples) as sock:
        sock.sendall(b"GET /_mockllm/health HTTP/1.1\r\nhost: x\r\n")
        received = b""
        try:
            for _ in range(200):  # 1.6 MB of headers, sent in pieces as a real flood arrives
                sock.sendall(b"x-flood: " + b"a" * 8000 + b"\r\n")
        except OSError:
            pass  # the server closed the connection while we were still sending: what it should do
        sock.settimeout(5)
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except OSError:
            pass
    # 431 on httptools (mockllm's own limit), 400 on the h11 fallback (h11's)
    assert received.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), received[:200]
    assert httpx.get(examples.url + "/_mockllm/health").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not utf-8",
        b"[" * 100_000 + b"]" * 100_000,  # nested deeper than any JSON parser recurses
        b'{"model": "m", "n": ' + b"9" * 5000 + b"}",  # an integer over Python's 4300-digit conversion limit
        b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}',
    ],
    ids=["invalid-utf8", "deep", "huge-int", "lone-surrogate"],
)
def test_malformed_bodies_are_400s(examples: MockServer, body: bytes) -> None:
    response = httpx.post(examples.openai_base_url + "/chat/completions", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(examples.url + "/v1/messages", content=body)
    assert response.status_code == 400
    assert response.json()["type"] == "error"


def test_huge_n_is_the_real_apis_400(examples: MockServer) -> None:
    response = httpx.post(examples.openai_base_url + "/chat/completions",
                          json={"model": "m", "messages": HELLO, "n": 10**9})  # fmt: skip
    assert response.status_code == 400
    assert "Expected a value <= 128" in response.json()["error"]["message"]


def test_a_huge_prompt_list_is_the_real_apis_400(examples: MockServer) -> None:
    response = httpx.post(examples.openai_base_url + "/completions", json={"model": "m", "prompt": ["a"] * 3000})
    assert response.status_code == 400
    assert "3000" in response.json()["error"]["message"]


def test_lorem_with_an_absurd_max_tokens_stays_bounded(start_server: StartServer) -> None:
    server = start_server(fallback="lorem")
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0, timeout=60)
    with client:
        started = time.monotonic()
        reply = client.chat.completions.create(model="m", messages=HELLO, max_tokens=10**9)
        took = time.monotonic() - started
    assert took < 20
    assert reply.usage is not None
    assert reply.usage.completion_tokens == LOREM_LIMIT
    assert reply.choices[0].finish_reason == "stop"  # cut by mockllm's bound, not by max_tokens
    small = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
    with small:
        cut = small.chat.completions.create(model="m", messages=HELLO, max_tokens=7)
    assert cut.usage is not None
    assert cut.usage.completion_tokens == 7
    assert cut.choices[0].finish_reason == "length"


# -- YAML alias bombs ------------------------------------------------------------------------------------------


def _billion_laughs(levels: int = 9) -> str:
    lines = ['  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghijk"[: levels - 1]:
        lines.append(f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    return "version: 1\nscenarios: []\nx-laughs:\n" + "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ScenarioError) as caught:
        load_text(_billion_laughs(), "laughs.yaml")
    assert time.monotonic() - started < 5
    [problem] = caught.value.problems
    assert problem.source == "laughs.yaml"
    assert problem.line == 4  # where the value the aliases repeat starts
    assert "billion laughs" in problem.message
    assert str(MAX_ALIAS_EXPANSION) in problem.message


def test_a_few_aliases_are_fine() -> None:
    text = (
        "version: 1\nscenarios:\n  - id: one\n    reply: &r {text: hi}\n  - id: two\n    when: {prompt: x}\n"
        "    reply: *r\n"
    )
    assert [s.name for s in load_text(text, "ok.yaml")] == ["one", "two"]


def test_the_admin_api_refuses_an_alias_bomb(examples: MockServer) -> None:
    response = httpx.post(examples.url + "/_mockllm/scenarios", content=_billion_laughs())
    assert response.status_code == 400
    assert "billion laughs" in response.json()["error"]["message"]


# -- the admin API reads content, never a path ------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "/etc/passwd",
        json.dumps({"path": "/etc/passwd"}),
        json.dumps({"version": 1, "scenarios": [{"reply": {"text": "x"}, "file": "/etc/passwd"}]}),
        json.dumps([{"reply": {"text": {"file": "/etc/passwd"}}}]),
        "version: 1\nscenarios: !!python/object/apply:open ['/etc/passwd']\n",
        "version: 1\nscenarios: !include /etc/passwd\n",
    ],
    ids=["bare-path", "path-key", "file-key", "file-value", "python-tag", "include-tag"],
)
def test_the_admin_api_never_reads_a_named_file(examples: MockServer, document: str) -> None:
    response = httpx.post(examples.url + "/_mockllm/scenarios", content=document)
    assert response.status_code == 400, response.text
    assert "root:" not in response.text  # /etc/passwd's first line, were it ever read
    assert [s.name for s in examples.state.scenarios.runtime_scenarios] == []


def test_a_posted_document_is_its_own_content(examples: MockServer, tmp_path: Any) -> None:
    # A path that exists is still only a string: the document below is one scenario whose reply is that text.
    named = tmp_path / "scenarios.yaml"
    named.write_text("version: 1\nscenarios:\n  - reply: {text: from the file}\n", encoding="utf-8")
    document = json.dumps({"reply": {"text": str(named)}})
    assert httpx.post(examples.url + "/_mockllm/scenarios", content=document).status_code == 201
    response = httpx.post(examples.openai_base_url + "/chat/completions", json={"model": "m", "messages": HELLO})
    assert response.json()["choices"][0]["message"]["content"] == str(named)
