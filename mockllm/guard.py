"""The gate in front of every route: the API key, the admin token and the request-body limit.

An ASGI middleware, so that one place covers the API routes, the dialects' routes, `/v1/models`, unknown paths and
the admin API alike. It answers before any route runs:

- 401 when `--api-key` is set and the request carries no key or another one (in the protocol's shape: OpenAI's
  `invalid_api_key`, wire-formats.md §5.1; Anthropic's `authentication_error`, §7.3), so that a client's auth
  handling can be tested; 401 on the admin API when `--admin-token` is set and not given.
- 413 when the body is over `--max-body`: at once from `content-length`, else as soon as the running total of the
  chunks read passes the limit, so that no more than the limit (plus one chunk) is ever held. The bytes the client
  still sends are discarded by uvicorn (it drops a request's data once the answer is complete), and the connection
  stays usable.

The body read here is handed on to the route unchanged.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .faults import ErrorReply, error_reply
from .journal import Entry
from .protocols.base import request_id

if TYPE_CHECKING:
    from .app import MockState

DEFAULT_MAX_BODY = 10 * 1024 * 1024  # 10 MB
ADMIN_PREFIX = "/_mockllm/"
# Open without the admin token: a liveness probe must not need a secret, and it tells nothing but the version
# and the number of scenarios.
OPEN_ADMIN_PATHS = frozenset({"/_mockllm/health"})
ADMIN_TOKEN_HEADER = "x-mockllm-admin-token"

log = logging.getLogger("mockllm")


def check_guard_settings(max_body: int, request_timeout: float, api_key: str | None, admin_token: str | None) -> None:
    """Raise ValueError, naming the option and the fix, for a limit or secret that cannot work."""
    if max_body < 1:
        raise ValueError(f"max_body={max_body!r} is too small; give the largest request body to accept, in bytes")
    if not request_timeout > 0:
        raise ValueError(f"request_timeout={request_timeout!r} must be more than 0 seconds, like 30")
    for name, value in (("api_key", api_key), ("admin_token", admin_token)):
        if value is not None and (not value.strip() or any(c in value for c in "\r\n")):
            raise ValueError(f"{name} is empty or holds a line break; give the secret as one line, or leave it unset")


def family(path: str) -> str:
    """The API whose error shape a path gets: Anthropic's for `.../messages` paths, OpenAI's for the rest."""
    trimmed = path.rstrip("/")
    return "messages" if trimmed.endswith(("/messages", "/messages/count_tokens")) else "chat"


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a request carries: `Authorization: Bearer KEY` (OpenAI), `x-api-key` (Anthropic), `api-key` (Azure)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return headers.get("x-api-key") or headers.get("api-key") or None


def same_secret(given: str | None, expected: str) -> bool:
    """Compare in constant time: a mock should not teach a client code that leaks a key through timing."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def mask(key: str) -> str:
    """A key as the OpenAI API shows a wrong one: its first three and last four characters (`sk-…abcd`)."""
    return f"{key[:3]}…{key[-4:]}" if len(key) >= 12 else "…"


def unauthorized(api: str, dialect: str, rid: str, given: str | None) -> ErrorReply:
    """The 401 of a missing or wrong API key, in the protocol's shape, with the real APIs' wording first."""
    fix = "this mockllm server was started with --api-key; send that key (Authorization: Bearer KEY, x-api-key or "
    fix += "api-key)."
    if api == "messages":
        message = "invalid x-api-key" if given else "x-api-key header is required"
        return error_reply(401, api, dialect, rid, type="authentication_error", message=f"{message}: {fix}")
    if given is None:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            f"Bearer auth (i.e. Authorization: Bearer YOUR_KEY): {fix}"
        )
        return error_reply(401, api, dialect, rid, type="invalid_request_error", code=None, message=message)
    message = f"Incorrect API key provided: {mask(given)}. {fix[0].upper()}{fix[1:]}"
    return error_reply(401, api, dialect, rid, type="invalid_request_error", code="invalid_api_key", message=message)


def too_large(api: str, dialect: str, rid: str, size: int | None, limit: int) -> ErrorReply:
    """The 413 of a body over `--max-body` (Anthropic's own `request_too_large` type, wire-formats.md §7.3)."""
    told = f"is {size} bytes," if size is not None else "is"
    message = (
        f"Request exceeds the maximum allowed number of bytes: the body {told} over this server's limit of "
        f"{limit} bytes. Send a smaller request, or start mockllm with a larger --max-body."
    )
    if api == "messages":
        return error_reply(413, api, dialect, rid, type="request_too_large", message=message)
    return error_reply(413, api, dialect, rid, type="invalid_request_error", code="request_too_large", message=message)


BODY_KEY = "mockllm.body"  # the request body, as the guard read it, in the ASGI scope


class Guard:
    """ASGI middleware: API key, admin token and body limit, before any route (module docstring)."""

    def __init__(self, app: ASGIApp, state: MockState, finish: Callable[[Entry], None]) -> None:
        self.app = app
        self.state = state
        self.finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.state.settings
        path: str = scope["path"]
        if settings.api_key is None and settings.admin_token is None:
            # Only the body limit to enforce: read the one header it needs without decoding them all.
            headers = {}
            for name, value in scope["headers"]:
                if name == b"content-length":
                    headers["content-length"] = value.decode("latin-1")
        else:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith(ADMIN_PREFIX):
            token = settings.admin_token
            given = headers.get(ADMIN_TOKEN_HEADER) or presented_key(headers)
            if token is not None and path not in OPEN_ADMIN_PATHS and not same_secret(given, token):
                await _admin_unauthorized(send, given is not None)
                return
        elif settings.api_key is not None:
            given = presented_key(headers)
            if not same_secret(given, settings.api_key):
                reply = unauthorized(family(path), settings.dialect, request_id(), given)
                await self._refuse(scope, send, reply)
                return
        declared = _content_length(headers)
        if declared is not None and declared > settings.max_body:
            await self._refuse(scope, send, too_large(family(path), settings.dialect, request_id(), declared,
                                                      settings.max_body))  # fmt: skip
            return
        chunks: list[bytes] = []
        total = 0
        more = scope["method"] not in ("GET", "HEAD")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left (or the request-read timeout closed it): nobody to answer
            chunk: bytes = message.get("body", b"")
            total += len(chunk)
            if total > settings.max_body:
                # A chunked body (or one longer than its content-length claimed): refuse at the first chunk over.
                await self._refuse(scope, send, too_large(family(path), settings.dialect, request_id(), None,
                                                          settings.max_body))  # fmt: skip
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        scope[BODY_KEY] = body  # the API handler reads it from here, without another trip through receive
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, reply: ErrorReply) -> None:
        """Send `reply`, journaled and logged like any answered request (its body is not read)."""
        entry = self.state.journal.open(scope["method"], scope["path"])
        entry.api = family(scope["path"])
        entry.error = reply.summary()
        entry.finish(reply.status)
        self.finish(entry)
        await _send(send, reply.status, {**reply.headers, "content-type": "application/json"}, reply.body)


def _content_length(headers: dict[str, str]) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


async def _admin_unauthorized(send: Send, given: bool) -> None:
    what = "a wrong admin token" if given else "no admin token"
    message = (
        f"The admin API needs the token this server was started with (--admin-token); the request carried {what}. "
        f"Send it as `Authorization: Bearer TOKEN` or `{ADMIN_TOKEN_HEADER}: TOKEN`."
    )
    import json

    body = json.dumps({"error": {"message": message, "type": "authentication_error"}}).encode()
    await _send(send, 401, {"content-type": "application/json"}, body)


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
CONTAINER_VARIABLE = "MOCKLLM_IN_CONTAINER"  # the Dockerfile sets it (with MOCKLLM_HOST=0.0.0.0)


def in_container(environ: dict[str, str] | None = None, markers: tuple[str, ...] = CONTAINER_MARKERS) -> bool:
    """Whether mockllm runs in a container: Docker's or Podman's marker file, or the variable our Dockerfile sets."""
    env = os.environ if environ is None else environ
    return env.get(CONTAINER_VARIABLE, "") not in ("", "0") or any(os.path.exists(m) for m in markers)


def exposure_warning(host: str, api_key: str | None, container: bool) -> str | None:
    """The warning for listening on every interface outside a container (None when there is nothing to say)."""
    if host not in ("0.0.0.0", "::", "") or container:
        return None
    guard = (
        "every request must carry the --api-key"
        if api_key
        else "anyone who can reach this machine can read the journal, change the scenarios and use the recorder's "
        "upstream keys; pass --api-key KEY and --admin-token TOKEN to demand secrets"
    )
    return (
        f"listening on every interface ({host or 'all'}) outside a container: {guard}. "
        f"Use --host 127.0.0.1 (the default) unless other machines must connect."
    )


def secrets_of(settings: Any) -> list[str]:
    """The configured secrets (API key, admin token), which no log line may show."""
    return [value for value in (settings.api_key, settings.admin_token) if value]
