"""A small deterministic tokenizer for chunking replies and counting usage.

It does not reproduce any vendor's BPE vocabulary; it gives token-sized pieces that look like what real
models stream (a leading space glued to the word, punctuation on its own, long words split), so that
chunk counts, `max_tokens` cuts and usage figures are consistent with each other.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from typing import Any

# A word with its leading space and any contraction ("I'm", " can't"), a hyphen glued to the word after it
# ("-time"), a run of digits (three at most, as tiktoken does), a run of punctuation, or whitespace: the pieces
# OpenAI streams (captures chat-stream-text.sse, chat-stream-refusal.sse). Letters are `[^\W\d_]` because the
# stdlib `re` has no `\p{L}`.
_PIECE = re.compile(
    r"""'(?:s|t|re|ve|m|ll|d)\b| ?[^\W\d_]+(?:'(?:s|t|re|ve|m|ll|d)\b)?|-[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|_+"""
    r"""|\s+(?!\S)|\s+""",
    re.UNICODE,
)
_MAX_WORD = 8  # longer words are split into pieces of this many characters at most


def tokenize(text: str) -> list[str]:
    """Split `text` into token-sized pieces whose concatenation is exactly `text`."""
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        piece = match.group()
        if len(piece) <= _MAX_WORD:
            pieces.append(piece)
            continue
        for start in range(0, len(piece), _MAX_WORD - 2):
            pieces.append(piece[start : start + _MAX_WORD - 2])
    return pieces


def count_tokens(text: str) -> int:
    """How many tokens `text` is, by the same rules as `tokenize`."""
    return len(tokenize(text))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "".join(part for part in parts if isinstance(part, str))
    return ""


def count_message_tokens(messages: Iterable[dict[str, Any]], extra: str = "") -> int:
    """Prompt tokens of a chat conversation: each message's text plus a small per-message overhead.

    The overhead (3 tokens a message, 3 for the reply priming) follows OpenAI's published counting recipe.
    """
    total = 3
    for message in messages:
        total += 3 + count_tokens(_content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                function = call.get("function") or {}
                total += count_tokens(str(function.get("name", ""))) + count_tokens(str(function.get("arguments", "")))
    return total + count_tokens(extra)


@functools.lru_cache(maxsize=65536)
def piece_tokens(piece: str) -> int:
    """`count_tokens` of a piece of a scenario's reply, memoised: the same pieces come back on every request."""
    return count_tokens(piece)


def token_ids(text: str) -> list[int]:
    """A stable made-up vocabulary id for each token of `text` (vLLM's `token_ids`), in a 150k vocabulary."""
    return [
        int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "big") % 150_000
        for token in tokenize(text)
    ]
