"""Deadlines: absolute from the request's arrival, seeded jitter clamped at zero, head and tail placement."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import random
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest

from mockllm.journal import Entry
from mockllm.pacing import remembered, schedule
from mockllm.protocols.base import Frame
from mockllm.scenarios import TimingSpec
from mockllm.streaming import PacedResponse
from mockllm.timing import DurationError, parse_duration

HEAD, CONTENT, TAIL = Frame(b"h", "head"), Frame(b"c", "content"), Frame(b"t", "tail")


def test_no_timing_sends_everything_at_once() -> None:
    assert schedule([HEAD, CONTENT, TAIL], None, 1.0, random.Random(0)) == [0.0, 0.0, 0.0]


def test_ttft_then_fixed_gaps_with_head_and_tail_placement() -> None:
    frames = [HEAD, CONTENT, CONTENT, HEAD, CONTENT, TAIL, TAIL]
    deadlines = schedule(frames, TimingSpec(ttft=0.3, chunk=0.1), 1.0, random.Random(0))
    assert deadlines == pytest.approx([0.3, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5])


def test_time_scale_multiplies_and_zero_is_instant() -> None:
    timing = TimingSpec(ttft=1, chunk=0.5)
    assert schedule([CONTENT, CONTENT], timing, 0.5, random.Random(0)) == pytest.approx([0.5, 0.75])
    assert schedule([CONTENT, CONTENT], timing, 0.0, random.Random(0)) == [0.0, 0.0]


def test_headers_delay_bounds_the_first_chunk() -> None:
    deadlines = schedule([HEAD, CONTENT], TimingSpec(headers=1.0, ttft=0.2), 1.0, random.Random(0))
    assert deadlines == pytest.approx([1.0, 1.0])


def test_tokens_per_second() -> None:
    deadlines = schedule([CONTENT] * 3, TimingSpec(tokens_per_second=10), 1.0, random.Random(0))
    assert deadlines == pytest.approx([0.0, 0.1, 0.2])


def test_jitter_is_seeded_and_never_goes_backwards() -> None:
    timing = TimingSpec(chunk=0.01, jitter=0.05)
    first = schedule([CONTENT] * 50, timing, 1.0, random.Random(42))
    assert first == schedule([CONTENT] * 50, timing, 1.0, random.Random(42))
    assert first != schedule([CONTENT] * 50, timing, 1.0, random.Random(43))
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert min(gaps) == 0.0  # a negative draw is clamped at zero, so some gaps are exactly zero
    assert max(gaps) > 0.01


def test_kept_frames_keep_their_deadlines_unless_jitter_draws_new_ones() -> None:
    frames = [HEAD, CONTENT, CONTENT, TAIL]
    kept: dict[float, Any] = {}
    steady = TimingSpec(ttft=0.1, chunk=0.02)
    rng = random.Random(0)
    first = remembered(frames, steady, 1.0, rng, kept)
    assert list(first) == schedule(frames, steady, 1.0, random.Random(0)) == pytest.approx([0.1, 0.1, 0.12, 0.12])
    assert remembered(frames, steady, 1.0, rng, kept) is first  # worked out once, shared
    assert list(remembered(frames, steady, 2.0, rng, kept)) == pytest.approx([0.2, 0.2, 0.24, 0.24])  # time scale 2
    assert rng.random() == random.Random(0).random()  # no draw from the seeded generator without jitter
    shaky = TimingSpec(ttft=0.1, chunk=0.02, jitter=0.01)
    draws = [list(remembered(frames, shaky, 1.0, rng, {})) for _ in range(2)]
    assert draws[0] != draws[1]  # jitter is drawn for every request, as before
    assert remembered(frames, steady, 1.0, rng, None) == schedule(frames, steady, 1.0, rng)  # frames not kept


def test_deadlines_do_not_accumulate_error() -> None:
    deadlines = schedule([CONTENT] * 1001, TimingSpec(chunk=0.001), 1.0, random.Random(0))
    assert deadlines[-1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), (3, 3.0), (0.5, 0.5), (".5s", 0.5)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-1s", -2, "soon", "1h", True, None, "1.5 seconds"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(DurationError, match="250ms"):
        parse_duration(text)


def _send_times(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> list[tuple[float, float]]:
    """(deadline, sent) of every frame of a paced stream of sub-millisecond and odd gaps, on the given loop."""
    deadlines = [0.0005 * i + 0.0003 * (i % 3) for i in range(60)]
    frames = [Frame(b"data: x\n\n", "content") for _ in deadlines]
    entry = Entry(1, 0.0, "POST", "/v1/chat/completions")
    sent: list[tuple[float, float]] = []
    index = 0

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal index
        if message["type"] == "http.response.body" and message["body"]:
            now = entry.elapsed()
            for frame in message["body"].split(b"\n\n")[:-1]:
                assert frame == b"data: x"
                sent.append((deadlines[index], now))
                index += 1

    async def receive() -> MutableMapping[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def run() -> None:
        entry.started = time.perf_counter()
        response = PacedResponse(entry, 200, {}, frames, deadlines, 0.0, None, [], 1.0, lambda _: None)
        await response({"type": "http", "client": None}, receive, send)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(run())
    return sent


LOOPS: list[Any] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    import uvloop

    LOOPS.append(pytest.param(uvloop.new_event_loop, id="uvloop"))  # its timers round to milliseconds


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_no_frame_leaves_before_its_deadline(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    sent = _send_times(loop_factory)
    assert len(sent) == 60
    early = [(deadline, at) for deadline, at in sent if at < deadline]
    assert early == []  # late is possible on a busy machine; early never
