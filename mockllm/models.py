"""`GET /v1/models` and `GET /v1/models/{id}`: the models scenarios name, in OpenAI's, vLLM's or Anthropic's shape;
and, with recordings, the recorded answer (or the upstream's, when recording)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .admin import json_response
from .dialects import profile
from .faults import error_reply
from .protocols import anthropic as anthropic_protocol
from .protocols.base import openai_headers, request_id

if TYPE_CHECKING:
    from .app import MockApp


class ModelRoutes:
    """The model endpoints of an app."""

    def __init__(self, app: MockApp) -> None:
        self.app = app
        self.state = app.state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
        ]

    def _model_dialect(self, model_id: str) -> str:
        """The dialect of a model's card: that of the first scenario naming it with `dialect:`, else the server's."""
        for scenario in self.state.scenarios.all():
            if scenario.dialect is None:
                continue
            named = {reply.model for reply in scenario.sequence}
            if scenario.when.model is not None:
                named.add(scenario.when.model.exact)
            if model_id in named:
                return scenario.dialect
        return self.state.settings.dialect

    def model_card(self, model_id: str, dialect: str | None = None) -> dict[str, Any]:
        """A model's card in the shape of `dialect` (a route's), else of its scenario's dialect."""
        created = 1700000000
        card = profile(dialect or self._model_dialect(model_id)).model_card
        if card == "google":
            return {"id": model_id, "object": "model", "created": created, "owned_by": "google"}
        if card == "vllm":
            # vLLM's ModelCard (wire-formats.md §8.3).
            return {
                "id": model_id,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": model_id,
                "parent": None,
                "max_model_len": 32768,
                "permission": [
                    {
                        "id": "modelperm-" + hashlib.sha256(model_id.encode()).hexdigest()[:32],
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
        return {"id": model_id, "object": "model", "created": created, "owned_by": "system"}

    async def list_models(self, request: Request) -> Any:
        recorded = await self.app.recorded_models(request)
        if recorded is not None:
            return recorded
        if "anthropic-version" in request.headers:
            # An Anthropic client: its own list shape (the SDK always sends anthropic-version).
            payload = anthropic_protocol.model_list(self.state.model_ids())
            return json_response(payload, headers=anthropic_protocol.response_headers(request_id()))
        data = [self.model_card(model_id) for model_id in self.state.model_ids()]
        return json_response(
            {"object": "list", "data": data}, headers=openai_headers(self.state.settings.dialect, request_id())
        )

    async def get_model(self, request: Request) -> Any:
        recorded = await self.app.recorded_models(request)
        if recorded is not None:
            return recorded
        model_id = request.path_params["model_id"]
        dialect = self.state.settings.dialect
        rid = request_id()
        if "anthropic-version" in request.headers:
            return self._anthropic_model(model_id, rid)
        if model_id in self.state.model_ids():
            return json_response(self.model_card(model_id), headers=openai_headers(self._model_dialect(model_id), rid))
        known = ", ".join(self.state.model_ids()) or "none"
        error = error_reply(
            404,
            "chat",
            dialect,
            rid,
            code="model_not_found",
            param="model",
            message=f"The model `{model_id}` does not exist or you do not have access to it. "
            f"(mockllm serves the models its scenarios name: {known}; add --model to "
            f"serve more.)",
        )
        return Response(error.body, 404, error.headers, "application/json")

    def _anthropic_model(self, model_id: str, rid: str) -> Response:
        if model_id in self.state.model_ids():
            card = anthropic_protocol.model_card(model_id)
            return json_response(card, headers=anthropic_protocol.response_headers(rid))
        known = ", ".join(self.state.model_ids()) or "none"
        message = (
            f"model: {model_id} (mockllm serves the models its scenarios name: {known}; add --model to serve more.)"
        )
        error = error_reply(404, anthropic_protocol.API, self.state.settings.dialect, rid, message=message)
        return Response(error.body, 404, error.headers, "application/json")
