"""Fabricated but well-formed log probabilities, the same for the same token at the same position.

No model runs here, so the numbers are made up; what a client can rely on is their shape and coherence: every
logprob is at most 0, the sampled token is the most likely one, alternatives are distinct and less likely, the
probabilities of a position never sum above 1, and a token at a given position always gets the same figures
(they come from a hash of the token and its position, never from a random generator or Python's `hash()`).

Shapes: Chat Completions (`logprobs: true`, `top_logprobs: k`) per wire-formats.md §2.2; the legacy
Completions form (`logprobs: k`: `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`) per §3.1 and
vLLM's `_create_completion_logprobs`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .base import RequestError, optional_bool, optional_int

MAX_TOP_LOGPROBS = 20  # OpenAI's limit for chat `top_logprobs`, and vLLM's default `--max-logprobs`

# Candidates for the alternatives at a position: common tokens of English text.
_ALTERNATIVES = (
    " the", " a", ",", ".", " and", " to", " of", " in", " is", " it", " that", " I", " you", " for", " on",
    " with", " as", " was", " be", " at", " this", "\n", " not", " are", " or", " we", " an", " so", "!", "?",
)  # fmt: skip


def _fraction(token: str, position: int, salt: str) -> float:
    """A number in [0, 1) determined by the token, its position and a salt."""
    digest = hashlib.blake2b(f"{salt}\0{position}\0{token}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def token_logprob(token: str, position: int, salt: str = "") -> float:
    """The logprob of the sampled `token` at `position`: between about -2.5 and -0.0001, mostly near 0."""
    fraction = _fraction(token, position, salt)
    return -round(0.0001 + 2.5 * fraction**4, 10)


def top_candidates(token: str, position: int, count: int, salt: str = "") -> list[tuple[str, float]]:
    """The `count` most likely tokens at `position`, most likely first: the sampled token, then alternatives.

    Each alternative is half as likely as the one before, starting from at most what the sampled token leaves,
    so the probabilities never sum above 1 and the list is sorted.
    """
    if count <= 0:
        return []
    logprob = token_logprob(token, position, salt)
    chosen = math.exp(logprob)
    share = min(1.0 - chosen, chosen)
    start = int(_fraction(token, position, salt + "alt") * len(_ALTERNATIVES))
    rotated = _ALTERNATIVES[start:] + _ALTERNATIVES[:start]
    alternatives = [alt for alt in rotated if alt != token]
    out = [(token, logprob)]
    # More alternatives asked for than the list holds: distinct filler tokens.
    alternatives += [f"<alt{rank}>" for rank in range(len(alternatives) + 1, count)]
    for rank in range(1, count):
        name = alternatives[rank - 1]
        out.append((name, round(math.log(share * 0.5**rank), 10)))
    return out


def chat_entry(token: str, position: int, top: int) -> dict[str, Any]:
    """One `logprobs.content` entry of Chat Completions: token, logprob, bytes, `top` alternatives."""
    return {
        "token": token,
        "logprob": token_logprob(token, position),
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": name, "logprob": value, "bytes": list(name.encode())}
            for name, value in top_candidates(token, position, top)
        ],
    }


def legacy_logprobs(
    tokens: Sequence[str],
    positions: Sequence[int | None],
    top: int,
    offset: int,
) -> dict[str, Any]:
    """The legacy Completions `logprobs` object for these tokens.

    `positions[i]` is the token's position in the completion, or None for an echoed prompt token, whose
    position is its index among the tokens passed here with a salt of its own; the first prompt token has no
    logprob at all (it has nothing before it), as OpenAI and vLLM send it. `offset` is the character offset of
    the first token in the choice's whole text. A dict of top logprobs holds the sampled token and the
    `top - 1` next ones, or the sampled token alone when `top` is 0 ("up to logprobs + 1 elements").
    """
    token_logprobs: list[float | None] = []
    top_logprobs: list[dict[str, float] | None] = []
    text_offset: list[int] = []
    for index, (token, position) in enumerate(zip(tokens, positions, strict=True)):
        text_offset.append(offset)
        offset += len(token)
        if position is None and index == 0:
            token_logprobs.append(None)
            top_logprobs.append(None)
            continue
        where, salt = (index, "prompt") if position is None else (position, "")
        candidates = top_candidates(token, where, max(top, 1), salt)
        token_logprobs.append(candidates[0][1])
        top_logprobs.append(dict(candidates))
    return {
        "tokens": list(tokens),
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    }


def chat_request(body: Mapping[str, Any]) -> int | None:
    """`logprobs` and `top_logprobs` of a chat request: how many alternatives a token carries, None if off."""
    wanted = optional_bool(body, "logprobs")
    top = optional_int(body, "top_logprobs", minimum=0, maximum=MAX_TOP_LOGPROBS)
    if top is not None and not wanted:
        raise RequestError(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is given.",
            param="top_logprobs",
            code="invalid_value",
        )
    return (top or 0) if wanted else None
