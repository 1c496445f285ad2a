"""One module per API: parse a request to a neutral form; render a neutral reply to bytes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from . import anthropic, embeddings, openai_chat, openai_completions, openai_responses
from .base import Frame, ParsedRequest, Plan


class ProtocolModule(Protocol):
    """What the app needs from a protocol module."""

    API: str

    def parse(self, raw: Any, headers: Mapping[str, str]) -> ParsedRequest: ...

    def render_stream(self, plan: Plan, request: ParsedRequest, dialect: str) -> list[Frame]: ...

    def render_body(self, plan: Plan, request: ParsedRequest, dialect: str) -> bytes: ...


# route path -> protocol module
ROUTES: dict[str, ProtocolModule] = {
    "/v1/chat/completions": openai_chat,
    "/v1/completions": openai_completions,
    "/v1/embeddings": embeddings,
    "/v1/messages": anthropic,
    "/v1/responses": openai_responses,
}
