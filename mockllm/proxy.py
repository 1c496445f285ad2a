"""The upstream proxy: forward a request to the real API, pass each chunk to the client the moment it arrives,
and hand the exchange to the recorder once it is complete.

The client's headers go upstream as they came (its API key included: used, never stored). A stream is never
buffered: each chunk read from upstream is written to the client before the next is read, and its SSE events are
noted with their arrival offsets on the way. An upstream that cannot be reached, times out or resets gets the
client a 502/504 in its protocol's error shape and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from .faults import error_reply
from .journal import Entry
from .matching import Scenarios
from .protocols.base import request_id
from .recording import Recorder, parse_upstream, prepare_out
from .transport import reset_connection

log = logging.getLogger("mockllm")

# Request headers that belong to one hop (or that httpx sets itself), and mockllm's own.
_DROPPED_REQUEST_HEADERS = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding", "upgrade", "te"}
)
# Response headers that describe the upstream connection, not the answer: the body reaches the client decoded.
_DROPPED_RESPONSE_HEADERS = frozenset(
    {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"}
)


class SSEParser:
    """Splits an SSE byte stream into events as the WHATWG rules do (CR, LF or CRLF line ends; `data:` lines
    joined with newlines; comments ignored), returning each event once its blank line arrives."""

    def __init__(self) -> None:
        self._buffer = b""
        self._pending = b""  # the raw lines of the event being read
        self._event: str | None = None
        self._data: list[str] = []

    def remainder(self) -> bytes:
        """What came after the last complete event (a stream that ended without its blank line), as received."""
        return self._pending + self._buffer

    def feed(self, chunk: bytes) -> list[tuple[str | None, str]]:
        """The events completed by `chunk`, as (event name, data)."""
        self._buffer += chunk
        done: list[tuple[str | None, str]] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return done
            end, after = cut
            line = self._buffer[:end].decode("utf-8", "replace")
            self._pending += self._buffer[:after]
            self._buffer = self._buffer[after:]
            if not line:
                if self._data:
                    done.append((self._event, "\n".join(self._data)))
                self._event, self._data, self._pending = None, [], b""
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Where the first line of `buffer` ends and the next begins (None when no full line is there yet)."""
    newline, ret = buffer.find(b"\n"), buffer.find(b"\r")
    if ret < 0 or (0 <= newline < ret):
        return None if newline < 0 else (newline, newline + 1)
    if ret + 1 == len(buffer):
        return None  # a CR at the end may be the first half of a CRLF
    return ret, ret + 2 if buffer[ret + 1 : ret + 2] == b"\n" else ret + 1


def upstream_url(base: str, path: str, query: str) -> str:
    """The upstream URL of a request: its path under the base URL (one `/v1` when both carry it)."""
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return base + path + (f"?{query}" if query else "")


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's request headers as they go upstream."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _DROPPED_REQUEST_HEADERS and not name.lower().startswith("x-mockllm-")
    }


class Proxy:
    """Forwards requests upstream; one HTTP client per event loop, closed with the server."""

    def __init__(self, recorder: Recorder, timeout: float = 600.0, connect_timeout: float = 10.0) -> None:
        self.recorder = recorder
        self.timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._client: httpx.AsyncClient | None = None

    @property
    def mode(self) -> str:
        return self.recorder.mode

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No environment proxies or .netrc: a test's traffic goes where --upstream says and nowhere else.
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class ProxyResponse:
    """An ASGI response relaying one upstream exchange, chunk by chunk, then recording it."""

    def __init__(
        self,
        proxy: Proxy,
        api: str,
        request: Request,
        body: bytes,
        parsed_body: Any,
        entry: Entry,
        finished: Callable[[Entry], None],
        dialect: str,
    ) -> None:
        self.proxy = proxy
        self.api = api
        self.method = request.method
        query = request.scope.get("query_string", b"").decode("latin-1")
        self.url = upstream_url(proxy.recorder.upstreams[api], request.url.path, query)
        self.headers = forwarded_headers(request.headers)
        self.body = body
        self.parsed_body = parsed_body
        self.entry = entry
        self.finished = finished
        self.dialect = dialect
        self.target = proxy.recorder.target()  # where this exchange is recorded, whatever happens meanwhile

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.entry
        status: int | None = None
        outcome = "complete"
        try:
            status, outcome = await self._relay(scope, send)
        finally:
            entry.finish(status, outcome)
            self.finished(entry)

    async def _relay(self, scope: Scope, send: Send) -> tuple[int | None, str]:
        entry = self.entry
        request = self.proxy.client().build_request(self.method, self.url, headers=self.headers, content=self.body)
        started = False
        try:
            upstream = await self.proxy.client().send(request, stream=True)
        except httpx.TimeoutException as exc:
            return await self._fail(send, 504, f"timed out ({type(exc).__name__}) after waiting for its answer")
        except httpx.HTTPError as exc:
            return await self._fail(send, 502, f"could not be reached: {_cause(exc)}")
        try:
            content_type = upstream.headers.get("content-type", "")
            streamed = content_type.startswith("text/event-stream")
            headers = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in upstream.headers.multi_items()
                if name.lower() not in _DROPPED_RESPONSE_HEADERS
            ]
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
            started = True
            parser = SSEParser()
            events: list[dict[str, Any]] = []
            parts: list[bytes] = []
            async for chunk in upstream.aiter_bytes():
                # The client gets each chunk before the next is read; if it hung up, the answer is still read to
                # the end, so that the recording is whole.
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                at = round(entry.elapsed(), 6)
                if streamed:
                    for name, data in parser.feed(chunk):
                        events.append({"event": name, "data": data, "at": at})
                        entry.chunk_times.append(at)
                else:
                    parts.append(chunk)
            if not streamed:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.TimeoutException as exc:
            what = f"timed out mid-answer ({type(exc).__name__})"
            return await self._broken(scope, send, upstream.status_code if started else None, 504, what)
        except httpx.HTTPError as exc:
            what = f"broke off mid-answer: {_cause(exc)}"
            return await self._broken(scope, send, upstream.status_code if started else None, 502, what)
        finally:
            await upstream.aclose()
        at = round(entry.elapsed(), 6)
        recorder = self.proxy.recorder
        body = None if streamed else b"".join(parts).decode("utf-8", "replace")
        raw = recorder.raw(upstream.status_code, upstream.headers, body, events if streamed else None, at)
        tail = parser.remainder()
        if streamed and tail:
            raw["tail"] = recorder.scrub.text(tail.decode("utf-8", "replace"))
        try:
            # In a thread: the write is flushed to disk (fsync), which must not stall the other streams.
            entry.scenario = await asyncio.to_thread(recorder.save, self.api, self.parsed_body, raw, self.target)
        except OSError as exc:
            # The client already has its answer; say loudly that the recording is lost.
            log.error("mockllm could not write the recording of %s %s: %s", self.method, self.url, exc)
            entry.error = {"status": upstream.status_code, "type": "recording_failed", "message": str(exc)}
            if streamed and not tail:  # after a cut-off last line a comment would glue onto it
                # An SSE comment line, which every SDK skips (WHATWG SSE, wire-formats.md §1): a client reading
                # the raw stream learns why nothing was recorded. A non-streamed body is complete already, and
                # a trailer is no option (HTTP/1.1 trailers need chunked encoding the client asked for): the
                # journal and the log tell that case.
                note = " ".join(f"mockllm could not record this answer: {exc}".split())
                await send({"type": "http.response.body", "body": f": {note}\n\n".encode(), "more_body": True})
        if streamed:
            # A stream ends only after its recording is saved (or reported), so that the note can reach it.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return upstream.status_code, "complete"

    async def _fail(self, send: Send, status: int, what: str) -> tuple[int, str]:
        """A 502/504 in the protocol's error shape, before any byte of the answer; nothing is recorded."""
        message = (
            f"mockllm proxies this request to the upstream {self.url}, which {what}. Check --upstream and that the "
            f"upstream is up; nothing was recorded."
        )
        error = error_reply(status, self.api, self.dialect, request_id(), message=message)
        self.entry.error = error.summary()
        log.warning("%s", message)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
        headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": error.body, "more_body": False})
        return status, "complete"

    async def _broken(
        self, scope: Scope, send: Send, sent: int | None, status: int, what: str
    ) -> tuple[int | None, str]:
        """The upstream failed after answering: a 502/504 if no status line went out yet, else a reset."""
        if sent is None:
            return await self._fail(send, status, what)
        # The status line is out: the client can only see the connection end, as it would from the real upstream.
        message = f"mockllm proxies this request to the upstream {self.url}, which {what}; nothing was recorded."
        log.warning("%s", message)
        self.entry.error = {"status": status, "type": "upstream_error", "message": message}
        await reset_connection(scope)
        return sent, "reset"


def _cause(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not str(cause):
        cause = cause.__cause__ or cause.__context__
    return f"{text} ({cause})" if cause is not None and str(cause) not in text else text


def make_proxy(settings: Any, scenarios: Scenarios) -> Proxy:
    """The proxy and recorder a server's settings ask for (`record` other than `none`)."""
    out = Path(settings.out) if settings.out else None
    if out is not None:
        prepare_out(out)  # a folder that cannot be written is an error now, not at the first recording
    secrets = tuple(value for value in (settings.api_key, settings.admin_token) if value)
    upstreams = parse_upstream(settings.upstream)
    recorder = Recorder(scenarios, settings.record, upstreams, tuple(settings.redact), out=out, secrets=secrets)
    return Proxy(recorder, timeout=settings.upstream_timeout)
