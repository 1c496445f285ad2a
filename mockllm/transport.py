"""Access to the client's TCP connection, for the `disconnect` fault (a real reset, not a clean close).

ASGI gives an app no handle on the socket, so the server runs uvicorn's h11 protocol with a subclass that
remembers each connection's transport by the client's address; the app finds it through `scope["client"]`.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

_transports: dict[tuple[str, int], asyncio.Transport] = {}


class TrackingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, remembering transports so that a fault can reset the connection."""

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
        super().connection_lost(exc)


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
