"""One timer for every paced stream on an event loop.

A paced stream that sleeps before each chunk costs, per chunk, a future, a timer, a wake-up of its task and a trip
through the server's `send` before the bytes reach the socket. At a thousand streams of fifty chunks a second that
is most of a core. The ticker keeps every open stream's next deadline in one heap under one timer: when the timer
fires it writes each due stream's frames straight to its connection (`transport.chunk_writer`), files the stream's
next deadline, and arms the timer for the earliest one left. A stream's task sleeps once, until its last frame is
written, its client is gone, or the connection's write buffer is full (then the task sends through the server,
which waits for the client to read, and comes back).

Never early: a timer may fire before it is due (uvloop counts in whole milliseconds), so the ticker writes only the
frames whose deadline has passed on `perf_counter` and arms itself again for the rest.
"""

from __future__ import annotations

import asyncio
import weakref
from array import array
from collections.abc import Callable
from heapq import heappop, heappush, heapreplace
from itertools import count
from time import perf_counter

from .protocols.base import Frame

BATCH_BYTES = 64 * 1024  # frames due together are joined into writes of about this size

_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker] = weakref.WeakKeyDictionary()


class Run:
    """One stream's frames [index, stop) on the ticker; `done` gets the outcome when the ticker lets go of it."""

    __slots__ = ("deadlines", "done", "frames", "index", "origin", "splice", "stop", "times", "write")

    def __init__(
        self,
        frames: list[Frame],
        deadlines: array[float],
        origin: float,
        index: int,
        stop: int,
        write: Callable[[bytes], int],  # 0 when written, else PAUSED or GONE (transport.py)
        splice: Callable[[bytes], bytes] | None,
        times: list[float],
        done: asyncio.Future[int],
    ) -> None:
        self.frames = frames
        self.deadlines = deadlines
        self.origin = origin  # perf_counter at the request's arrival; deadlines count from it
        self.index = index
        self.stop = stop
        self.write = write
        self.splice = splice
        self.times = times  # when each content frame was written, seconds from origin (the journal's)
        self.done = done

    def step(self, now: float) -> float | None:
        """Write the frames due at `now` (up to BATCH_BYTES); the next deadline, or None when the run is over."""
        index = self.index
        frames = self.frames
        origin = self.origin
        end, data = due_batch(frames, self.deadlines, index, self.stop, now - origin)
        if self.splice is not None:
            data = self.splice(data)
        outcome = self.write(data)
        if outcome:  # PAUSED or GONE: nothing was written; the stream's task takes over at this frame
            self.done.set_result(outcome)
            return None
        note_content(frames, index, end, self.times, perf_counter() - origin)
        self.index = end
        if end >= self.stop:
            self.done.set_result(0)
            return None
        return origin + self.deadlines[end]


def due_batch(frames: list[Frame], deadlines: array[float], index: int, stop: int, elapsed: float) -> tuple[int, bytes]:
    """The bytes of frames[index:end] to write at `elapsed` (seconds since arrival), and `end`: the frame at `index`
    and those after it already due, up to BATCH_BYTES (the same bytes in fewer writes; the server's flow control
    still holds back a stream whose client reads slowly)."""
    end = index + 1
    if end < stop and deadlines[end] <= elapsed:
        size = len(frames[index].data)
        while end < stop and deadlines[end] <= elapsed and size < BATCH_BYTES:
            size += len(frames[end].data)
            end += 1
        return end, b"".join([f.data for f in frames[index:end]])
    return end, frames[index].data


def note_content(frames: list[Frame], index: int, end: int, times: list[float], sent: float) -> None:
    """Journal when the content frames among frames[index:end] were written (seconds since arrival)."""
    for position in range(index, end):
        if frames[position].kind == "content":
            times.append(sent)


class Ticker:
    """The heap of every paced stream's next deadline on one loop, under one timer (module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, Run]] = []
        self.order = count()  # ties on a deadline go in the order they were filed
        self.timer: asyncio.TimerHandle | None = None
        self.armed = float("inf")  # the perf_counter deadline the timer is set for
        self.pad = timer_pad(loop)

    def run(self, run: Run) -> asyncio.Future[int]:
        """File `run` at its next frame's deadline; its `done` future is the outcome (0, PAUSED or GONE)."""
        due = run.origin + run.deadlines[run.index]
        heappush(self.heap, (due, next(self.order), run))
        if due < self.armed:
            self._arm(due)
        return run.done

    def _arm(self, due: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.armed = due
        delay = due - perf_counter()
        self.timer = self.loop.call_later(delay + self.pad if delay > 0 else 0, self._fire)

    def _fire(self) -> None:
        """Write what is due now, then give the loop back: frames that fall due meanwhile wait for the next
        turn, so that requests and reads are never starved by a ticker that always finds more to write."""
        self.timer = None
        self.armed = float("inf")
        heap = self.heap
        now = perf_counter()
        while heap and heap[0][0] <= now:
            run = heap[0][2]
            if run.done.done():  # its task was cancelled (the server is stopping)
                heappop(heap)
                continue
            try:
                due = run.step(now)
            except Exception as exc:  # a failed stream fails alone, in its own task
                heappop(heap)
                if not run.done.done():
                    run.done.set_exception(exc)
                continue
            if due is None:
                heappop(heap)
            else:
                heapreplace(heap, (due, next(self.order), run))
        if heap:
            self._arm(heap[0][0])


def timer_pad(loop: asyncio.AbstractEventLoop) -> float:
    """How much later than its deadline a timer aims: uvloop counts timers in whole milliseconds and wakes a quarter
    of them up to a millisecond early, each then armed again; half a millisecond more makes that one in a hundred,
    for half a millisecond of lateness. asyncio's own loop wakes on time."""
    return 0.0005 if type(loop).__module__.startswith("uvloop") else 0.0


def ticker() -> Ticker:
    """The running loop's ticker."""
    loop = asyncio.get_running_loop()
    found = _tickers.get(loop)
    if found is None:
        found = _tickers[loop] = Ticker(loop)
    return found
