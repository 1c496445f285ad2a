"""A guard for the `compat` tests: third-party frameworks must never reach the internet from the test suite.

Frameworks fetch things on their own (LiteLLM its model-cost map, the Agents SDK its traces): `no_network` makes any
connection or name lookup beyond the loopback interface raise at once, so such a call fails the test loudly instead
of slowing it down or passing by luck.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


class NetworkBlocked(OSError):
    """A test tried to reach a host other than the loopback interface."""


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse connections and name lookups to anything but 127.0.0.1 / localhost for the test."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not _is_local(host) and not isinstance(address, str | bytes):
            raise NetworkBlocked(f"the test tried to connect to {address!r}; compat tests must stay on 127.0.0.1")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_local(host):
            raise NetworkBlocked(f"the test tried to look up {host!r}; compat tests must stay on 127.0.0.1")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
