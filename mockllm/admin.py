"""The admin API (`/_mockllm/...`): health, scenarios, the journal, reset."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._version import __version__
from .loading import ScenarioError, load_text

if TYPE_CHECKING:
    from .app import MockState


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response, UTF-8 kept as is."""
    try:
        body = json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate (a journaled body of an unknown route, say) is no UTF-8: escape it as JSON allows.
        body = json.dumps(payload).encode()
    return Response(body, status, dict(headers or {}), "application/json")


def _admin_error(status: int, message: str) -> Response:
    return json_response({"error": {"message": message, "type": "invalid_request_error"}}, status)


class AdminRoutes:
    """The admin endpoints over a server's state."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/_mockllm/health", self.health, methods=["GET"]),
            Route("/_mockllm/scenarios", self.get_scenarios, methods=["GET"]),
            Route("/_mockllm/scenarios", self.post_scenarios, methods=["POST"]),
            Route("/_mockllm/scenarios", self.delete_scenarios, methods=["DELETE"]),
            Route("/_mockllm/requests", self.get_requests, methods=["GET"]),
            Route("/_mockllm/requests", self.delete_requests, methods=["DELETE"]),
            Route("/_mockllm/reset", self.reset, methods=["POST"]),
        ]

    async def health(self, request: Request) -> Response:
        # `tasks`: the event loop's live tasks, which a leak (a stream never closed) makes grow (bench/soak.py).
        return json_response(
            {
                "status": "ok",
                "version": __version__,
                "scenarios": len(self.state.scenarios.all()),
                "tasks": len(asyncio.all_tasks()),
            }
        )

    async def get_scenarios(self, request: Request) -> Response:
        runtime = {id(s) for s in self.state.scenarios.runtime_scenarios}
        payload = [
            {
                "id": s.name,
                "source": s.location,
                "runtime": id(s) in runtime,
                **s.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"id"}),
            }
            for s in self.state.scenarios.all()
        ]
        return json_response(payload)

    async def post_scenarios(self, request: Request) -> Response:
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _admin_error(400, "the body is not UTF-8 text; send a YAML or JSON scenario document")
        try:
            scenarios = load_text(text, "<admin>", lenient=True)
        except ScenarioError as exc:
            return _admin_error(400, str(exc))
        try:
            self.state.scenarios.add(scenarios)
        except ValueError as exc:
            return _admin_error(409, str(exc))
        return json_response({"added": [s.name for s in scenarios]}, 201)

    async def delete_scenarios(self, request: Request) -> Response:
        self.state.scenarios.clear_runtime()
        return json_response({"scenarios": len(self.state.scenarios.all())})

    async def get_requests(self, request: Request) -> Response:
        return json_response([entry.to_json() for entry in self.state.journal.entries()])

    async def delete_requests(self, request: Request) -> Response:
        self.state.journal.clear()
        return Response(status_code=204)

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return json_response({"reset": True})
