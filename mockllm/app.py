"""The Starlette application: the API routes and the admin API.

A request flows: route → protocol parses it → matching picks a scenario → the protocol renders the reply to
frames → the send loop (`streaming.py`) paces them and applies faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import pacing
from .admin import AdminRoutes
from .conversations import Conversations
from .dialect_routes import DialectRoutes, ForcedRoute
from .faults import ErrorReply, error_event_frames, error_reply, scenario_error
from .framecache import FrameCache
from .guard import BODY_KEY, DEFAULT_MAX_BODY, Guard, check_guard_settings
from .journal import Entry, Journal
from .loading import load_scenarios
from .matching import Scenarios, UnknownScenario
from .models import ModelRoutes
from .protocols import ROUTES, ProtocolModule
from .protocols import anthropic as anthropic_protocol
from .protocols.base import Frame, ParsedRequest, Plan, RequestError, openai_headers, plan_reply, request_id
from .recording import check_record_settings
from .replay import replay
from .scenarios import DIALECTS, Reply, Scenario
from .streaming import PacedResponse
from .tokens import tokenize
from .toolloop import runtime_warning
from .unknown import unknown_route_message
from .validation import MODES as VALIDATE_MODES
from .validation import enforce

if TYPE_CHECKING:
    from .proxy import Proxy, ProxyResponse

FALLBACKS = ("error", "echo", "lorem")

BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library "
    "correctly. The API expects a JSON payload, but what was sent was not valid JSON.)"
)
LONE_SURROGATE = (
    "The JSON body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair), which is not a "
    "character. Send valid Unicode text."
)
# json.loads keeps a lone surrogate escape as an unencodable character; look for one only when an escape is there.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(body: Any) -> bool:
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo "
    "consequat."
)
_LOREM_TOKENS = tokenize(_LOREM)
LOREM_LIMIT = 128_000  # tokens: the most any current model writes in one reply


def lorem(count: int) -> list[str]:
    """`count` tokens of deterministic filler text."""
    repeats = count // len(_LOREM_TOKENS) + 1
    return tokenize(" ".join([_LOREM] * repeats))[:count] if repeats > 1 else _LOREM_TOKENS[:count]


@dataclass
class Settings:
    """Server options shared by the CLI, `MockServer` and the pytest plugin."""

    dialect: str = "openai"
    models: list[str] = field(default_factory=list)
    time_scale: float = 1.0
    seed: int = 0
    journal_size: int = 1000
    fallback: str = "error"
    record: str = "none"  # none | missing | all (DESIGN.md "Record and replay")
    upstream: str | None = None  # one base URL, or API=URL pairs; OpenAI's and Anthropic's public APIs by default
    out: str | None = None  # the folder recordings go to (one file per distinct request)
    redact: list[str] = field(default_factory=list)
    upstream_timeout: float = 600.0  # seconds to wait for the upstream's answer
    validate: str = "strict"  # strict | warn | off: the real APIs' contract rules (DESIGN.md "No false greens")
    max_body: int = DEFAULT_MAX_BODY  # bytes; a larger request body gets a 413 (guard.py)
    request_timeout: float = 30.0  # seconds for a request to arrive in full (transport.py), not scaled
    api_key: str | None = None  # when set, API requests must carry it (guard.py)
    admin_token: str | None = None  # when set, the admin API demands it (guard.py)

    def __post_init__(self) -> None:
        check_record_settings(self.record, self.upstream, self.out, self.redact, self.upstream_timeout)
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect={self.dialect!r} is not a dialect; use one of {', '.join(DIALECTS)}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback={self.fallback!r} is not a fallback; use one of {', '.join(FALLBACKS)}")
        if not self.time_scale >= 0:
            raise ValueError(f"time_scale={self.time_scale!r} is negative; use 0 (instant) or more")
        if self.validate not in VALIDATE_MODES:
            raise ValueError(f"validate={self.validate!r} is not a mode; use one of {', '.join(VALIDATE_MODES)}")
        if self.journal_size < 1:
            raise ValueError(f"journal_size={self.journal_size!r} is too small; use 1 or more")
        check_guard_settings(self.max_body, self.request_timeout, self.api_key, self.admin_token)


class MockState:
    """Everything a running server knows: scenarios, sequence positions, the journal, the seeded generator."""

    def __init__(self, scenarios: Sequence[Scenario] = (), settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.scenarios = Scenarios(scenarios)
        self.journal = Journal(self.settings.journal_size)
        self.rng = random.Random(self.settings.seed)
        self.conversations = Conversations()  # Responses API: response id -> conversation (previous_response_id)
        self.proxy: Proxy | None = None
        if self.settings.record != "none":
            from .proxy import make_proxy  # httpx is imported only by a server that records

            self.proxy = make_proxy(self.settings, self.scenarios)
        self.listeners: list[Callable[[Entry], None]] = []
        self.frame_cache = FrameCache()

    def reset(self) -> None:
        """Journal, sequence positions and runtime scenarios back to the start; the generator re-seeded."""
        self.journal.clear()
        self.scenarios.clear_runtime()
        self.scenarios.reset_positions()
        self.rng.seed(self.settings.seed)
        self.conversations.clear()
        self.frame_cache.clear()  # the runtime scenarios' replies go with them

    def model_ids(self) -> list[str]:
        """Models named exactly by scenarios (`when.model` as a plain string, `reply.model`), plus extras."""
        names: dict[str, None] = {}
        for scenario in self.scenarios.all():
            if scenario.when.model is not None and scenario.when.model.exact is not None:
                names[scenario.when.model.exact] = None
            for reply in scenario.sequence:
                if reply.model:
                    names[reply.model] = None
        for extra in self.settings.models:
            names[extra] = None
        return list(names)


def _success_headers(api: str, dialect: str, rid: str) -> dict[str, str]:
    """The headers every answer of this API carries: Anthropic's request id and organization, or OpenAI's."""
    if api == anthropic_protocol.API:
        return anthropic_protocol.response_headers(rid)
    return openai_headers(dialect, rid)


class MockApp:
    """Builds the Starlette app around a `MockState`."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    # -- API routes ---------------------------------------------------------------------------------------

    def _api_endpoint(self, protocol: ProtocolModule) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Any:
            return await self.handle(protocol, request)

        return endpoint

    def _finish(self, entry: Entry) -> None:
        for listener in list(self.state.listeners):
            listener(entry)

    def _error(self, entry: Entry, reply: ErrorReply, extra: Mapping[str, str] | None = None) -> Response:
        entry.error = reply.summary()
        headers = {**reply.headers, **(extra or {})}
        entry.finish(reply.status)
        self._finish(entry)
        return Response(reply.body, reply.status, headers, "application/json")

    async def handle(self, protocol: ProtocolModule, request: Request, route: ForcedRoute | None = None) -> Any:
        """Answer one API request; `route` is set on a dialect's own paths (Azure, Gemini), which fix the dialect."""
        state = self.state
        settings = state.settings
        entry = state.journal.open(request.method, request.scope["path"])
        entry.api = protocol.API
        rid = request_id()
        dialect = route.dialect if route is not None else settings.dialect
        raw = request.scope.get(BODY_KEY)
        if raw is None:
            raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # bad JSON or UTF-8, too deep, an integer over Python's 4300 digits
            entry.body = raw.decode("utf-8", "replace")
            return self._error(entry, error_reply(400, protocol.API, dialect, rid, message=BAD_JSON))
        if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(body):
            entry.body = raw.decode("utf-8", "replace")
            return self._error(entry, error_reply(400, protocol.API, dialect, rid, message=LONE_SURROGATE))
        entry.body = body
        # Header names arrive lower-cased from the server (ASGI); values are Latin-1 as HTTP/1.1 carries them.
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in request.scope["headers"]}
        proxy = state.proxy
        if proxy is not None and proxy.mode == "all":  # re-record: the upstream answers everything
            return self._forward(proxy, protocol.API, request, raw, body, entry)
        try:
            parsed = protocol.parse(route.body(body) if route is not None else body, headers)
            if route is not None:
                route.apply(parsed)
            attach = getattr(protocol, "attach", None)  # a protocol with server-side state (Responses)
            if attach is not None:
                attach(parsed, state.conversations)
        except RequestError as exc:
            if proxy is not None:  # the upstream, not mockllm's rules, decides what a recording holds
                return self._forward(proxy, protocol.API, request, raw, body, entry)
            return self._error(entry, _request_error(exc, protocol.API, dialect, rid))
        entry.model, entry.stream = parsed.model, parsed.stream
        forced = headers.get("x-mockllm-scenario")
        try:
            selection = state.scenarios.select(parsed, forced)
        except UnknownScenario:
            known = ", ".join(sorted(state.scenarios.ids())) or "none"
            entry.miss = f"x-mockllm-scenario names `{forced}`, which is not loaded"
            message = (
                f"The header x-mockllm-scenario names the scenario `{forced}`, but no scenario has that id "
                f"(loaded: {known}). Fix the header or load the scenario."
            )
            return self._error(entry, _unanswered(protocol.API, dialect, rid, "scenario_not_found", message))
        if selection is None and proxy is not None:  # --record missing: record what no recording answers
            return self._forward(proxy, protocol.API, request, raw, body, entry)
        if selection is not None and route is None:  # a dialect's own route (Azure, Gemini) fixes the dialect
            dialect = selection.scenario.dialect or dialect
        refusal = enforce(parsed, settings.validate, selection, entry, dialect, rid)  # a rule the real API enforces
        if refusal is not None:
            return self._error(entry, refusal)
        if selection is None:
            reply = self._fallback(parsed)
            if reply is None:
                entry.miss = state.scenarios.explain_miss(parsed)
                return self._error(entry, _unanswered(protocol.API, dialect, rid, "no_scenario_matched", entry.miss))
        else:
            entry.scenario = selection.scenario.name
            reply = selection.reply
            if parsed.tool_results:
                # The reply is still sent (the client asked for it); the journal, log and plugin say why it loops.
                entry.warning = runtime_warning(selection, parsed, state.scenarios.all)
            check = getattr(protocol, "check_reply", None)
            if check is not None:
                try:
                    check(reply, parsed, selection.scenario.name)
                except RequestError as exc:
                    return self._error(entry, _request_error(exc, protocol.API, dialect, rid))
        # A request the protocol renders from its body alone may reuse an identical request's frames (framecache.py);
        # a fallback's reply is made for one request, and would never be met again.
        cacheable = getattr(protocol, "attach", None) is None and selection is not None
        source = (request.scope["path"], raw) if cacheable else None
        return await self._respond(protocol, parsed, reply, dialect, rid, entry, source)

    def _forward(self, proxy: Proxy, api: str, request: Request, raw: bytes, body: Any, entry: Entry) -> ProxyResponse:
        from .proxy import ProxyResponse

        return ProxyResponse(proxy, api, request, raw, body, entry, self._finish, self.state.settings.dialect)

    async def recorded_models(self, request: Request) -> Any | None:
        """`GET /v1/models[/{id}]` answered by a recording (api `models`), or forwarded upstream when recording;
        None when neither applies and the models come from the scenarios."""
        state = self.state
        body: dict[str, Any] = {"path": request.url.path}
        if "anthropic-version" in request.headers:
            body["anthropic"] = True  # an Anthropic client gets another shape: another recording
        parsed = ParsedRequest(api="models", body=body, headers={k.lower(): v for k, v in request.headers.items()})
        proxy = state.proxy
        forward = proxy is not None and proxy.mode == "all"
        recorded = lambda s: s.when.api == "models" and s.when.request is not None  # noqa: E731
        selection = None if forward else state.scenarios.select(parsed, accept=recorded)
        raw = selection.reply.raw if selection is not None else None
        if raw is None and proxy is None:
            return None
        entry = state.journal.open(request.method, request.url.path)
        entry.api, entry.body = "models", body
        if selection is None or raw is None:
            assert proxy is not None
            return self._forward(proxy, "models", request, b"", body, entry)
        entry.scenario = selection.scenario.name
        settings = state.settings
        return replay(selection.reply, raw, "models", settings.dialect, entry, state.rng, settings.time_scale, None,
                      self._finish)  # fmt: skip

    def _fallback(self, parsed: ParsedRequest) -> Reply | None:
        if parsed.api == "embeddings":
            return Reply()  # embeddings need no scenario: vectors come from a hash of each input
        mode = self.state.settings.fallback
        if mode == "echo":
            return Reply(text=parsed.prompt or "")
        if mode == "lorem":
            # Exactly `max_tokens` tokens (50 without it), cut as a real server cuts a reply at max_tokens; never more
            # than LOREM_LIMIT, so that an absurd max_tokens (10**9) costs no memory (a real model stops far sooner).
            wanted = parsed.max_tokens or 50
            cut = parsed.max_tokens is not None and wanted <= LOREM_LIMIT
            return Reply(chunks=lorem(min(wanted, LOREM_LIMIT)), finish_reason="length" if cut else None)
        return None

    def _fires(self, probability: float | None) -> bool:
        return probability is None or self.state.rng.random() < probability

    async def _respond(
        self,
        protocol: ProtocolModule,
        parsed: ParsedRequest,
        reply: Reply,
        dialect: str,
        rid: str,
        entry: Entry,
        source: tuple[str, bytes] | None = None,
    ) -> Any:
        settings = self.state.settings
        scale = settings.time_scale
        timing = reply.timing
        head_delay = (timing.headers or 0.0) * scale if timing else 0.0
        if reply.error is not None and self._fires(reply.error.probability):
            error = scenario_error(reply.error, protocol.API, dialect, rid, scale)
            if head_delay:
                await asyncio.sleep(head_delay)
            return self._error(entry, error, _success_headers(protocol.API, dialect, rid))
        fault = reply.fault if reply.fault is not None and self._fires(reply.fault.probability) else None
        if reply.raw is not None:  # a recording: its own bytes, headers and offsets
            return replay(reply, reply.raw, protocol.API, dialect, entry, self.state.rng, scale, fault, self._finish)
        headers = {**_success_headers(protocol.API, dialect, rid), **(reply.headers or {})}
        if parsed.stream:
            fault_frames: Sequence[Frame] | Callable[[int], Sequence[Frame]] = []
            if source is not None and (fault is None or fault.kind != "error_event"):

                def render() -> tuple[Plan, list[Frame]]:
                    fresh = plan_reply(reply, parsed)
                    return fresh, protocol.render_stream(fresh, parsed, dialect)

                frames, splice, kept = self.state.frame_cache.frames((protocol.API, dialect, *source), reply, render)
            else:
                splice = kept = None
                plan = plan_reply(reply, parsed)
                frames = protocol.render_stream(plan, parsed, dialect)
                if fault is not None and fault.kind == "error_event":
                    render_error = getattr(protocol, "render_error_event", None)  # numbered events (Responses)
                    fault_frames = (
                        render_error(plan, parsed, dialect, fault)
                        if render_error is not None
                        else error_event_frames(protocol.API, dialect, fault.type, fault.message)
                    )
            deadlines = pacing.remembered(frames, timing, scale, self.state.rng, kept)
            headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **headers}
            return PacedResponse(
                entry, 200, headers, frames, deadlines, head_delay, fault, fault_frames, scale, self._finish,
                splice=splice,
            )  # fmt: skip
        # A non-streamed reply arrives after the time the whole stream would have taken: the same frames, paced.
        plan = plan_reply(reply, parsed)
        delay = head_delay
        if timing is not None and scale > 0:
            stream = protocol.render_stream(plan, parsed, dialect)
            delay = max(delay, pacing.schedule(stream, timing, scale, self.state.rng)[-1])
        body = protocol.render_body(plan, parsed, dialect)
        headers = {"content-type": "application/json", **headers}
        # Faults act on streams; for a non-streamed request only `disconnect` and `stall` make sense.
        applied = fault if fault is not None and fault.kind in ("disconnect", "stall") else None
        frames = [Frame(body, "content")]
        # A real server sends a non-streamed reply's status line with its body, once the whole answer is ready: the
        # status line waits too (a `timing.headers` read-timeout test must see no byte before the delay).
        return PacedResponse(
            entry, 200, headers, frames, [delay], delay, applied, [], scale, self._finish, streamed=False
        )

    async def not_found(self, request: Request) -> Response:
        """A path the server does not serve: journaled and logged like a miss, so a test cannot pass over it."""
        path = request.url.path
        entry = self.state.journal.open(request.method, path)
        raw = await request.body()
        try:
            entry.body = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            entry.body = raw.decode("utf-8", "replace")
        entry.miss = unknown_route_message(request.method, path, ROUTES)
        # An Anthropic client's path gets Anthropic's error shape, so that its SDK reads the message.
        api = "messages" if path.rstrip("/").endswith("/messages") else "chat"
        error = error_reply(
            404,
            api,
            self.state.settings.dialect,
            request_id(),
            code="unknown_url",
            message=entry.miss,
            should_retry=False,
        )
        return self._error(entry, error)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        if self.state.proxy is not None:
            await self.state.proxy.aclose()  # the upstream connections belong to this event loop

    def build(self) -> MockASGI:
        """The ASGI app: the API routes on a thin path, everything else (models, dialect paths, admin, unknown
        paths) through Starlette. Both pass the guard first."""
        return MockASGI(self, self.starlette())

    def starlette(self) -> Starlette:
        routes = [Route(path, self._api_endpoint(protocol), methods=["POST"]) for path, protocol in ROUTES.items()]
        routes += ModelRoutes(self).routes()
        routes += DialectRoutes(self).routes()
        routes += AdminRoutes(self.state).routes()
        routes.append(
            Route("/{path:path}", self.not_found, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        )
        # The guard answers 401 and 413 before any route, and hands the body it read on (guard.py).
        guard = Middleware(Guard, state=self.state, finish=self._finish)
        app = Starlette(routes=routes, middleware=[guard], lifespan=self._lifespan)
        app.state.mock = self.state
        return app


class MockASGI:
    """mockllm's ASGI app. `POST` to an API route goes straight from the server to the handler and back: no
    routing table and no middleware stack around every frame the stream sends (the send path is most of a stream's
    cost). The guard still runs first. Anything else goes to the Starlette app (`starlette`, with its `state`)."""

    def __init__(self, mock: MockApp, starlette: Starlette) -> None:
        self.mock = mock
        self.starlette = starlette
        self.state = starlette.state
        self._guarded_api = Guard(self._api, state=mock.state, finish=mock._finish)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in ROUTES:
            await self._guarded_api(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.mock.handle(ROUTES[scope["path"]], Request(scope, receive))
        await response(scope, receive, send)


def _unanswered(api: str, dialect: str, rid: str, code: str, message: str) -> ErrorReply:
    """A 404 for a request no scenario answers; `x-should-retry: false` so that the SDK does not retry it."""
    return error_reply(404, api, dialect, rid, code=code, message=message, should_retry=False)


def _request_error(exc: RequestError, api: str, dialect: str, rid: str) -> ErrorReply:
    """A request the real API would refuse, in the protocol's and the dialect's error shape."""
    return error_reply(
        exc.status, api, dialect, rid, type=exc.type, code=exc.code, message=exc.message, param=exc.param
    )


def create_app(
    paths: Sequence[str | Path] = (), settings: Settings | None = None, state: MockState | None = None
) -> MockASGI:
    """The ASGI app serving the scenarios under `paths` (raises ScenarioError for bad files)."""
    if state is None:
        state = MockState(load_scenarios(paths) if paths else [], settings)
    return MockApp(state).build()
