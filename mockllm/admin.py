"""The admin API (`/_mockllm/...`): health, scenarios, the journal, reset."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._version import __version__
from .loading import ScenarioError, load_text
from .workers import WorkerIdentity, current_worker

if TYPE_CHECKING:
    from .app import MockState

Endpoint = Callable[["AdminRoutes", Request], Awaitable[Response]]


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


def _per_worker(subject: str, effect: str, action: str) -> Callable[[Endpoint], Endpoint]:
    """Refuse the endpoint with a 409 when several worker processes serve (`--workers N`): `subject` is per
    worker, so this worker alone would `effect`. The message ends with what to do: run one worker to `action`."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(self: AdminRoutes, request: Request) -> Response:
            worker = self.worker
            if worker is None or worker.count == 1:
                return await endpoint(self, request)
            message = (
                f"{subject} per worker process, and this server runs {worker.count} of them (--workers "
                f"{worker.count}): worker {worker.index} (pid {os.getpid()}) would {effect}. Run mockllm with "
                f"--workers 1 (the default) to {action}."
            )
            return json_response(
                {"error": {"message": message, "type": "invalid_request_error", "code": "per_worker_state"}}, 409
            )

        return guarded

    return decorate


_SCENARIOS = _per_worker(
    "Runtime scenarios are",
    "change only its own scenarios, and the other workers would answer as before",
    "add or remove scenarios at runtime (scenario files are served by every worker, and --reload reloads them)",
)


class AdminRoutes:
    """The admin endpoints over a server's state.

    `worker` is this process's place among the workers of `mockllm serve --workers N` (by default the one the
    process runs as, workers.py); with more than one, what is per worker (the journal, sequence positions,
    runtime scenarios) is refused with a 409 rather than answered by one worker alone.
    """

    def __init__(self, state: MockState, worker: WorkerIdentity | None = None) -> None:
        self.state = state
        self.worker = worker if worker is not None else current_worker()

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
                # Which process answered: with --workers N, each connection goes to one of N.
                "pid": os.getpid(),
                "worker": self.worker.index if self.worker is not None else 1,
                "workers": self.worker.count if self.worker is not None else 1,
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

    @_SCENARIOS
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

    @_SCENARIOS
    async def delete_scenarios(self, request: Request) -> Response:
        self.state.scenarios.clear_runtime()
        return json_response({"scenarios": len(self.state.scenarios.all())})

    @_per_worker(
        "The journal is",
        "answer with only the requests the kernel happened to give it",
        "read the journal (or count requests on the client side)",
    )
    async def get_requests(self, request: Request) -> Response:
        return json_response([entry.to_json() for entry in self.state.journal.entries()])

    @_per_worker("The journal is", "clear only its own", "clear the journal")
    async def delete_requests(self, request: Request) -> Response:
        self.state.journal.clear()
        return Response(status_code=204)

    @_per_worker(
        "Sequence positions, the journal and runtime scenarios are",
        "reset only its own, and the other workers would go on where they were",
        "reset them between tests",
    )
    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return json_response({"reset": True})
