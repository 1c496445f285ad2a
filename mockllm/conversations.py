"""The Responses API's server-side memory: each response id given in this run → the conversation it ends.

`previous_response_id` makes the real API continue a stored conversation (input items, then the response's
output items). mockllm keeps the same per server run, bounded (the oldest ids are forgotten first) and cleared
by `POST /_mockllm/reset`, so that a request naming a response id of an earlier test gets the real API's 400.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

Item = dict[str, Any]


class Conversations:
    """Response id → the whole conversation it ends; thread-safe, bounded to `limit` responses."""

    def __init__(self, limit: int = 1000) -> None:
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._by_id: OrderedDict[str, tuple[Item, ...]] = OrderedDict()

    def remember(self, response_id: str, items: Sequence[Item]) -> None:
        """Store the conversation `response_id` ends (its input items, then its output items)."""
        with self._lock:
            self._by_id[response_id] = tuple(items)
            self._by_id.move_to_end(response_id)
            while len(self._by_id) > self._limit:
                self._by_id.popitem(last=False)

    def recall(self, response_id: str) -> list[Item] | None:
        """The conversation `response_id` ends, or None when this run never gave that id (or forgot it)."""
        with self._lock:
            items = self._by_id.get(response_id)
        return list(items) if items is not None else None

    def find_item(self, item_id: str) -> Item | None:
        """An item (`msg_…`, `fc_…`, `rs_…`) of any stored conversation, for `item_reference` input items."""
        with self._lock:
            conversations = list(self._by_id.values())
        for items in reversed(conversations):
            for item in items:
                if item.get("id") == item_id:
                    return item
        return None

    def clear(self) -> None:
        """Forget every response (POST /_mockllm/reset)."""
        with self._lock:
            self._by_id.clear()

    def __len__(self) -> int:
        return len(self._by_id)
