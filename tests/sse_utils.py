"""Raw SSE helpers for tests: read a stream's events exactly as they came off the socket."""

from __future__ import annotations

import json
from typing import Any

import httpx


def split_events(raw: bytes) -> list[bytes]:
    """Split an SSE body on blank lines; assert that every event ends with one."""
    assert raw.endswith(b"\n\n"), f"the body does not end with a blank line: {raw[-40:]!r}"
    return raw[:-2].split(b"\n\n")


def post_raw(url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    """POST a JSON body and read the whole response."""
    with httpx.Client(timeout=10) as client:
        return client.post(url + path, json=body, headers=headers or {})


def stream_data(url: str, body: dict[str, Any], path: str = "/v1/chat/completions") -> list[Any]:
    """The parsed `data:` payloads of a streamed response (`[DONE]` kept as the string)."""
    response = post_raw(url, path, body)
    assert response.status_code == 200, response.text
    out: list[Any] = []
    for event in split_events(response.content):
        lines = event.split(b"\n")
        data = [line[len(b"data: ") :] for line in lines if line.startswith(b"data: ")]
        assert len(data) == 1, event
        out.append("[DONE]" if data[0] == b"[DONE]" else json.loads(data[0]))
    return out


_open_clients: list[Any] = []


def openai_client(server: Any, **options: Any) -> Any:
    """An `openai.OpenAI` client for the server (no retries unless asked); closed after the test by conftest."""
    import openai

    options.setdefault("max_retries", 0)
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", **options)
    _open_clients.append(client)
    return client


def close_clients() -> None:
    """Close every client `openai_client` made, so no socket is left to the garbage collector."""
    while _open_clients:
        _open_clients.pop().close()
