"""Error responses in each protocol's shape, and the mid-stream error event.

Defaults per status follow reference/wire-formats.md §5 (OpenAI), §7.3 (Anthropic), §8.2 (vLLM), §12.2 (Azure) and
§12.3 (Gemini).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .dialects import filter_verdict, profile
from .protocols.anthropic import rate_limit_headers, response_headers
from .protocols.base import DONE, Frame, compact
from .scenarios import ErrorSpec
from .sse import data_event, named_event

# status: (type, code, message) in OpenAI's shape.
_OPENAI: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("request_forbidden", "unsupported_country_region_territory", "Country, region, or territory not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    408: ("timeout", None, "Request timed out."),
    409: ("invalid_request_error", "conflict", "The request conflicts with another request."),
    422: ("invalid_request_error", None, "The request could not be processed."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: (
        "server_error",
        None,
        "The server had an error processing your request. Sorry about that! You can retry your request.",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}

# vLLM names its error types after Python exceptions and sends the status as an int code (§8.2).
_VLLM: dict[int, str] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    408: "TimeoutError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}

# google.rpc.Code names per HTTP status (Gemini's OpenAI-compatible endpoint, wire-formats.md §12.3).
_GOOGLE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_AZURE_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify "
    "your prompt and retry. To learn more about our content filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766"
)

_ANTHROPIC: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your organization's rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error ready to send."""

    status: int
    headers: dict[str, str]
    body: bytes
    type: str
    message: str

    def summary(self) -> dict[str, Any]:
        """What the journal records about it."""
        return {"status": self.status, "type": self.type, "message": self.message}


def family_of(api: str) -> str:
    """The error family of an API: `anthropic` for Messages, `openai` for the rest."""
    return "anthropic" if api == "messages" else "openai"


def error_reply(
    status: int,
    api: str,
    dialect: str,
    request_id: str,
    *,
    type: str | None = None,
    code: str | int | None = None,
    message: str | None = None,
    param: str | None = None,
    should_retry: bool | None = None,
    headers: dict[str, str] | None = None,
    raw_body: Any = None,
    explicit_code: bool = False,
) -> ErrorReply:
    """An error in the shape of the request's protocol, with the status's usual type and message."""
    out: dict[str, str] = {}
    if family_of(api) == "anthropic":
        default_type, default_message = _ANTHROPIC.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "Error")
        )
        kind = type or default_type
        text = message or default_message
        payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": text}, "request_id": request_id}
        out.update(response_headers(request_id))  # request-id equal to the body's, and the organization
    elif (shape := profile(dialect).errors) == "google":
        # google.rpc.Status (wire-formats.md §12.3): an int `code`, the message, and the status name.
        text = message or _OPENAI.get(status, ("", None, "Error"))[2]
        kind = type or _GOOGLE.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        payload = {"error": {"code": status, "message": text, "status": kind}}
    elif shape == "azure" and code == "content_filter":
        # A blocked prompt (§12.2): OpenAI's fields plus the status and Azure's verdict under `innererror`.
        kind = type or "content_filter"
        text = message or _AZURE_FILTERED
        payload = {
            "error": {
                "message": text,
                "type": type,
                "param": param or "prompt",
                "code": "content_filter",
                "status": status,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": filter_verdict("violence", jailbreak=True),
                },
            }
        }
        out["x-request-id"] = request_id
    elif shape == "vllm":
        kind = type or _VLLM.get(status, "InternalServerError" if status >= 500 else "BadRequestError")
        text = message or _OPENAI.get(status, ("", None, "Error"))[2]
        # vLLM's `code` is the int HTTP status; OpenAI's string codes (`invalid_type`, `model_not_found` ...) that
        # mockllm's own errors carry give way to it. A code a scenario sets is the user's choice and is kept.
        shown = code if code is not None and (explicit_code or isinstance(code, int)) else status
        payload = {"error": {"message": text, "type": kind, "param": param, "code": shown}}
    else:
        default_type, default_code, default_message = _OPENAI.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error")
        )
        kind = type or default_type
        text = message or default_message
        payload = {
            "error": {
                "message": text,
                "type": kind,
                "param": param,
                "code": code if code is not None or type else default_code,
            }
        }
        out["x-request-id"] = request_id
    if should_retry is not None:
        out["x-should-retry"] = "true" if should_retry else "false"
    out.update(headers or {})
    if raw_body is None:
        body = compact(payload)
    elif isinstance(raw_body, str):
        body = raw_body.encode()
    else:
        body = json.dumps(raw_body, ensure_ascii=False).encode()
    return ErrorReply(status, out, body, kind, text)


def scenario_error(spec: ErrorSpec, api: str, dialect: str, request_id: str, time_scale: float = 1.0) -> ErrorReply:
    """The error a scenario's `error:` block describes.

    `retry_after` is scaled by `time_scale` like every other wait, so that a 429 under `--time-scale 0` is retried
    at once: the SDKs obey the header (wire-formats.md §6). A scaled value never goes below 1 ms, because the SDKs
    read 0 as "no server advice" and fall back to their own backoff of about half a second. At scale 1 the values
    are sent as written.
    """
    headers = dict(spec.headers or {})
    seconds = spec.retry_after
    if seconds is not None:
        if time_scale != 1:
            seconds = max(0.001, seconds * time_scale)
        headers.setdefault("retry-after", _format_seconds(seconds))
        headers.setdefault("retry-after-ms", _format_seconds(round(seconds * 1000, 3)))
    if spec.status == 429 and family_of(api) == "anthropic":
        # Anthropic says which limit ran out and when it resets, as RFC 3339 timestamps (wire-formats.md §7.4).
        headers = {**rate_limit_headers(seconds), **headers}
    return error_reply(
        spec.status,
        api,
        dialect,
        request_id,
        type=spec.type,
        code=spec.code,
        message=spec.message,
        param=spec.param,
        should_retry=spec.should_retry,
        headers=headers,
        raw_body=spec.body,
        explicit_code=True,
    )


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def error_event_frames(api: str, dialect: str, type: str | None, message: str | None) -> list[Frame]:
    """The protocol's mid-stream error event (and terminator), sent on an open 200 stream."""
    text = message or "The server had an error while processing your request. Sorry about that!"
    if family_of(api) == "anthropic":
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"details": None, "type": type or "overloaded_error", "message": message or "Overloaded"},
        }
        return [Frame(named_event("error", payload), "tail")]
    shape = profile(dialect).errors
    if shape == "vllm":
        error: dict[str, Any] = {"message": text, "type": type or "InternalServerError", "param": None, "code": 500}
    elif shape == "google":
        error = {"code": 500, "message": text, "status": type or "INTERNAL"}
    else:
        error = {"message": text, "type": type or "server_error", "param": None, "code": None}
    return [Frame(data_event({"error": error}), "tail"), DONE]
