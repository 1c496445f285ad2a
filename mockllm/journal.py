"""The bounded request journal: what came in, what it matched, and what was sent back."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any


@dataclass
class Entry:
    """One request as the journal records it; completed when its response ends."""

    id: int
    time: float
    method: str
    path: str
    api: str | None = None
    model: str | None = None
    stream: bool = False
    body: Any = None
    scenario: str | None = None
    miss: str | None = None
    warning: str | None = None  # a problem with a request that was answered, such as a tool loop (toolloop.py)
    status: int | None = None
    error: dict[str, Any] | None = None
    fault: str | None = None
    # A contract rule the request broke, answered anyway under `--validate warn`: {rule, message}.
    violation: dict[str, Any] | None = None
    # What the client saw of the response: `complete`; `reset` (the connection was reset by a disconnect fault);
    # `truncated` (the body ended early and cleanly: an end, error_event or timed stall fault); `client_closed`
    # (the client hung up first). None while the response is in flight.
    outcome: str | None = None
    chunk_times: list[float] = field(default_factory=list)
    duration: float | None = None
    started: float = field(default_factory=perf_counter, repr=False)

    @property
    def chunks(self) -> int:
        return len(self.chunk_times)

    def elapsed(self) -> float:
        """Seconds since the request arrived."""
        return perf_counter() - self.started

    def finish(self, status: int | None, outcome: str = "complete") -> None:
        """Mark the response as ended; `status` is None when the status line never went out."""
        self.status = status
        self.outcome = outcome
        self.duration = round(self.elapsed(), 6)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "api": self.api,
            "model": self.model,
            "stream": self.stream,
            "body": self.body,
            "scenario": self.scenario,
            "miss": self.miss,
            "warning": self.warning,
            "status": self.status,
            "error": self.error,
            "fault": self.fault,
            "violation": self.violation,
            "outcome": self.outcome,
            "chunks": self.chunks,
            "chunk_times": [round(at, 6) for at in self.chunk_times],
            "duration": self.duration,
        }


class Journal:
    """The most recent requests, oldest first, at most `size` of them."""

    def __init__(self, size: int = 1000) -> None:
        self._entries: deque[Entry] = deque(maxlen=max(1, size))
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, method: str, path: str) -> Entry:
        """Record a request as it arrives."""
        entry = Entry(id=next(self._ids), time=round(time.time(), 6), method=method, path=path)
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
