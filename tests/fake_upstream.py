"""`FakeUpstream`: a stand-in for the real OpenAI and Anthropic APIs on 127.0.0.1, for the record/replay tests.

There is no internet in the test environment, so the proxy and recorder are tested against this server. It speaks
the wire formats the project's reference notes describe (wire-formats.md; bodies in `fake_upstream_render.py`) and
can be scripted per test: fail the next request, hold a stream after its first chunk, reset the connection mid-stream,
delay the status line, or answer with the exact bytes of a capture file. Every request it receives is recorded.

    with FakeUpstream() as upstream:
        client = openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test")
        ...
        assert upstream.requests[0].headers["authorization"] == "Bearer sk-test"

It shares no code with `mockllm/` on purpose: a bug there must not hide in both sides of a test.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from fake_upstream_render import (
    Reply,
    anthropic_error_body,
    anthropic_headers,
    chat,
    completions,
    embeddings,
    last_user_text,
    messages,
    models_anthropic,
    models_openai,
    openai_error_body,
    openai_headers,
    responses,
)
from uvicorn.protocols.http.h11_impl import H11Protocol

Scope = dict[str, Any]
Receive = Any
Send = Any

SSE_TYPE = "text/event-stream; charset=utf-8"
JSON_TYPE = "application/json"
HOLD_LIMIT = 30.0  # seconds a held stream waits for release before it goes on anyway (a failed test never hangs)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake API received it. `headers` has lower-case names; `body` is the parsed JSON or None."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass(frozen=True)
class _Failure:
    status: int
    headers: dict[str, str]
    body: bytes | str | dict[str, Any] | None


def _tracking_protocol(transports: dict[tuple[str, int], asyncio.Transport]) -> type[H11Protocol]:
    """uvicorn's h11 protocol that files each connection's transport by peer, so `reset_after` can reach it.

    ASGI gives an app no handle on its socket; a class per server keeps the map private to that server.
    """

    class TrackingProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            self._peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
            if self._peer is not None:
                transports[self._peer] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            if self._peer is not None:
                transports.pop(self._peer, None)
            super().connection_lost(exc)

    return TrackingProtocol


def _accepts_gzip(value: str) -> bool:
    for item in value.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _split_events(raw: bytes) -> list[bytes]:
    """A capture's bytes cut after each blank line; the pieces joined are the file, byte for byte."""
    pieces, start = [], 0
    while (end := raw.find(b"\n\n", start)) != -1:
        pieces.append(raw[start : end + 2])
        start = end + 2
    if start < len(raw):
        pieces.append(raw[start:])
    return pieces


class FakeUpstream:
    """The fake OpenAI + Anthropic API in a daemon thread; a context manager. `url` is `http://127.0.0.1:<port>`.

    Attributes a test may set at any time: `gap` (seconds between stream events), `delay` (seconds before the
    status line of every answer, to make a proxy time out), `echo_key` (echo the caller's key on every answer, not
    only when the prompt says "echo my key"), `require_key` (answer 401 to any other key).
    """

    def __init__(self, *, gap: float = 0.002, delay: float = 0.0, require_key: str | None = None) -> None:
        self.gap = gap
        self.delay = delay
        self.echo_key = False
        self.require_key = require_key
        self.port = 0
        #: set while a stream is paused after its first chunk (see `hold`)
        self.holding = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._failures: collections.deque[_Failure] = collections.deque()
        self._release: threading.Event | None = None
        self._reset_after: int | None = None
        self._capture: bytes | None = None
        self._stopping = threading.Event()
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, without `/v1` (the Anthropic SDK's `base_url`; add `/v1` for the OpenAI SDK)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> FakeUpstream:
        """Listen on a free port and serve in a daemon thread; returns once connections are accepted."""
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and without it Nagle may hold a
        # small first chunk back, which would blur what `hold` is meant to show.
        if self._thread is not None:
            return self
        self._stopping.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            http=_tracking_protocol(self._transports),
            interface="asgi3",  # a bound method defeats uvicorn's guess
            proxy_headers=False,  # scope["client"] must stay the real peer: `reset_after` finds the socket by it
            lifespan="off",
            access_log=False,
            log_level="warning",
            log_config=None,
            server_header=False,  # the edge's `server: cloudflare` is sent instead
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"fake-upstream:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the fake upstream on port {self.port} did not start within {timeout} s")
            time.sleep(0.001)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: held and delayed answers give up at once, then the thread ends."""
        self._stopping.set()
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what tests script and read -------------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self, status: int, headers: dict[str, str] | None = None, body: bytes | str | dict[str, Any] | None = None
    ) -> None:
        """Answer the next request with `status` instead (queued: call it twice to fail the next two).

        `body` bytes or str are sent as they are; a dict is JSON (4-space with a newline for OpenAI, compact for
        Anthropic); None gives the API's own error body for the status (§5.1, §7.3). `headers` are added to (and
        override) the API's usual headers, e.g. `{"retry-after": "1"}`.
        """
        with self._lock:
            self._failures.append(_Failure(status, dict(headers or {}), body))

    def hold(self) -> threading.Event:
        """Pause the next stream after its first event until the returned event is set (by the test).

        `holding` is set while the stream waits, so a test can first see that the first chunk got through.
        """
        release = threading.Event()
        with self._lock:
            self._release = release
        return release

    def reset_after(self, n: int) -> None:
        """Reset the TCP connection (RST) of the next stream after its first `n` events have been sent."""
        with self._lock:
            self._reset_after = n

    def serve_capture(self, path: str | Path) -> None:
        """Answer the next streamed request with the exact bytes of a capture file (`.sse`), event by event."""
        data = Path(path).read_bytes()
        with self._lock:
            self._capture = data

    def clear(self) -> None:
        """Forget the received requests and every scripted behaviour not yet used."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._release = self._capture = self._reset_after = None
        self.holding.clear()

    # --- the ASGI app ---------------------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            headers[key] = f"{headers[key]}, {value.decode('latin-1')}" if key in headers else value.decode("latin-1")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        method, path = scope["method"], scope["path"]
        request = ReceivedRequest(method, path, scope["query_string"].decode("latin-1"), headers, body, raw)
        with self._lock:
            self._requests.append(request)
        started = time.monotonic()
        if not await self._sleep(self.delay):
            await self._drop(scope)
            return
        reply = self._reply(request, started)
        if reply.streamed:
            await self._stream(scope, send, reply)
        else:
            await self._send_body(send, reply, headers.get("accept-encoding", ""))

    def _reply(self, request: ReceivedRequest, started: float) -> Reply:
        """What to answer: a scripted failure, a 401, a capture, or the API's own answer to the request."""
        anthropic = request.path == "/v1/messages" or "anthropic-version" in request.headers
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        echo = self.echo_key or "echo my key" in last_user_text(request.body).lower()
        ms = int((time.monotonic() - started) * 1000) + 1

        def base(content_type: str) -> list[tuple[str, str]]:
            headers = anthropic_headers(content_type) if anthropic else openai_headers(content_type, ms)
            return [*headers, ("x-echo-key", key)] if echo else headers

        def error(status: int, message: str | None = None) -> bytes:
            return anthropic_error_body(status, message) if anthropic else openai_error_body(status, message)

        streamed = isinstance(request.body, dict) and request.body.get("stream") is True
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            capture = self._capture if streamed else None
            if capture is not None:
                self._capture = None
        if failure is not None:
            headers = [h for h in base(JSON_TYPE) if h[0] not in failure.headers] + list(failure.headers.items())
            return Reply(failure.status, headers, body=_failure_body(failure, anthropic) or error(failure.status))
        if self.require_key is not None and key.removeprefix("Bearer ") != self.require_key:
            return Reply(401, base(JSON_TYPE), body=error(401))
        if capture is not None:
            return Reply(200, base(SSE_TYPE), events=_split_events(capture))
        if (request.method, request.path) == ("GET", "/v1/models"):
            return Reply(200, base(JSON_TYPE), body=models_anthropic() if anthropic else models_openai())
        renderer = _RENDERERS.get(request.path) if request.method == "POST" else None
        if renderer is None and (request.method, request.path) != ("POST", "/v1/embeddings"):
            return Reply(404, base(JSON_TYPE), body=error(404, f"Invalid URL ({request.method} {request.path})"))
        if not isinstance(request.body, dict):
            return Reply(400, base(JSON_TYPE), body=error(400, "We could not parse the JSON body of your request."))
        if renderer is None:
            return Reply(200, base(JSON_TYPE), body=embeddings(request.body))
        text = "Echo: " + (last_user_text(request.body) or "(no text)")
        if echo:
            text += f" (key: {key})"
        answer, events = renderer(request.body, text)
        if answer is None:
            return Reply(200, base(SSE_TYPE), events=events)
        return Reply(200, base(JSON_TYPE), body=answer)

    async def _send_body(self, send: Send, reply: Reply, accept_encoding: str) -> None:
        body = reply.body or b""
        headers = list(reply.headers)
        # The real APIs compress whole bodies when the client allows it; streams go out plain.
        if _accepts_gzip(accept_encoding):
            body = gzip.compress(body)
            headers.append(("content-encoding", "gzip"))
        headers.append(("content-length", str(len(body))))
        await send({"type": "http.response.start", "status": reply.status, "headers": _encode(headers)})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, scope: Scope, send: Send, reply: Reply) -> None:
        with self._lock:
            release, self._release = self._release, None
            reset_at, self._reset_after = self._reset_after, None
        await send({"type": "http.response.start", "status": reply.status, "headers": _encode(reply.headers)})
        for number, event in enumerate(reply.events, start=1):
            if number > 1 and not await self._sleep(self.gap):
                await self._drop(scope)
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if reset_at is not None and number >= reset_at:
                await self._reset(scope)
                return
            if release is not None and number == 1:
                self.holding.set()
                await self._wait_for(release)
                self.holding.clear()
                if self._stopping.is_set():
                    await self._drop(scope)
                    return
        if reset_at == 0:
            await self._reset(scope)
            return
        await send({"type": "http.response.body", "body": b""})

    async def _sleep(self, seconds: float) -> bool:
        """Sleep in short steps; False when the server began stopping meanwhile (it must not wait for us)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._stopping.is_set():
                return False
            await asyncio.sleep(min(left, 0.01))
        return True

    async def _wait_for(self, release: threading.Event) -> None:
        """Wait until the test sets `release`, the server stops, or HOLD_LIMIT passes (a failed test never hangs)."""
        deadline = time.monotonic() + HOLD_LIMIT
        while not release.is_set() and not self._stopping.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

    def _transport(self, scope: Scope) -> asyncio.Transport | None:
        """The request's connection; None once the client has closed it (it is then forgotten)."""
        client = scope.get("client")
        return self._transports.get((str(client[0]), int(client[1]))) if client else None

    async def _drop(self, scope: Scope) -> None:
        """Close the connection without an answer: the server is stopping and must not wait for this request."""
        transport = self._transport(scope)
        if transport is not None:
            transport.abort()
            await asyncio.sleep(0)  # let uvicorn see the connection lost before the app returns, or it answers 500

    async def _reset(self, scope: Scope) -> None:
        """Reset the connection with RST once the events sent so far have left the socket and had time to land."""
        transport = self._transport(scope)
        if transport is None:
            return  # the client left first: nothing to reset
        sock = transport.get_extra_info("socket")
        # A reset discards what the peer has not read yet, so the events sent first must drain and be read.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while loop.time() < deadline and (transport.get_write_buffer_size() > 0 or _unsent(sock) > 0):
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        if sock is not None:
            # SO_LINGER with a zero time turns close() into an RST: the client sees "connection reset by peer".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await asyncio.sleep(0)


_RENDERERS: dict[str, Callable[[dict[str, Any], str], tuple[bytes | None, list[bytes]]]] = {
    "/v1/chat/completions": chat,
    "/v1/completions": completions,
    "/v1/responses": responses,
    "/v1/messages": messages,
}


def _failure_body(failure: _Failure, anthropic: bool) -> bytes | None:
    """A scripted failure's body: bytes or text as given, a dict as the API formats JSON, None for the default."""
    if isinstance(failure.body, dict):
        if anthropic:
            return json.dumps(failure.body, separators=(",", ":")).encode()
        return (json.dumps(failure.body, indent=4) + "\n").encode()  # OpenAI's error layer (§5.1)
    return failure.body.encode() if isinstance(failure.body, str) else failure.body


_SIOCOUTQ = 0x5411  # Linux: bytes in a socket's send queue not yet acknowledged by the peer


def _unsent(sock: socket.socket | None) -> int:
    """Bytes the kernel still holds for the peer (0 where the ioctl is unknown: the settle time then covers it)."""
    if sock is None:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
