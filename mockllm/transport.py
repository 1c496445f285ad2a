"""The server's HTTP protocols: access to the client's TCP connection, and the request-read timeout.

ASGI gives an app no handle on the socket, so the server runs uvicorn's HTTP protocol with a subclass that remembers
each connection's transport by the client's address; the `disconnect` fault finds it through `scope["client"]` and
resets the connection (a real RST, not a clean close), and the ticker (ticker.py) writes a paced stream's chunks
straight to it (`chunk_writer`). The fast protocol is uvicorn's httptools one (C, llhttp); h11 (pure Python) is the
fallback when httptools is not installed, and its streams go through the server's `send`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
from typing import Any, Protocol

import h11
from starlette.types import Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is the `fast` extra; without it the server runs h11
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

_transports: dict[tuple[str, int], asyncio.Transport] = {}
log = logging.getLogger("mockllm")
HEADER_LIMIT = 16 * 1024  # bytes of request line and headers; h11's default, enforced on httptools too
# What a chunk writer says: 0 when the chunk was written, else why it was not (and nothing was).
PAUSED = 1  # the connection's write buffer is full: wait for the client to read (the server's `send` does)
GONE = 2  # the client is gone


class ChunkWriter(Protocol):
    """Writes a started response's body chunks straight to its connection (`chunk_writer`)."""

    def __call__(self, data: bytes) -> int: ...

    def watch(self, waiting: asyncio.Future[int]) -> None: ...


class _Tracking:
    """What both protocols add: the transport filed by peer, and the request-read timeout.

    The timeout closes a connection whose request does not arrive in full within `request_timeout` seconds of its
    first byte (a slowloris client trickling the request line, the headers or the body): uvicorn's keep-alive timer
    stops at the first byte, and nothing else bounds the wait. The timer is a network guard, not scaled by
    --time-scale. A request that has arrived is never cut: a long stream back is the answer, not the request.
    """

    request_timeout: float = 30.0
    _read_timer: asyncio.TimerHandle | None = None
    _peer: tuple[str, int] | None = None
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def _track(self, transport: asyncio.Transport) -> None:
        # uvicorn has just looked the peer up for the scope's `client` (the key `transport_of` finds it by): no
        # second system call for it.
        peer = getattr(self, "client", None) or transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = (str(peer[0]), int(peer[1]))
            _transports[self._peer] = transport

    def _untrack(self) -> None:
        if self._peer is not None:
            _transports.pop(self._peer, None)
        self._stop_read_timer()

    def _reading(self) -> bool:
        """Whether part of a request has arrived and the rest has not."""
        raise NotImplementedError

    def _answered(self) -> bool:
        """Whether the response to the request being read has begun (then a 408 cannot be sent)."""
        raise NotImplementedError

    def _arm_read_timer(self) -> None:
        if self._reading():
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(self.request_timeout, self._read_timed_out)
        else:
            self._stop_read_timer()

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or not self._reading():
            return
        peer = f"{self._peer[0]}:{self._peer[1]}" if self._peer else "a client"
        log.warning(
            "closed the connection from %s: its request did not arrive in full within %gs (--request-timeout)",
            peer,
            self.request_timeout,
            extra={"fields": {"event": "request_timeout", "client": peer}},
        )
        if not self._answered():  # nothing answered yet: say why, as a 408
            message = (
                f"mockllm closes a connection whose request does not arrive in full within {self.request_timeout:g} "
                f"s (--request-timeout); send the request at once, or raise --request-timeout.\n"
            )
            _close_with(self.transport, "408 Request Timeout", message)
        else:
            self.transport.close()


def _close_with(transport: asyncio.Transport, status: str, message: str) -> None:
    body = message.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close"
    transport.write(f"{head}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
    transport.close()


class TrackingH11Protocol(_Tracking, H11Protocol):
    """uvicorn's h11 protocol with transport tracking and the read timeout. h11 refuses a header block over
    16 KiB (its default) with a 400 and a close."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._track(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._untrack()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._arm_read_timer()

    def _reading(self) -> bool:
        # h11: headers buffered, or the body begun
        state = self.conn.their_state
        return state is h11.SEND_BODY or (state is h11.IDLE and bool(self.conn.trailing_data[0]))

    def _answered(self) -> bool:
        return self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE)


if HttpToolsProtocol is not None:

    class TrackingHttpToolsProtocol(_Tracking, HttpToolsProtocol):
        """uvicorn's httptools protocol with transport tracking, the read timeout, and h11's 16 KiB limit on the
        request line and headers (llhttp has none): a larger head gets a 431 and a close."""

        _in_request = False
        _head_size = 0
        waiting: asyncio.Future[int] | None = None  # a stream on the ticker, told GONE when the connection is lost

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._track(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            self._untrack()
            self._in_request = False
            waiting, self.waiting = self.waiting, None
            if waiting is not None and not waiting.done():
                waiting.set_result(GONE)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self.transport.is_closing():
                self._arm_read_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_request = True
            self._head_size = 0

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            self._count_head(len(url))

        def on_header(self, name: bytes, value: bytes) -> None:
            super().on_header(name, value)
            self._count_head(len(name) + len(value) + 4)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_request = False

        def _count_head(self, size: int) -> None:
            self._head_size += size
            if self._head_size > HEADER_LIMIT:
                # Stops the parser: httptools raises it as a parser error, which uvicorn answers with
                # send_400_response, below.
                raise ValueError("request head too large")

        def send_400_response(self, msg: str) -> None:
            if self._head_size > HEADER_LIMIT:
                message = (
                    f"the request line and headers exceed {HEADER_LIMIT // 1024} KiB; send fewer or shorter headers\n"
                )
                _close_with(self.transport, "431 Request Header Fields Too Large", message)
                return
            super().send_400_response(msg)

        def _reading(self) -> bool:
            return self._in_request

        def _answered(self) -> bool:
            cycle = self.cycle
            return cycle is not None and cycle.response_started and not cycle.response_complete


def http_protocol(request_timeout: float, http: str = "auto") -> type[Any]:
    """The protocol class for one server (uvicorn builds it with fixed arguments, so the setting rides on a class):
    httptools when installed (`auto`), else h11."""
    if http not in ("auto", "httptools", "h11"):
        raise ValueError(f"http={http!r} is not a protocol; use auto, httptools or h11")
    if http == "httptools" and HttpToolsProtocol is None:
        raise ValueError("http=httptools needs httptools: pip install 'mockllm-server[fast]'")
    base: type[Any] = TrackingH11Protocol if http == "h11" or HttpToolsProtocol is None else TrackingHttpToolsProtocol
    return type(f"Mockllm{base.__name__}", (base,), {"request_timeout": request_timeout})


def fast_loop() -> str:
    """uvicorn's `loop` setting: uvloop when installed, else asyncio's own."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


_SIOCOUTQ = 0x5411  # Linux: bytes in the socket's send queue not yet acknowledged by the peer


def _unsent(sock: socket.socket) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]  # type: ignore[no-any-return]
    except OSError:
        return 0


class _HttpToolsChunks:
    """Writes body chunks of a started chunked response straight to the connection, as uvicorn's `send` would
    (`SIZE\r\nDATA\r\n`), without the trip through it; the server's `send` still starts and ends the body."""

    __slots__ = ("cycle", "flow", "protocol", "transport")

    def __init__(self, protocol: Any, cycle: Any) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.cycle = cycle
        self.flow = cycle.flow

    def watch(self, waiting: asyncio.Future[int]) -> None:
        """Have `waiting` told GONE as soon as the connection is lost, not at the stream's next deadline (which a
        slow stream may have a minute away)."""
        self.protocol.waiting = waiting

    def __call__(self, data: bytes) -> int:
        if self.cycle.disconnected or self.transport.is_closing():
            return GONE
        if self.flow.write_paused:
            return PAUSED
        self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return 0


def chunk_writer(scope: Scope, transport: asyncio.Transport | None) -> ChunkWriter | None:
    """A writer of body chunks straight to the request's connection (`transport_of(scope)`), once its chunked
    response has started; None where the server is not mockllm's httptools one (h11, another server), and frames go
    through `send`."""
    if transport is None or HttpToolsProtocol is None:
        return None
    protocol = transport.get_protocol()
    cycle = getattr(protocol, "cycle", None)
    if not isinstance(protocol, TrackingHttpToolsProtocol) or cycle is None or cycle.scope is not scope:
        return None
    if not cycle.response_started or cycle.response_complete or not cycle.chunked_encoding:
        return None
    return _HttpToolsChunks(protocol, cycle)


def transport_of(scope: Scope) -> asyncio.Transport | None:
    """The transport of the request's connection, when it runs on mockllm's own server."""
    client: Any = scope.get("client")
    return _transports.get((str(client[0]), int(client[1]))) if client else None


async def reset_connection(scope: Scope, settle: float = 0.05) -> bool:
    """Reset the request's TCP connection (RST, via SO_LINGER 0). False when the transport is unknown.

    A reset discards whatever the kernel has not yet delivered, so the chunks sent before the fault are first
    allowed to reach the client: the transport's buffer and the socket's send queue drain (up to a second), and
    the client gets `settle` seconds to read them.
    """
    transport = transport_of(scope)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    deadline = asyncio.get_running_loop().time() + 1.0
    while asyncio.get_running_loop().time() < deadline and not transport.is_closing():
        if transport.get_write_buffer_size() == 0 and (sock is None or _unsent(sock) == 0):
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(settle)
    if sock is not None and not transport.is_closing():
        # A zero linger time makes close() send RST instead of FIN: the client sees "connection reset".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)  # let the protocol see connection_lost before the app returns
    return True
