"""When each frame goes out: absolute deadlines from the start of the response, so error never accumulates."""

from __future__ import annotations

import random
from array import array
from collections.abc import MutableMapping, Sequence

from .protocols.base import Frame
from .scenarios import TimingSpec


def schedule(frames: Sequence[Frame], timing: TimingSpec | None, scale: float, rng: random.Random) -> list[float]:
    """Deadline (seconds from the request's arrival) of every frame.

    Content frame k is due at `ttft` plus k gaps, each gap drawn as `chunk` plus seeded normal jitter and
    clamped at zero. Head frames (role chunk, message_start ...) go out with the next content frame; tail frames
    (finish, usage, terminator) right after the last one. The status line goes out at `headers`, and no frame
    before it.
    """
    if timing is None or scale == 0:
        return [0.0] * len(frames)
    start = (timing.headers or 0.0) * scale
    gap = timing.gap()
    jitter = timing.jitter or 0.0
    first = (timing.ttft or 0.0) + (rng.gauss(0.0, jitter) if jitter else 0.0)
    due = max(start, max(0.0, first) * scale)
    deadlines: list[float] = [0.0] * len(frames)
    seen_content = False
    pending: list[int] = []
    for index, frame in enumerate(frames):
        if frame.kind == "content":
            if seen_content:
                step = gap + (rng.gauss(0.0, jitter) if jitter else 0.0)
                due += max(0.0, step) * scale
            seen_content = True
            for waiting in pending:
                deadlines[waiting] = due
            pending.clear()
            deadlines[index] = due
        elif frame.kind == "head":
            pending.append(index)
        else:
            deadlines[index] = due
    for waiting in pending:
        deadlines[waiting] = due
    return deadlines


def remembered(
    frames: Sequence[Frame],
    timing: TimingSpec | None,
    scale: float,
    rng: random.Random,
    kept: MutableMapping[float, array[float]] | None,
) -> Sequence[float]:
    """`schedule`, worked out once for frames that are kept and reused (framecache.py): without jitter the deadlines
    of the same frames at the same time scale are the same every time, and the generator is not drawn from. `kept`
    holds them by time scale, packed, shared read-only by every stream that sends those frames."""
    if kept is None or (timing is not None and timing.jitter):
        return schedule(frames, timing, scale, rng)
    found = kept.get(scale)
    if found is None:
        found = kept[scale] = array("d", schedule(frames, timing, scale, rng))
    return found
