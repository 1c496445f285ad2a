"""The `no_network` guard of the compat tests refuses anything beyond the loopback interface, at once."""

from __future__ import annotations

import socket

import pytest
from offline import NetworkBlocked, no_network  # noqa: F401  (the fixture, used through pytestmark)

pytestmark = [pytest.mark.compat, pytest.mark.usefixtures("no_network")]


def test_remote_hosts_are_refused_and_loopback_is_not() -> None:
    with pytest.raises(NetworkBlocked, match=r"look up 'api\.openai\.com'"):
        socket.getaddrinfo("api.openai.com", 443)
    with socket.socket() as sock, pytest.raises(NetworkBlocked, match="connect to"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed
    assert socket.getaddrinfo("127.0.0.1", 80)
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
