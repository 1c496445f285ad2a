"""The frames of a streamed reply, rendered once and reused: a repeated request costs a splice, not a render.

A reply's frames depend only on the reply, the request's body (and the path it came to, which may fix the model),
and the dialect; the protocols read no header when they render. What changes from one answer to the next is the
response's id, its `created` second and the tool-call ids mockllm made up. So the first request renders, and every
later identical request gets the same frames with those three spliced in: the same bytes a fresh render would give,
but for the `obfuscation` padding, which keeps the values it was drawn with (clients ignore it).

Protocols that keep state across requests (Responses: `previous_response_id`) are never cached.
"""

from __future__ import annotations

import re
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .protocols.base import Frame, Plan, random_id
from .scenarios import Reply

# The response's own id: the first non-empty "id" string of the stream (Azure's opening filter chunk has "id":"").
_RESPONSE_ID = re.compile(rb'"id":"([A-Za-z0-9_-]{16,})"')
_CREATED = re.compile(rb'"created":(\d+)')
MAX_BODY = 64 * 1024  # requests with a larger body are rendered each time: they are rarely repeated
MAX_BYTES = 32 * 1024 * 1024  # the most frame bytes the cache holds, least recently used out first
Splice = Callable[[bytes], bytes]
Schedules = dict[float, "array[float]"]  # a cached stream's deadlines by time scale (pacing.remembered)


@dataclass(frozen=True, slots=True)
class _Cached:
    reply: Reply  # held, so that its id() cannot be reused while the entry lives
    frames: list[Frame]
    response_id: bytes
    id_prefix: bytes
    created: bytes | None
    call_ids: tuple[bytes, ...]
    size: int
    schedules: Schedules = field(default_factory=dict)


class FrameCache:
    """Rendered streams by (api, dialect, path, reply, request body); bounded by bytes, least recently used out."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[object, ...], _Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def frames(
        self,
        key: tuple[str, str, str, bytes] | None,
        reply: Reply,
        render: Callable[[], tuple[Plan, list[Frame]]],
    ) -> tuple[list[Frame], Splice | None, Schedules | None]:
        """The frames for this request; the splice to apply to each frame's bytes as it is sent (None when the
        frames were rendered for this request); and where their deadlines are kept (None when the frames are not
        kept). The cached frames are shared by every stream that sends them, so an open stream holds no copy of its
        reply."""
        if key is None or len(key[3]) > MAX_BODY:
            return render()[1], None, None
        full = (*key, id(reply))
        with self._lock:
            cached = self._entries.get(full)
            if cached is not None and cached.reply is reply:
                self._entries.move_to_end(full)
                self.hits += 1
            else:
                cached = None
        if cached is not None:
            return cached.frames, _splicer(cached), cached.schedules
        plan, frames = render()
        entry = _remember(reply, frames, plan)
        with self._lock:
            self.misses += 1
            if entry is None or entry.size > self.max_bytes:
                return frames, None, None
            old = self._entries.pop(full, None)
            self._bytes += entry.size - (old.size if old else 0)
            self._entries[full] = entry
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.size
        return frames, None, entry.schedules

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def _remember(reply: Reply, frames: list[Frame], plan: Plan) -> _Cached | None:
    """What a later request needs to splice: the volatile values as this render wrote them."""
    response_id = created = None
    for frame in frames[:3]:
        if response_id is None and (found := _RESPONSE_ID.search(frame.data)):
            response_id = found.group(1)
        if created is None and (stamp := _CREATED.search(frame.data)):
            created = stamp.group(1)
    if response_id is None:
        return None  # a stream without an id of its own: render it each time rather than guess
    prefix = re.match(rb"(chatcmpl-|cmpl-|msg_01)?", response_id)
    id_prefix = prefix.group(0) if prefix else b""
    call_ids = tuple(i.encode() for i in plan.call_ids if any(i.encode() in f.data for f in frames))
    size = sum(len(f.data) for f in frames)
    return _Cached(reply, frames, response_id, id_prefix, created, call_ids, size)


def _splicer(cached: _Cached) -> Splice:
    """The splice that gives a cached stream this response's own id, `created` second and tool-call ids."""
    length = len(cached.response_id) - len(cached.id_prefix)
    pairs = [(cached.response_id, random_id(cached.id_prefix.decode(), length).encode())]
    if cached.created is not None:
        now = str(int(time.time())).encode()
        if now != cached.created:
            pairs.append((b'"created":' + cached.created, b'"created":' + now))
    for old in cached.call_ids:
        prefix = b"toolu_01" if old.startswith(b"toolu_01") else old[: old.index(b"_") + 1] if b"_" in old else b""
        pairs.append((old, random_id(prefix.decode(), len(old) - len(prefix)).encode()))

    def splice(data: bytes) -> bytes:
        for old_value, new_value in pairs:
            data = data.replace(old_value, new_value)
        return data

    return splice
