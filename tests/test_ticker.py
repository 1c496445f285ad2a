"""The ticker (ticker.py): one timer for every paced stream on a loop.

The unit tests drive it with a writer that records what it is given; the socket tests run paced streams through
mockllm's own server on both HTTP protocols, with a client that stops reading (the connection's write buffer fills,
the writer says PAUSED, and the server's `send` waits for the client) and one that leaves mid-stream."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import time
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from mockllm import MockServer, transport
from mockllm.journal import Entry
from mockllm.loading import load_text
from mockllm.protocols.base import Frame
from mockllm.ticker import Run, Ticker
from mockllm.transport import GONE, PAUSED

LOOPS: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    import uvloop

    LOOPS.append(pytest.param(uvloop.new_event_loop, id="uvloop"))


def _frames(count: int, kind: str = "content") -> list[Frame]:
    return [Frame(b"data: %d\n\n" % i, kind) for i in range(count)]  # type: ignore[arg-type]


class Writer:
    """Records (seconds since origin, bytes) of each write; answers `outcomes` in turn, then 0."""

    def __init__(self, origin: float, outcomes: list[int] | None = None, busy: float = 0.0) -> None:
        self.origin = origin
        self.outcomes = list(outcomes or [])
        self.busy = busy
        self.writes: list[tuple[float, bytes]] = []

    def __call__(self, data: bytes) -> int:
        outcome = self.outcomes.pop(0) if self.outcomes else 0
        if outcome == 0:
            self.writes.append((time.perf_counter() - self.origin, data))
            end = time.perf_counter() + self.busy
            while time.perf_counter() < end:  # a slow write: the kernel copying a large chunk
                pass
        return outcome


def _run(
    frames: list[Frame],
    deadlines: list[float],
    origin: float,
    writer: Callable[[bytes], int],
    times: list[float] | None = None,
) -> Run:
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    journal = [] if times is None else times
    return Run(frames, array("d", deadlines), origin, 0, len(frames), writer, None, journal, done)


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_many_streams_on_one_ticker_are_never_early(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def main() -> list[tuple[Writer, list[float]]]:
        ticker = Ticker(asyncio.get_running_loop())
        origin = time.perf_counter()
        runs = []
        for stream in range(20):  # sub-millisecond and odd deadlines, different per stream
            deadlines = [0.0004 * i + 0.0003 * ((i + stream) % 3) + 0.0001 * stream for i in range(40)]
            writer = Writer(origin)
            runs.append((writer, deadlines, ticker.run(_run(_frames(40), deadlines, origin, writer))))
        assert [await done for _, _, done in runs] == [0] * 20
        return [(writer, deadlines) for writer, deadlines, _ in runs]

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(main())
    for writer, deadlines in results:
        sent = [(at, data) for at, data in writer.writes]
        assert b"".join(data for _, data in sent) == b"".join(f.data for f in _frames(40))  # each frame once, in order
        position = 0
        for at, data in sent:
            count = data.count(b"\n\n")
            assert at >= max(deadlines[position : position + count])  # every frame of a batched write was due
            position += count


def test_due_frames_share_a_write_and_content_times_are_journaled() -> None:
    async def main() -> tuple[Writer, list[float], int]:
        ticker = Ticker(asyncio.get_running_loop())
        origin = time.perf_counter()
        writer = Writer(origin)
        times: list[float] = []
        frames = [*_frames(1, "head"), *_frames(3), *_frames(2, "tail")]
        deadlines = [0.01, 0.01, 0.1, 0.2, 0.2, 0.2]  # far enough apart for a busy machine to keep them apart
        outcome = await ticker.run(_run(frames, deadlines, origin, writer, times))
        return writer, times, outcome

    writer, times, outcome = asyncio.run(main())
    assert outcome == 0
    assert [data.count(b"\n\n") for _, data in writer.writes] == [2, 1, 3]  # head with the first content, tail last
    assert len(times) == 3
    assert times == sorted(times)
    assert times[0] >= 0.01


def test_a_busy_ticker_gives_the_loop_back_between_turns() -> None:
    """Writes that take longer than the gaps between deadlines must not keep the loop from reading requests."""

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        ticker = Ticker(loop)
        origin = time.perf_counter()
        writer = Writer(origin, busy=0.003)  # each write 3 ms, frames 1 ms apart: always something due
        done = ticker.run(_run(_frames(60), [0.001 * i for i in range(60)], origin, writer))
        turns = 0
        while not done.done():
            await asyncio.sleep(0)  # another task: a request being read
            turns += 1
        await done
        return turns, len(writer.writes)

    turns, writes = asyncio.run(main())
    # A turn writes what is due when it starts, in one write: a busy machine makes fewer, larger writes, but the
    # 60 ms of frames cannot all be due at the first turn.
    assert writes >= 3
    # The loop ran other work between the ticker's turns (the last turn may end the wait before the other task's
    # turn in the same pass). A ticker that kept writing while frames fell due would make one turn of them all.
    assert turns >= writes - 1


def test_paused_and_gone_hand_the_stream_back_at_the_frame_not_written() -> None:
    async def main(outcomes: list[int]) -> tuple[int, int, int]:
        ticker = Ticker(asyncio.get_running_loop())
        origin = time.perf_counter()
        writer = Writer(origin, outcomes)
        run = _run(_frames(5), [0.05 * i for i in range(5)], origin, writer)  # apart, even on a busy machine
        outcome = await ticker.run(run)
        return outcome, run.index, len(writer.writes)

    assert asyncio.run(main([0, 0, PAUSED])) == (PAUSED, 2, 2)
    assert asyncio.run(main([0, GONE])) == (GONE, 1, 1)


def test_a_cancelled_stream_is_dropped_and_a_failing_one_fails_alone() -> None:
    async def main() -> tuple[int, bytes]:
        ticker = Ticker(asyncio.get_running_loop())
        origin = time.perf_counter()
        cancelled, healthy = Writer(origin), Writer(origin)

        def broken(data: bytes) -> int:
            raise OSError("the socket broke")

        first = ticker.run(_run(_frames(3), [0.005, 0.01, 0.015], origin, cancelled))
        second = ticker.run(_run(_frames(3), [0.005, 0.01, 0.015], origin, broken))
        third = ticker.run(_run(_frames(3), [0.005, 0.01, 0.015], origin, healthy))
        first.cancel()
        with pytest.raises(OSError):
            await second
        assert await third == 0
        return len(cancelled.writes), b"".join(data for _, data in healthy.writes)

    assert asyncio.run(main()) == (0, b"".join(f.data for f in _frames(3)))  # the others' frames, whole


# -- through the server -----------------------------------------------------------------------------------------

BIG = "x" * 100_000
SCENARIOS = f"""
version: 1
scenarios:
  - id: big
    when: {{prompt: big}}
    reply:
      chunks: {json.dumps([f"{i:02d}{BIG}" for i in range(24)])}
      timing: {{ttft: 5ms, chunk: 2ms}}
  - id: short
    when: {{prompt: short}}
    reply:
      chunks: {json.dumps([f"s{i} " for i in range(10)])}
      timing: {{ttft: 5ms, chunk: 10ms}}
  - id: long
    when: {{prompt: long}}
    reply:
      chunks: {json.dumps([f"w{i} " for i in range(200)])}
      timing: {{ttft: 5ms, chunk: 10ms}}
"""


@pytest.fixture(params=["httptools", "h11"], scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    with MockServer(scenarios=load_text(SCENARIOS, "<test>"), http=request.param) as running:
        yield running


def _connect(server: MockServer, prompt: str, small_buffers: bool = False) -> socket.socket:
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": prompt}]}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a small window
    if small_buffers:
        # The server's side of the connection gets a small send buffer too, so that the kernel holds at most a few
        # hundred KB between them, whatever the machine's TCP autotuning allows, and the server's own buffer fills.
        peer = (host, sock.getsockname()[1])
        deadline = time.monotonic() + 5
        while (served := transport._transports.get(peer)) is None:
            assert time.monotonic() < deadline, "the server never filed the connection"
            time.sleep(0.005)
        served.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: "
    sock.sendall(f"{head}{len(body)}\r\n\r\n".encode() + body)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(1 << 20)
        assert chunk, data[-200:]
        data += chunk
    return data


def _content(raw: bytes) -> str:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    unchunked = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size, 16)
        unchunked, body = unchunked + rest[:length], rest[length + 2 :]
    text = ""
    for event in unchunked.decode().split("\n\n"):
        if event.startswith("data: {"):
            choices = json.loads(event[6:])["choices"]
            text += "".join(c["delta"].get("content") or "" for c in choices)
    return text


def test_a_client_that_stops_reading_gets_the_whole_stream_late(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[int] = []
    write = transport._HttpToolsChunks.__call__

    def spy(self: Any, data: bytes) -> int:
        said.append(write(self, data))
        return said[-1]

    monkeypatch.setattr(transport._HttpToolsChunks, "__call__", spy)
    server.reset()
    sock = _connect(server, "big", small_buffers=True)
    try:
        time.sleep(0.15)  # 2.4 MB is due within 0.05 s; the kernel holds a few hundred KB of it
        other = _connect(server, "short")  # another stream meanwhile keeps its schedule (0.1 s)
        started = time.monotonic()
        try:
            assert _content(_read_all(other)) == "".join(f"s{i} " for i in range(10))
        finally:
            other.close()
        assert time.monotonic() - started < 1.5  # a generous bound: not held back by the stream that waits
        raw = _read_all(sock)
    finally:
        sock.close()
    assert _content(raw) == "".join(f"{i:02d}{BIG}" for i in range(24))
    if server.http == "httptools":
        assert PAUSED in said  # the ticker handed the stream to the server's `send`, which waited for the client
    entries = {entry.scenario: entry for entry in server.state.journal.entries()}
    assert entries["big"].outcome == "complete"
    assert entries["big"].chunks == 24


def _ended(server: MockServer, within: float, why: str) -> Entry:
    """The journal's first entry once its response has ended; fails with `why` after `within` seconds."""
    deadline = time.monotonic() + within
    while not (entries := server.state.journal.entries()) or entries[0].outcome is None:
        assert time.monotonic() < deadline, why
        time.sleep(0.02)
    return entries[0]


def test_a_client_that_leaves_mid_stream_ends_its_stream(server: MockServer) -> None:
    server.reset()
    sock = _connect(server, "long")
    sock.recv(4096)  # the status line and headers
    time.sleep(0.1)
    sock.close()
    entry = _ended(server, within=5, why="the stream went on after its client left")
    assert entry.outcome == "client_closed"
    assert entry.chunks < 50  # stopped soon after the client left, not at the end of its 2 s


def test_a_client_that_leaves_a_slow_stream_ends_it_before_the_next_chunk_is_due() -> None:
    """The next chunk is 30 s away: the stream ends when the connection is lost, not then."""
    slow = "version: 1\nscenarios:\n- when: {prompt: slow}\n  reply: {chunks: [a, b], timing: {ttft: 5ms, chunk: 30s}}"
    with MockServer(scenarios=load_text(slow, "<test>"), http="httptools") as server:
        sock = _connect(server, "slow")
        sock.settimeout(5)
        seen = b""
        while b"data: {" not in seen:  # the first chunk has come
            seen += sock.recv(4096)
        sock.close()
        entry = _ended(server, within=10, why="the stream waited for its next chunk to notice the client left")
        assert entry.outcome == "client_closed"
        assert entry.duration is not None
        assert entry.duration < 5  # well before the next chunk (30 s): a generous bound


def test_an_sdk_that_closes_a_slow_stream_ends_it_on_the_server() -> None:
    """The OpenAI SDK closes a stream it stops reading (`stream.close()`): the server ends it then, not at its next
    chunk, 30 s away."""
    slow = "version: 1\nscenarios:\n- when: {prompt: slow}\n  reply: {chunks: [a, b], timing: {ttft: 5ms, chunk: 30s}}"
    with MockServer(scenarios=load_text(slow, "<test>"), http="httptools") as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "slow"}], stream=True
        )
        text = ""
        for chunk in stream:  # the role chunk, then the first content chunk
            text += chunk.choices[0].delta.content or ""
            if text:
                break
        assert text == "a"
        stream.close()
        entry = _ended(server, within=10, why="the stream waited for its next chunk to notice the SDK closed it")
        assert entry.outcome == "client_closed"
        assert entry.duration is not None
        assert entry.duration < 5
