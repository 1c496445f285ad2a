"""Requests to paths the server does not serve: what was asked, what is served, and the likely fix.

A client with a wrong base URL gets a 404 from any server; from a mock it must also be loud, because a test
that quietly hits an unserved path would otherwise pass. So these requests are journaled like any other, with
`miss` set, and the pytest plugin fails the test that made them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .dialect_routes import served_paths

# Suffixes the SDKs append to their base URL, with the route that serves each (for "did you mean" hints).
_API_SUFFIXES = (
    "/chat/completions",
    "/completions",
    "/responses",
    "/messages",
    "/embeddings",
    "/models",
)


def served_routes(api_routes: Iterable[str]) -> list[str]:
    """Every route the server answers, as a user would write it."""
    return [
        *(f"POST {path}" for path in sorted(api_routes)),
        "GET /v1/models",
        "GET /v1/models/{id}",
        *served_paths(),
        "/_mockllm/ (admin API: health, scenarios, requests, reset)",
    ]


def _suffix(path: str) -> str | None:
    """The API suffix a path ends with (`/chat/completions` ...), if any."""
    for suffix in _API_SUFFIXES:
        if path.endswith(suffix) or (suffix == "/models" and "/models/" in path):
            return suffix
    return None


def likely_fix(method: str, path: str, api_routes: Iterable[str]) -> str:
    """One sentence on what probably went wrong, for the common mistakes with base URLs."""
    routes = set(api_routes)
    if path in routes:
        return f"{path} takes POST, not {method}; send a POST with a JSON body."
    if path.startswith("/_mockllm/"):
        return (
            "the admin API serves GET /_mockllm/health, GET|POST|DELETE /_mockllm/scenarios, "
            "GET|DELETE /_mockllm/requests and POST /_mockllm/reset."
        )
    if path.startswith("/v1/v1/"):
        return (
            f"the path has /v1 twice: the client's base URL already ends in /v1 and the client adds another. "
            f"Drop /v1 from the base URL (the Anthropic SDK adds /v1 itself: use the server's root URL, "
            f"`{path[3:]}` is served)."
        )
    if path.startswith("/openai/"):
        return (
            "this is an Azure OpenAI path; mockllm serves Azure's chat/completions, completions and embeddings under "
            "/openai/deployments/{deployment}/ (api-version in the query; the azure dialect). Point "
            "`openai.AzureOpenAI(azure_endpoint=<the server's root URL>, api_version=..., api_key=...)` at it, or an "
            "`openai.OpenAI` client at the server's /v1 URL for the other APIs."
        )
    if path.startswith("/v1beta/openai/"):
        return (
            "Gemini's OpenAI-compatible endpoint is served for chat/completions, embeddings and models only: use "
            "the server's URL plus /v1beta/openai/ as the OpenAI client's base_url."
        )
    suffix = _suffix(path)
    if suffix is not None and not path.startswith("/v1/"):
        target = "/v1" + path[path.rindex(suffix) :] if suffix != "/models" else "/v1/models"
        return (
            f"the base URL is missing /v1: the server serves {target}. Use the server's URL with /v1 as the "
            f"OpenAI client's base_url (mockllm.openai_base_url in tests); the Anthropic client takes the root URL."
        )
    return "check the client's base URL: OpenAI clients take the server's URL plus /v1, Anthropic clients its root."


def unknown_route_message(method: str, path: str, api_routes: Iterable[str]) -> str:
    """The text of the 404 and of the journal's `miss` for a request to a path that is not served."""
    routes = list(api_routes)
    served = "; ".join(served_routes(routes))
    return (
        f"mockllm does not serve {method} {path}. Likely fix: {likely_fix(method, path, routes)} "
        f"Served routes: {served}."
    )
