"""Log output of `mockllm serve`: one line per request, plain text or one JSON object a line.

Every record goes through one handler on the root logger, so uvicorn's own start-up, error and shutdown lines
(its access log is off: `uvicorn_config(access_log=False)`) share our format. A record may carry structured
`fields` (`log.info(..., extra={"fields": {...}})`): the JSON format puts them at the top level of the object;
the plain format shows only the message, which already says the same in words.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .journal import Entry

LOG_FORMATS = ("plain", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

log = logging.getLogger("mockllm")


class PlainFormatter(logging.Formatter):
    """`2026-01-31 12:00:00,123 INFO POST /v1/chat/completions greet 200 0.312s`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The date and time to the second are formatted once a second, not once a line: under load that is most
        # of a line's cost.
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: `time` (ISO 8601, UTC), `level`, `logger`, `message`, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        payload: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update({key: value for key, value in fields.items() if key not in ("time", "level", "logger")})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        # A line per record whatever the content: json.dumps escapes newlines inside strings.
        return json.dumps(payload, ensure_ascii=False, default=str)


class _MockllmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler `configure_logging` installed, so that calling it again replaces it."""


class _Redacting(logging.Filter):
    """No API key, bearer token or `--redact` match reaches the log, whoever logs it (an HTTP library at debug
    level, an error message quoting an upstream's answer)."""

    patterns: tuple[str, ...] = ()

    def filter(self, record: logging.LogRecord) -> bool:
        from .redaction import redactor

        message = record.getMessage()
        clean = redactor(_Redacting.patterns).text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


# The loggers whose level `configure_logging` sets ("" is the root), and their levels before, for `reset_logging`.
_CONFIGURED = ("", "mockllm", "httpx", "httpcore")
_saved_levels: dict[str, int] = {}


def configure_logging(log_format: str = "plain", level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log record (mockllm's, uvicorn's, Python's warnings) to `stream` (stderr) in `log_format`."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; choose from {', '.join(LOG_FORMATS)}")
    handler = _MockllmHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else PlainFormatter())
    handler.addFilter(_Redacting())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _MockllmHandler)]:
        root.removeHandler(old)
    if not _saved_levels:
        _saved_levels.update({name: logging.getLogger(name or None).level for name in _CONFIGURED})
    root.addHandler(handler)
    root.setLevel(level.upper())
    log.setLevel(level.upper())
    # uvicorn's loggers propagate to the root (mockllm runs it with log_config=None); its access log stays off.
    logging.getLogger("uvicorn.access").disabled = True
    # The proxy's HTTP client logs every header it sends at debug level: only its warnings are worth a line.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    logging.captureWarnings(True)


def redact_logs(patterns: Sequence[str], secrets: Sequence[str] = ()) -> None:
    """Scrub these `--redact` patterns from every log line too (API keys and bearer tokens always are), and the
    server's own `secrets` (`--api-key`, `--admin-token`) whatever they look like."""
    _Redacting.patterns = (*patterns, *(re.escape(secret) for secret in secrets if secret))


def reset_logging() -> None:
    """Remove what `configure_logging` installed (for a `serve` run inside a longer-lived process, like a test)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _MockllmHandler)]:
        root.removeHandler(old)
    for name, saved in _saved_levels.items():
        logging.getLogger(name or None).setLevel(saved)
    _saved_levels.clear()
    logging.captureWarnings(False)


def request_fields(entry: Entry) -> dict[str, Any]:
    """The structured fields of a request's log line."""
    return {
        "event": "request",
        "id": entry.id,
        "method": entry.method,
        "path": entry.path,
        "scenario": entry.scenario,
        "miss": entry.miss is not None,
        "status": entry.status,
        "duration": entry.duration,
        "fault": entry.fault,
        "outcome": entry.outcome,
        "chunks": entry.chunks,
        "warning": entry.warning,
    }


def log_request(entry: Entry) -> None:
    """The one log line of a finished request: method, path, scenario id or `miss`, status, duration, fault.

    Registered as a `MockState` listener; the reason of a miss follows at debug level.
    """
    outcome = entry.scenario or ("miss" if entry.miss else "-")
    fault = f" fault={entry.fault}" if entry.fault else ""
    if entry.outcome not in (None, "complete"):
        fault += f" outcome={entry.outcome}"
    log.info(
        "%s %s %s %s %.3fs%s",
        entry.method,
        entry.path,
        outcome,
        entry.status if entry.status is not None else "-",
        entry.duration or 0.0,
        fault,
        extra={"fields": request_fields(entry)},
    )
    if entry.warning:
        log.warning("request %d: %s", entry.id, entry.warning, extra={"fields": {"event": "warning", "id": entry.id}})
    if entry.miss:
        log.debug("request %d matched no scenario: %s", entry.id, entry.miss, extra={"fields": {"event": "miss"}})
