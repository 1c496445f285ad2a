"""The send loop: an ASGI response that paces frames by absolute deadlines and applies a fault.

It knows frames only by kind (head, content, tail), never by protocol, so every protocol shares it.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable, Coroutine, Sequence
from time import perf_counter
from typing import Any

from starlette.types import Receive, Scope, Send

from .journal import Entry
from .protocols.base import Frame
from .scenarios import FaultSpec
from .ticker import Run, due_batch, note_content, ticker, timer_pad
from .transport import GONE, PAUSED, chunk_writer, reset_connection, transport_of


class PacedResponse:
    """An ASGI response that paces frames by absolute deadlines and applies a fault."""

    def __init__(
        self,
        entry: Entry,
        status: int,
        headers: dict[str, str],
        frames: list[Frame],
        deadlines: Sequence[float],
        head_delay: float,
        fault: FaultSpec | None,
        fault_frames: Sequence[Frame] | Callable[[int], Sequence[Frame]],
        time_scale: float,
        finished: Callable[[Entry], None],
        streamed: bool = True,
        splice: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.entry = entry
        self.status = status
        self.headers = headers
        self.frames = frames
        # Seconds from arrival, packed: an open stream holds 8 bytes a frame, not a float object each (and none of
        # its own when they are a cached stream's, which every stream sending it shares; nothing writes to them).
        self.deadlines = deadlines if isinstance(deadlines, array) else array("d", deadlines)
        self.head_delay = head_delay
        self.fault = fault
        self.fault_frames = fault_frames
        self.time_scale = time_scale
        self.finished = finished
        self.streamed = streamed
        self.splice = splice  # this response's ids, into frames shared with other responses (framecache.py)
        self._gone: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._sent = 0  # frames sent before the fault

    def _cut(self) -> int:
        """Index of the first frame not sent before the fault: after `after` content frames."""
        assert self.fault is not None
        seen = 0
        for index, frame in enumerate(self.frames):
            if frame.kind == "content":
                if seen == self.fault.after:
                    return index
                seen += 1
        # Every content frame is sent: the fault comes before the tail (finish, usage, terminator).
        return next((i for i in range(len(self.frames) - 1, -1, -1) if self.frames[i].kind != "tail"), -1) + 1

    async def _sleep(self, delay: float, receive: Receive) -> bool:
        """Sleep `delay` seconds; False as soon as the client disconnects.

        One watcher task per response listens for `http.disconnect`, so that a stream nobody reads any more
        (a client that timed out on a stall) ends at once instead of sleeping on.
        """
        if self._gone is None:
            self._gone = asyncio.ensure_future(_wait_for_disconnect(receive))
        if delay <= 0:
            return not self._gone.done()
        done, _ = await asyncio.wait({self._gone}, timeout=delay)
        return not done

    async def _wait_until(self, deadline: float, receive: Receive) -> bool:
        """Sleep until `deadline` (seconds since arrival); False if the client went away meanwhile.

        Never early: an event loop may wake a timer before it is due (uvloop rounds to milliseconds), so the sleep
        is topped up until the deadline has passed."""
        delay = deadline - self.entry.elapsed()
        if delay <= 0:
            return True
        if self._transport is None:
            if not await self._sleep(delay, receive):
                return False
            delay = deadline - self.entry.elapsed()
        # The short waits between chunks: a plain sleep is much cheaper than a wait on the watcher, and the
        # transport tells afterwards whether the client is still there.
        while delay > 0:
            await asyncio.sleep(delay)
            delay = deadline - self.entry.elapsed()
        return self._transport is None or not self._transport.is_closing()

    def _raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as the server takes them; the dict is dropped, as nothing reads it once they are sent (a
        stream open for minutes should not hold them)."""
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        self.headers = {}
        return raw

    async def _send_body(self, stop: int, scope: Scope, receive: Receive, send: Send) -> bool:
        """Send frames[:stop] at their deadlines; False if the client went away.

        A paced stream on mockllm's own server goes on the loop's ticker (ticker.py), which writes each frame to the
        connection when it is due, and this task sleeps until the last is written. When the connection's buffer is
        full, the frame due goes through the server's `send`, which waits for the client to read; then the ticker
        takes over again."""
        if not self.deadlines or self.deadlines[-1] <= 0:
            return await self._send_frames(0, stop, receive, send)  # nothing to wait for: in place, at once
        write = chunk_writer(scope, self._transport)  # the transport __call__ looked up
        if write is None:  # another server (h11, or not mockllm's): a sleep and a `send` per frame
            return await self._paced(self._send_frames(0, stop, receive, send))
        loop = asyncio.get_running_loop()
        clock = ticker()
        entry = self.entry
        index = 0
        while index < stop:
            run = Run(self.frames, self.deadlines, entry.started, index, stop, write, self.splice, entry.chunk_times,
                      loop.create_future())  # fmt: skip
            write.watch(run.done)  # a client that leaves ends the stream at once, not at its next deadline
            outcome = await clock.run(run)
            if outcome == GONE:
                return False
            index = run.index
            if outcome == PAUSED:
                if not await self._send_frames(index, index + 1, receive, send):
                    return False
                index += 1
        return True

    async def _paced(self, sending: Coroutine[Any, Any, bool]) -> bool:
        """Run a paced send loop as a task of its own. Every wake-up of a coroutine resumes the whole chain of
        coroutines that awaits it (the server's, the app's, the guard's, this response's): a stream that sleeps
        fifty times would climb it fifty times. In its own task, each chunk wakes the loop alone, and the chain
        once at the end."""
        task = asyncio.ensure_future(sending)
        try:
            return await task
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _send_frames(self, start: int, stop: int, receive: Receive, send: Send) -> bool:
        """Send frames[start:stop] at their deadlines; False if the client went away.

        Frames already due go out together in one write (an unpaced stream; a head frame with its content frame),
        up to BATCH_BYTES a write: the same bytes, in fewer packets and far fewer trips through the server, and the
        server's flow control still holds a stream back when its client reads slowly. This is the loop every chunk
        of every stream goes through, so it keeps to locals and does no work a chunk does not need."""
        entry = self.entry
        frames = self.frames
        deadlines = self.deadlines
        transport = self._transport
        splice = self.splice
        times = entry.chunk_times
        origin = entry.started
        pad = timer_pad(asyncio.get_running_loop())
        index = start
        while index < stop:
            deadline = deadlines[index]
            now = perf_counter() - origin
            if now < deadline:
                if transport is None:
                    if not await self._wait_until(deadline, receive):
                        return False
                else:
                    # A short plain sleep is much cheaper than a wait on the disconnect watcher; the transport says
                    # afterwards whether the client is still there. Never early: a timer that fired before the
                    # deadline is topped up.
                    await asyncio.sleep(deadline - now + pad)
                    while (left := deadline - (perf_counter() - origin)) > 0:
                        await asyncio.sleep(left)
                now = perf_counter() - origin
            if transport is not None and transport.is_closing():
                # The client is gone (a write failed) but the server has not told us yet: writing on would only
                # make asyncio log "socket.send() raised exception" for every frame left.
                return False
            end, data = due_batch(frames, deadlines, index, stop, now)
            if splice is not None:
                data = splice(data)
            await send({"type": "http.response.body", "body": data, "more_body": True})
            note_content(frames, index, end, times, perf_counter() - origin)
            index = end
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._transport = transport_of(scope)
        started = False  # whether the status line went out
        outcome = "client_closed"  # until the body ends some other way
        try:
            if self.head_delay > 0 and not await self._wait_until(self.head_delay, receive):
                return
            fault = self.fault
            if fault is not None and not self.streamed:
                # A non-streamed reply has nothing to cut: the fault strikes while the client waits for the
                # status line (a reset connection, or a stall before a late answer).
                self.entry.fault = fault.kind
                if not await self._fault(scope, receive, send):
                    outcome = "reset" if fault.kind == "disconnect" else outcome
                    return
                fault = None
            await send({"type": "http.response.start", "status": self.status, "headers": self._raw_headers()})
            started = True
            cut = len(self.frames) if fault is None else self._cut()
            self._sent = cut
            if not await self._send_body(cut, scope, receive, send):
                return
            if fault is not None:
                self.entry.fault = fault.kind
                if not await self._fault(scope, receive, send):
                    outcome = "reset" if fault.kind == "disconnect" else outcome
                    return
                if fault.kind == "malformed" and not await self._send_frames(cut, len(self.frames), receive, send):
                    return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            outcome = "complete" if fault is None or fault.kind == "malformed" else "truncated"
        finally:
            if self._gone is not None:
                self._gone.cancel()
            self.entry.finish(self.status if started else None, outcome)
            self.finished(self.entry)

    async def _fault(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Apply the fault at the cut; True when the body should then go on to a clean end."""
        fault = self.fault
        assert fault is not None
        if fault.kind == "disconnect":
            if not await reset_connection(scope):
                # Not running on mockllm's own server: abort the response so the server drops the connection.
                raise ConnectionAbortedError("mockllm disconnect fault")
            return False
        if fault.kind == "stall":
            if fault.for_ is None:
                await self._sleep(float("inf"), receive)
                return False
            return await self._sleep(fault.for_ * self.time_scale, receive)
        if fault.kind == "error_event":
            # A protocol that numbers its events (Responses' sequence_number) renders them once it knows how many
            # frames went before.
            frames = self.fault_frames(self._sent) if callable(self.fault_frames) else self.fault_frames
            for frame in frames:
                await send({"type": "http.response.body", "body": frame.data, "more_body": True})
        elif fault.kind == "malformed":
            # One `data:` line that is not JSON; the caller then sends the rest of the stream.
            await send({"type": "http.response.body", "body": b'data: {"id": "malformed\n\n', "more_body": True})
        return True  # "end" (and the two above): the body ends cleanly here


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
