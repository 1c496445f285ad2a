"""Access to the client's TCP connection, for the `disconnect` fault (a real reset, not a clean close).

ASGI gives an app no handle on the socket, so the server runs uvicorn's h11 protocol with a subclass that
remembers each connection's transport by the client's address; the app finds it through `scope["client"]`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
from typing import Any

import h11
from starlette.types import Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

_transports: dict[tuple[str, int], asyncio.Transport] = {}
log = logging.getLogger("mockllm")


class TrackingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, remembering transports so that a fault can reset the connection.

    It also closes a connection whose request does not arrive in full within `request_timeout` seconds of its first
    byte (a slowloris client trickling the request line, the headers or the body): uvicorn's keep-alive timer stops
    at the first byte, and nothing else bounds the wait. The timer is a network guard, not scaled by --time-scale.
    A request that has arrived is never cut: a long stream back is the answer, not the request.
    """

    request_timeout: float = 30.0
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer: tuple[str, int] | None = (str(peer[0]), int(peer[1]))
            _transports[self._peer] = transport
        else:
            self._peer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is not None:
            _transports.pop(self._peer, None)
        self._stop_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading():
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(self.request_timeout, self._read_timed_out)
        else:
            self._stop_read_timer()

    def _reading(self) -> bool:
        """Whether part of a request has arrived and the rest has not (h11: headers buffered, or the body begun)."""
        state = self.conn.their_state
        return state is h11.SEND_BODY or (state is h11.IDLE and bool(self.conn.trailing_data[0]))

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
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # nothing answered yet: say why, as a 408
            message = (
                f"mockllm closes a connection whose request does not arrive in full within {self.request_timeout:g} "
                f"s (--request-timeout); send the request at once, or raise --request-timeout.\n"
            ).encode()
            head = "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close"
            self.transport.write(f"{head}\r\ncontent-length: {len(message)}\r\n\r\n".encode() + message)
        self.transport.close()


def h11_protocol(request_timeout: float) -> type[TrackingH11Protocol]:
    """The protocol class for one server: uvicorn builds it with fixed arguments, so the setting rides on a class."""
    return type("MockllmH11Protocol", (TrackingH11Protocol,), {"request_timeout": request_timeout})


_SIOCOUTQ = 0x5411  # Linux: bytes in the socket's send queue not yet acknowledged by the peer


def _unsent(sock: socket.socket) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]  # type: ignore[no-any-return]
    except OSError:
        return 0


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
