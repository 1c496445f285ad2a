"""A raw-socket asyncio load generator for SSE chat streams: cheap enough to saturate one server core from one core.

    python bench/loadgen.py --port 8000 --prompt "fast stream" --connections 32 --duration 5 --expect-events 53
    python bench/loadgen.py --port 8000 --prompt "paced stream" --connections 500 --paced 0.1,0.02,50

httpx spends more CPU per event than the servers under test do, so it measures itself. Here each of N keep-alive
HTTP/1.1 connections is an `asyncio.Protocol` that writes one pre-built `POST /v1/chat/completions` and parses the
answer incrementally: the status line and headers, then a `Transfer-Encoding: chunked` or `Content-Length` body in
which SSE events are counted with `bytes.count(b"\\n\\n")` over each chunk's data (no per-event object in unpaced
mode). Unpaced, every connection sends its next request as soon as an answer ends, for a fixed duration after a
warm-up. Paced, every connection is opened first and then each sends one request, all in one pass, and every event's
arrival is timestamped with `time.perf_counter()` (events that arrive in one read share a timestamp). The result is
one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from workload import HEAD_EVENTS, MODEL, Stream, request_body

HEAD, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER, LENGTH_BODY, UNTIL_CLOSE = range(7)
MAX_HEAD = 65536
EARLY_TOLERANCE = 0.001  # seconds: an event this much before its deadline counts as early
CONNECT_AT_ONCE = 512  # connection attempts in flight at a time, below the servers' listen backlog of 2048


def raise_file_limit() -> int:
    """Raise the soft limit of open files to the hard limit (10,000 streams need 10,000 sockets); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def http_request(host: str, port: int, body: bytes) -> bytes:
    """The whole request, built once and written as is by every connection."""
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(slots=True)
class Tally:
    """What every connection of one run adds to."""

    request: bytes
    expect_events: int | None
    timed: bool  # timestamp events (paced runs)
    counting: bool = False
    stopping: bool = False
    requests: int = 0
    events: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    finished: list[Connection] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    wanted: int = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection: writes the request, parses the answer, tells the generator when it ends."""

    def __init__(self, tally: Tally, again: bool) -> None:
        self.tally = tally
        self.again = again  # send the next request when an answer ends (unpaced)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.state = HEAD
        self.remaining = 0
        self.pending_newline = False
        self.status = 0
        self.events = 0
        self.sent = 0.0
        self.in_flight = False
        self.times: list[float] = []
        self.outcome = ""  # of the last answer: "" when fine, else the error kind

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def send(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self._end("closed before the request")
            return
        self.state = HEAD
        self.events = 0
        self.pending_newline = False
        self.times = []
        self.in_flight = True
        self.sent = time.perf_counter()
        self.transport.write(self.tally.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            if self.state == UNTIL_CLOSE:
                self._complete()
            else:
                self._end("reset")
        if not self.closed.done():
            self.closed.set_result(None)

    def give_up(self) -> None:
        """Abort an answer still running when the run's time is up."""
        if self.in_flight:
            self._end("unfinished at timeout")
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, outcome: str) -> None:
        """An answer the generator cannot parse: counted, and the connection dropped."""
        self._end(outcome)
        if self.transport is not None:
            self.transport.abort()

    def _end(self, outcome: str) -> None:
        self.in_flight = False
        self.outcome = outcome
        tally = self.tally
        if outcome:
            tally.errors[outcome] += 1
        if tally.timed:
            tally.finished.append(self)
            if len(tally.finished) >= tally.wanted:
                tally.done.set()

    def _complete(self) -> None:
        tally = self.tally
        outcome = ""
        if self.status != 200:
            outcome = f"status {self.status}"
        elif tally.expect_events is not None and self.events != tally.expect_events:
            outcome = "short stream" if self.events < tally.expect_events else "long stream"
        if tally.counting:
            tally.requests += 1
            tally.latencies.append(time.perf_counter() - self.sent)
        self.state = HEAD
        self._end(outcome)
        if self.again and not tally.stopping:
            self.send()
        elif not tally.timed and self.transport is not None:
            self.transport.close()

    def _head(self, head: bytes) -> None:
        try:
            self.status = int(head[9:12])
        except ValueError:
            self.status = 0
        lower = head.lower()
        if b"\r\ntransfer-encoding: chunked" in lower:
            self.state = CHUNK_SIZE
            return
        start = lower.find(b"\r\ncontent-length:")
        if start < 0:
            self.state = UNTIL_CLOSE
            return
        stop = lower.find(b"\r\n", start + 2)
        try:
            self.remaining = int(lower[start + 17 : stop if stop > 0 else len(lower)])
        except ValueError:
            self._fail("bad content-length")
            return
        self.state = LENGTH_BODY
        if self.remaining == 0:
            self._complete()

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        pos = 0
        end = len(data)
        while pos < end and self.in_flight:
            state = self.state
            if state in (CHUNK_DATA, LENGTH_BODY, UNTIL_CLOSE):
                stop = end if state == UNTIL_CLOSE else min(end, pos + self.remaining)
                found = data.count(b"\n\n", pos, stop)
                # An event boundary split between two chunks: "...\n" then "\n...".
                if self.pending_newline and data[pos] == 10 and (stop - pos < 2 or data[pos + 1] != 10):
                    found += 1
                self.pending_newline = data[stop - 1] == 10 and (stop - pos < 2 or data[stop - 2] != 10)
                if found:
                    self.events += found
                    if self.tally.counting:
                        self.tally.events += found
                    if self.tally.timed:
                        self.times.extend([time.perf_counter()] * found)
                self.remaining -= stop - pos
                pos = stop
                if self.remaining == 0 and state != UNTIL_CLOSE:
                    if state == CHUNK_DATA:
                        self.state = CHUNK_CRLF
                        self.remaining = 2
                    else:
                        self._complete()
            elif state == CHUNK_CRLF:
                take = min(end - pos, self.remaining)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = CHUNK_SIZE
            elif state in (CHUNK_SIZE, TRAILER):
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self.buffer = data[pos:]
                    return
                line = data[pos:eol]
                pos = eol + 2
                if state == TRAILER:
                    if not line:
                        self._complete()
                    continue
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    self._fail("bad chunk size")
                    return
                if size:
                    self.state = CHUNK_DATA
                    self.remaining = size
                else:
                    self.state = TRAILER
            else:
                separator = data.find(b"\r\n\r\n", pos)
                if separator < 0:
                    if end - pos > MAX_HEAD:
                        self._fail("head over 64 KiB")
                        return
                    self.buffer = data[pos:]
                    return
                head = data[pos:separator]
                pos = separator + 4
                self._head(head)


async def _open(host: str, port: int, tally: Tally, again: bool, gate: asyncio.Semaphore) -> Connection | None:
    loop = asyncio.get_running_loop()
    async with gate:
        try:
            _, protocol = await loop.create_connection(lambda: Connection(tally, again), host, port)
        except OSError as exc:
            tally.errors[f"connect: {exc.strerror or exc}"] += 1
            return None
    return protocol


async def _open_all(host: str, port: int, tally: Tally, count: int, again: bool) -> list[Connection]:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    opened = await asyncio.gather(*(_open(host, port, tally, again, gate) for _ in range(count)))
    return [connection for connection in opened if connection is not None]


async def _close_all(connections: list[Connection], grace: float) -> None:
    for connection in connections:
        if connection.transport is not None and not connection.in_flight:
            connection.transport.close()
    pending = [connection.closed for connection in connections]
    if pending:
        await asyncio.wait(pending, timeout=grace)
    for connection in connections:
        if connection.transport is not None and not connection.closed.done():
            connection.transport.abort()


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max, in milliseconds (nearest rank); empty when there are no values."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    return {"p50": rank(0.50), "p99": rank(0.99), "max": ordered[-1] * 1000}


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, every thread) of another process so far; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def unpaced(
    host: str,
    port: int,
    request: bytes,
    connections: int,
    duration: float,
    warmup: float,
    expect_events: int | None,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Every connection sends requests back to back; events and answers are counted after `warmup` for `duration`.

    With `server_pid`, the share of one core the server and this generator used while counting: a server below
    ~100% was not saturated (the generator, or another process on its core, held it back)."""
    tally = Tally(request, expect_events, timed=False)
    opened = await _open_all(host, port, tally, connections, again=True)
    for connection in opened:
        connection.send()
    await asyncio.sleep(warmup)
    tally.errors.clear()
    tally.counting = True
    started = time.perf_counter()
    server_cpu = cpu_seconds(server_pid)
    own_cpu = time.process_time()
    await asyncio.sleep(duration)
    tally.counting = False
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - server_cpu
    own_cpu = time.process_time() - own_cpu
    tally.stopping = True
    await _close_all(opened, grace=5.0)
    return {
        "mode": "unpaced",
        "connections": len(opened),
        "seconds": elapsed,
        "requests": tally.requests,
        "events": tally.events,
        "requests_per_s": tally.requests / elapsed,
        "events_per_s": tally.events / elapsed,
        "latency_ms": percentiles(tally.latencies),
        "server_cpu": server_cpu / elapsed if server_pid is not None else None,
        "generator_cpu": own_cpu / elapsed,
        "errors": dict(tally.errors),
    }


def stream_errors(connections: list[Connection], stream: Stream) -> dict[str, Any]:
    """TTFT, gaps, last content event and every content event against the nominal schedule (seconds late)."""
    ttft: list[float] = []
    gaps: list[float] = []
    last: list[float] = []
    late: list[float] = []
    drift: list[float] = []  # the chunks after the first against the first's own arrival
    early = 0
    first = HEAD_EVENTS
    for connection in connections:
        times = connection.times
        if connection.outcome or len(times) < first + stream.chunks:
            continue
        sent = connection.sent
        ttft.append(times[first] - sent - stream.ttft)
        last.append(times[first + stream.chunks - 1] - sent - stream.last)
        for k in range(stream.chunks):
            lateness = times[first + k] - sent - (stream.ttft + k * stream.gap)
            late.append(lateness)
            if lateness < -EARLY_TOLERANCE:
                early += 1
            if k:
                drift.append(times[first + k] - times[first] - k * stream.gap)
                gaps.append(abs(times[first + k] - times[first + k - 1] - stream.gap))
    return {
        "streams_measured": len(ttft),
        "ttft_ms": percentiles(ttft),
        "gap_ms": percentiles(gaps),
        "last_ms": percentiles(last),
        "late_ms": percentiles(late),
        "drift_ms": percentiles(drift),
        "early": early,
    }


async def paced(
    host: str,
    port: int,
    request: bytes,
    streams: int,
    stream: Stream,
    timeout: float,
    server_pid: int | None = None,
    spread: float = 0.0,
) -> dict[str, Any]:
    """Open `streams` connections, then send one request on each, in one pass or evenly over `spread` seconds, and
    time every event."""
    tally = Tally(request, stream.events, timed=True)
    opened = await _open_all(host, port, tally, streams, again=False)
    tally.wanted = len(opened)
    if not opened:
        tally.done.set()
    tally.counting = True
    started = time.perf_counter()
    server_cpu = cpu_seconds(server_pid)
    own_cpu = time.process_time()
    if spread > 0:
        loop = asyncio.get_running_loop()
        for index, connection in enumerate(opened):
            loop.call_later(spread * index / len(opened), connection.send)
    else:
        for connection in opened:
            connection.send()
    try:
        await asyncio.wait_for(tally.done.wait(), timeout + spread)
    except TimeoutError:
        for connection in opened:
            connection.give_up()
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - server_cpu
    own_cpu = time.process_time() - own_cpu
    await _close_all(opened, grace=2.0)
    return {
        "mode": "paced",
        "connections": len(opened),
        "seconds": elapsed,
        "requests": tally.requests,
        "events": tally.events,
        "server_cpu": server_cpu / elapsed if server_pid is not None else None,
        "generator_cpu": own_cpu / elapsed,
        "errors": dict(tally.errors),
        **stream_errors(opened, stream),
    }


def run(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prompt", required=True, help="the user message (it selects the stream)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="unpaced: seconds counted")
    parser.add_argument("--warmup", type=float, default=0.5, help="unpaced: seconds before counting")
    parser.add_argument("--expect-events", type=int, help="unpaced: events in a whole answer (fewer is an error)")
    parser.add_argument("--paced", metavar="TTFT,GAP,CHUNKS", help="one stream per connection on this schedule")
    parser.add_argument("--timeout", type=float, default=120.0, help="paced: give up on streams after this long")
    parser.add_argument("--spread", type=float, default=0.0, help="paced: send the requests evenly over this long")
    parser.add_argument("--server-pid", type=int, help="report the CPU share of this process too")
    args = parser.parse_args()
    raise_file_limit()
    request = http_request(args.host, args.port, request_body(args.prompt, args.model))
    if args.paced:
        ttft, gap, chunks = args.paced.split(",")
        stream = Stream(args.prompt, int(chunks), float(ttft), float(gap))
        coroutine = paced(
            args.host, args.port, request, args.connections, stream, args.timeout, args.server_pid, args.spread
        )
        result = run(coroutine)
    else:
        coroutine = unpaced(
            args.host,
            args.port,
            request,
            args.connections,
            args.duration,
            args.warmup,
            args.expect_events,
            args.server_pid,
        )
        result = run(coroutine)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
