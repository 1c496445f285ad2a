"""Replay of a recorded answer (`reply.raw`): the recorded bytes, at the recorded offsets times `--time-scale`.

A recording goes through the same send loop as a synthesised reply, so `timing:` and `fault:` on it work as on
any reply: a user can take a real stream and cut it, stall it or break it after event N. Events are classified
by what they carry (content deltas are "content" for faults and pacing; what comes before is "head", after is
"tail"), without knowing which API they came from.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from . import pacing
from .faults import error_event_frames
from .journal import Entry
from .protocols.base import Frame, FrameKind
from .scenarios import FaultSpec, RawEvent, RawReply, Reply
from .sse import named_event
from .streaming import PacedResponse

_DELTA_FIELDS = ("content", "refusal", "reasoning", "reasoning_content")


def encode_event(event: RawEvent) -> bytes:
    """The SSE bytes of a recorded event: `event:` when it had a name, its data verbatim, a blank line."""
    head = b"event: " + event.event.encode() + b"\n" if event.event is not None else b""
    return head + b"data: " + event.data.encode() + b"\n\n"


def carries_content(data: str) -> bool:
    """Does an event's data carry content (text, reasoning, refusal, tool arguments) in any of the APIs?"""
    try:
        payload = json.loads(data)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    kind = payload.get("type")
    if isinstance(kind, str):
        # Anthropic's content_block_delta; the Responses API's *.delta events.
        return kind == "content_block_delta" or kind.endswith(".delta")
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("text"):  # legacy Completions
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if any(delta.get(key) for key in _DELTA_FIELDS):
                return True
            calls = delta.get("tool_calls") or ()
            if any(isinstance(c, dict) and (c.get("function") or {}).get("arguments") for c in calls):
                return True
    return False


def frames_of(events: Sequence[RawEvent]) -> list[Frame]:
    """The events as frames: content deltas are `content`, what precedes the first `head`, the rest `tail`."""
    content = [carries_content(event.data) for event in events]
    last = max((i for i, c in enumerate(content) if c), default=-1)
    frames = []
    for index, event in enumerate(events):
        kind: FrameKind = "content" if content[index] else "head" if index < last else "tail"
        frames.append(Frame(encode_event(event), kind))
    return frames


def recorded_deadlines(offsets: Sequence[float | None], scale: float) -> list[float]:
    """The recorded offsets times `scale`; an event without one (edited by hand) goes right after the one before."""
    out: list[float] = []
    due = 0.0
    for offset in offsets:
        if offset is not None:
            due = max(due, offset * scale)
        out.append(due)
    return out


def replay(
    reply: Reply,
    raw: RawReply,
    api: str,
    dialect: str,
    entry: Entry,
    rng: random.Random,
    scale: float,
    fault: FaultSpec | None,
    finished: Callable[[Entry], None],
) -> PacedResponse:
    """The response that replays `raw`: paced by its offsets, or by the reply's `timing` when it has one."""
    headers = dict(raw.headers)
    timing = reply.timing
    head_delay = (timing.headers or 0.0) * scale if timing else 0.0
    if raw.events is None:
        body = Frame((raw.body or "").encode(), "content")
        delay = max(
            head_delay, (raw.at or 0.0) * scale if timing is None else pacing.schedule([body], timing, scale, rng)[-1]
        )
        applied = fault if fault is not None and fault.kind in ("disconnect", "stall") else None
        return PacedResponse(
            entry, raw.status, headers, [body], [delay], delay, applied, [], scale, finished, streamed=False
        )
    if raw._frames is None:
        raw._frames = frames_of(raw.events)  # a recording's bytes never change: encode and classify them once
    frames = list(raw._frames)
    offsets = [event.at for event in raw.events]
    if raw.tail:
        frames.append(Frame(raw.tail.encode(), "tail"))
        offsets.append(None)
    if timing is not None:
        deadlines = pacing.schedule(frames, timing, scale, rng)
    else:
        deadlines = recorded_deadlines(offsets, scale)
        head_delay = 0.0
    fault_frames: Sequence[Frame] | Callable[[int], Sequence[Frame]] = []
    if fault is not None and fault.kind == "error_event":
        fault_frames = (
            _responses_error(fault)
            if api == "responses"
            else error_event_frames(api, dialect, fault.type, fault.message)
        )
    return PacedResponse(
        entry, raw.status, headers, frames, deadlines, head_delay, fault, fault_frames, scale, finished
    )


def _responses_error(fault: FaultSpec) -> Callable[[int], Sequence[Frame]]:
    """The Responses API's error event numbered after the events already sent (wire-formats.md §4, nested form)."""

    def render(sent: int) -> Sequence[Frame]:
        kind = fault.type or "server_error"
        message = fault.message or "The server had an error while processing your request. Sorry about that!"
        payload: dict[str, Any] = {
            "type": "error",
            "sequence_number": sent,
            "error": {"type": kind, "code": kind, "message": message, "param": None},
        }
        return [Frame(named_event("error", payload), "tail")]

    return render
