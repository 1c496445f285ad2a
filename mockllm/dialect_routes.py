"""The routes of servers whose paths differ from OpenAI's: Azure OpenAI's deployments and Gemini's OpenAI endpoint.

Each maps to the protocol module that serves the same API under `/v1`, with the server's dialect forced (a scenario's
`dialect:` does not apply: the path says which server the client talks to). Paths and checks follow
reference/wire-formats.md §12.2 (Azure) and §12.3 (Gemini).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .admin import json_response
from .faults import ErrorReply, error_reply
from .models import ModelRoutes
from .protocols import ProtocolModule, embeddings, openai_chat, openai_completions
from .protocols.base import ParsedRequest, compact, request_id

if TYPE_CHECKING:
    from .app import MockApp

AZURE_PREFIX = "/openai/deployments/{deployment}/"
GEMINI_PREFIX = "/v1beta/openai/"
# Azure serves these APIs under a deployment; Gemini these under /v1beta/openai/.
AZURE_APIS: dict[str, ProtocolModule] = {
    "chat/completions": openai_chat,
    "completions": openai_completions,
    "embeddings": embeddings,
}
GEMINI_APIS: dict[str, ProtocolModule] = {"chat/completions": openai_chat, "embeddings": embeddings}


def served_paths() -> list[str]:
    """The dialect routes as a user would write them (for the unknown-route message)."""
    return [
        *(f"POST {AZURE_PREFIX}{suffix}?api-version=..." for suffix in AZURE_APIS),
        *(f"POST {GEMINI_PREFIX}{suffix}" for suffix in GEMINI_APIS),
        f"GET {GEMINI_PREFIX}models",
    ]


@dataclass(frozen=True)
class ForcedRoute:
    """What a dialect route fixes for the request: its dialect, and (Azure) the deployment that stands for the model."""

    dialect: str
    model: str | None = None

    def body(self, body: Any) -> Any:
        """The body to parse: Azure needs no `model` in it, the deployment in the path names it."""
        if self.model is not None and isinstance(body, dict) and body.get("model") is None:
            return {**body, "model": self.model}
        return body

    def apply(self, parsed: ParsedRequest) -> None:
        """Scenarios match the deployment as the model (openai-python's AzureOpenAI moves `model` into the path)."""
        if self.model is not None:
            parsed.model = self.model


# Azure's answers to a deployment path without api-version, and to a request without a key (observed bodies).
_NO_API_VERSION = {"error": {"code": "404", "message": "Resource not found"}}
_NO_KEY = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
        "key for an active subscription and use a correct regional API endpoint for your resource.",
    }
}


class DialectRoutes:
    """The Azure and Gemini routes of an app."""

    def __init__(self, app: MockApp) -> None:
        self.app = app
        self.state = app.state
        self.models = ModelRoutes(app)

    def routes(self) -> list[Route]:
        routes = [
            Route(AZURE_PREFIX + suffix, self._azure(protocol), methods=["POST"])
            for suffix, protocol in AZURE_APIS.items()
        ]
        routes += [
            Route(GEMINI_PREFIX + suffix, self._gemini(protocol), methods=["POST"])
            for suffix, protocol in GEMINI_APIS.items()
        ]
        routes.append(Route(GEMINI_PREFIX + "models", self.gemini_models, methods=["GET"]))
        routes.append(Route(GEMINI_PREFIX + "models/{model_id:path}", self.gemini_model, methods=["GET"]))
        return routes

    def _azure(self, protocol: ProtocolModule) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Any:
            deployment = request.path_params["deployment"]
            if not request.query_params.get("api-version"):
                miss = (
                    f"{request.url.path} has no api-version query, and Azure answers such a request 404 "
                    f"`Resource not found`. Give the client an api_version (openai.AzureOpenAI(api_version="
                    f"'2024-10-21', ...), or OPENAI_API_VERSION) or add ?api-version=2024-10-21 to the URL."
                )
                return await self._refuse(request, protocol.API, 404, _NO_API_VERSION, miss)
            if "api-key" not in request.headers and "authorization" not in request.headers:
                return await self._refuse(request, protocol.API, 401, _NO_KEY, None)
            return await self.app.handle(protocol, request, ForcedRoute("azure", deployment))

        return endpoint

    def _gemini(self, protocol: ProtocolModule) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Any:
            return await self.app.handle(protocol, request, ForcedRoute("gemini-openai"))

        return endpoint

    async def _refuse(self, request: Request, api: str, status: int, body: Any, miss: str | None) -> Response:
        """An answer Azure gives before looking at the body, journaled (with `miss` when the client is wrong)."""
        entry = self.state.journal.open(request.method, request.url.path)
        entry.api = api
        entry.miss = miss
        raw = await request.body()
        entry.body = raw.decode("utf-8", "replace") or None
        rid = request_id()
        reply = ErrorReply(
            status, {"x-request-id": rid}, compact(body), body["error"]["code"], body["error"]["message"]
        )
        return self.app._error(entry, reply)

    async def gemini_models(self, request: Request) -> Any:
        """`GET /v1beta/openai/models`: the scenarios' models as Gemini lists them."""
        data = [self.models.model_card(model_id, "gemini-openai") for model_id in self.state.model_ids()]
        return json_response({"object": "list", "data": data})

    async def gemini_model(self, request: Request) -> Any:
        """`GET /v1beta/openai/models/{id}`, or Google's 404."""
        model_id = request.path_params["model_id"]
        if model_id in self.state.model_ids():
            return json_response(self.models.model_card(model_id, "gemini-openai"))
        known = ", ".join(self.state.model_ids()) or "none"
        message = (
            f"models/{model_id} is not found for API version v1beta. (mockllm serves the models its scenarios name: "
            f"{known}; add --model to serve more.)"
        )
        error = error_reply(404, "chat", "gemini-openai", request_id(), message=message)
        return Response(error.body, 404, error.headers, "application/json")
