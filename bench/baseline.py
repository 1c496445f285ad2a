"""The reference servers: what uvicorn can do with the same bytes and no framework (and with Starlette's streaming).

    python bench/baseline.py --port 8001 --streams '[["fast stream", 50, 0, 0]]' [--coalesce | --starlette]

The raw baseline is a bare ASGI callable on `uvicorn.Server(loop="uvloop", http="httptools")`, access log off. It
reads the body, picks the stream whose JSON-encoded prompt the body contains, and sends the SSE events of a mockllm
chat stream, encoded once at start-up: a role chunk, one chunk per content piece, a finish chunk and
`data: [DONE]`, one ASGI message (one HTTP chunk) each. A paced stream sleeps to absolute deadlines from the
request's arrival (`asyncio.sleep` to `start + deadline`), as mockllm's pacing does. `--coalesce` joins the events
due at the same time into one message (one write), the ceiling for a server that batches its writes; `--starlette`
serves the same events through a Starlette route and `StreamingResponse`, to show what the framework costs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Literal

import uvicorn
from workload import MODEL, Stream

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

COMPLETION_ID = "chatcmpl-BaseLineBaseLineBaseLineBaseLin"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-request-id", b"req_00000000000000000000000000000000"),
    (b"openai-version", b"2020-10-01"),
]


def _event(delta: dict[str, Any], finish: str | None, created: int) -> bytes:
    chunk = {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_mockllm01",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "obfuscation": "AAAAAAAA",
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def sse_events(stream: Stream, created: int = 1_700_000_000) -> list[tuple[float, bytes]]:
    """Every event of the stream with its deadline (seconds after the request arrived), as mockllm sends it."""
    deadlines = [stream.ttft + k * stream.gap for k in range(stream.chunks)]
    events = [(deadlines[0], _event({"role": "assistant", "content": "", "refusal": None}, None, created))]
    for due, text in zip(deadlines, stream.texts(), strict=True):
        events.append((due, _event({"content": text}, None, created)))
    events.append((deadlines[-1], _event({}, "stop", created)))
    events.append((deadlines[-1], b"data: [DONE]\n\n"))
    return events


def coalesced(events: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """Events due at the same time joined into one write (all of an unpaced stream; the role and first content chunk,
    and the last content chunk, the finish chunk and `[DONE]` of a paced one)."""
    joined: list[tuple[float, bytes]] = []
    for due, event in events:
        if joined and joined[-1][0] == due:
            joined[-1] = (due, joined[-1][1] + event)
        else:
            joined.append((due, event))
    return joined


class Catalogue:
    """The streams by prompt, their events encoded once (and joined by deadline when `coalesce`)."""

    def __init__(self, streams: list[Stream], coalesce: bool = False) -> None:
        self.entries = []
        for stream in streams:
            events = sse_events(stream)
            self.entries.append(
                (json.dumps(stream.prompt).encode(), stream.paced, coalesced(events) if coalesce else events)
            )

    def pick(self, body: bytes) -> tuple[bool, list[tuple[float, bytes]]] | None:
        for prompt, paced, events in self.entries:
            if prompt in body:
                return paced, events
        return None


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _plain(send: Send, status: int, text: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


def raw_app(catalogue: Catalogue) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The bare ASGI callable."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await _plain(send, 200, b"ok")
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        chosen = catalogue.pick(await _read_body(receive))
        if chosen is None:
            await _plain(send, 404, b"no stream for this prompt")
            return
        paced, events = chosen
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        for due, event in events:
            if paced:
                wait = start + due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def starlette_app(catalogue: Catalogue) -> Any:
    """The same events through Starlette's routing and `StreamingResponse`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def chat(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        start = loop.time()
        chosen = catalogue.pick(await request.body())
        if chosen is None:
            return PlainTextResponse("no stream for this prompt", status_code=404)
        paced, events = chosen

        async def body() -> AsyncIterator[bytes]:
            for due, event in events:
                if paced:
                    wait = start + due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                yield event

        return StreamingResponse(body(), headers={k.decode(): v.decode() for k, v in HEADERS})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)]
    return Starlette(routes=routes)


def fastest() -> tuple[Literal["uvloop", "asyncio"], Literal["httptools", "h11"]]:
    """uvloop and httptools when installed, else what uvicorn falls back to."""
    return (
        "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "httptools" if importlib.util.find_spec("httptools") else "h11",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", required=True, help="JSON list of [prompt, chunks, ttft, gap]")
    parser.add_argument("--starlette", action="store_true", help="serve through Starlette's StreamingResponse")
    parser.add_argument("--coalesce", action="store_true", help="one write for the events due at the same time")
    args = parser.parse_args()
    streams = [Stream(p, int(n), float(t), float(g)) for p, n, t, g in json.loads(args.streams)]
    catalogue = Catalogue(streams, coalesce=args.coalesce)
    app = starlette_app(catalogue) if args.starlette else raw_app(catalogue)
    loop, http = fastest()
    config = uvicorn.Config(
        app, host=args.host, port=args.port, loop=loop, http=http, access_log=False, log_level="warning", lifespan="off"
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
