"""Shared test helpers: a real mockllm server on 127.0.0.1, a free port, stopped by the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sse_utils import close_clients

from mockllm import MockServer
from mockllm.loading import load_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "scenarios"
DATA = Path(__file__).resolve().parent / "data"

StartServer = Callable[..., MockServer]


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    close_clients()


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start `MockServer(paths, **options)` for the test; every server started is stopped at teardown."""
    servers: list[MockServer] = []

    def start(*paths: str | Path, scenarios_yaml: str | None = None, **options: Any) -> MockServer:
        options.setdefault("time_scale", 0)
        # Scenarios given as text are the server's own (like files), so that a reset keeps them.
        scenarios = load_text(scenarios_yaml, "<test>") if scenarios_yaml is not None else []
        server = MockServer(list(paths), scenarios=scenarios, **options)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def examples(start_server: StartServer) -> MockServer:
    """A server on the repository's example scenarios, with every delay scaled to zero."""
    return start_server(EXAMPLES)
