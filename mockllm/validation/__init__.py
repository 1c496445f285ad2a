"""Contract validation ("no false greens"): the rules each real API enforces on a well-formed request.

`enforce` is the one call site in `app.py`: after a scenario is selected (or none is), it runs the rules of the
request's API unless the server's `--validate` is `off`, the scenario says `validate: off`, or the scenario is a
recording (the real API's own answer to that very request). In `strict` mode a violation is the API's 400 in the
protocol's error shape, never retried; in `warn` mode the request is answered and the violation goes on the journal
entry (`violation`) and into the log, and the pytest plugin fails the test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..faults import ErrorReply, error_reply
from ..journal import Entry
from ..matching import Selection
from ..protocols.base import ParsedRequest
from . import chat, messages, responses
from .core import MODES, Violation

__all__ = ["MODES", "Violation", "check", "enforce"]

log = logging.getLogger("mockllm")

# API -> its rules. Embeddings have none beyond parsing.
RULES: dict[str, Callable[[ParsedRequest], Violation | None]] = {
    "chat": chat.check,
    "completions": lambda request: chat.stream_options(request.body),
    "messages": messages.check,
    "responses": responses.check,
}


def check(request: ParsedRequest) -> Violation | None:
    """The first rule of its API this request breaks, or None."""
    rules = RULES.get(request.api)
    return rules(request) if rules is not None else None


def enforce(
    request: ParsedRequest, mode: str, selection: Selection | None, entry: Entry, dialect: str, rid: str
) -> ErrorReply | None:
    """The 400 to send instead of an answer (`strict`), or None: no rule broken, validation off, or `warn` (then the
    violation is journaled and logged)."""
    if mode == "off":
        return None
    if selection is not None and (selection.scenario.validation == "off" or selection.reply.raw is not None):
        return None
    violation = check(request)
    if violation is None:
        return None
    if mode == "warn":
        entry.violation = violation.summary()
        log.warning(
            "request %d breaks the %s rule `%s`: %s",
            entry.id,
            request.api,
            violation.rule,
            violation.full_message,
            extra={"fields": {"event": "violation", "rule": violation.rule}},
        )
        return None
    return error_reply(
        violation.status,
        request.api,
        dialect,
        rid,
        type=violation.type,
        code=violation.code,
        message=violation.full_message,
        param=violation.param,
        should_retry=False,
    )
