"""Secrets out of recordings, and requests reduced to what a recording is matched on.

Redaction runs on everything the recorder writes (request bodies, kept headers, answers) and on every incoming
request before it is compared with a recording, so a recording made with `--redact PATTERN` matches later
requests without the flag: the patterns are stored in the file's `recorded.redact`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

# API keys and bearer tokens, whatever field or header they turn up in (an upstream may echo them back).
SECRET_PATTERNS = (
    r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}",  # OpenAI user, project, service-account and admin keys
    r"(?<=[Bb][Ee][Aa][Rr][Ee][Rr] )[A-Za-z0-9._~+/\-]{8,}=*",  # the token of an `Authorization: Bearer ...` value
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API keys
)
# Request and response headers whose value is a credential: never written, whatever their value looks like.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "set-cookie"}
)
# Request fields that differ between runs of the same code; dropped on both sides before comparing (DESIGN.md).
VOLATILE_FIELDS = ("user", "metadata")


class Redactor:
    """Replaces secrets and the user's patterns with `[REDACTED]` in text and in JSON values."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        # Compiled one by one (a user's pattern may carry its own flags, like `(?i)`), applied in order.
        self._regexes = [re.compile(pattern) for pattern in (*SECRET_PATTERNS, *self.patterns)]

    def text(self, value: str) -> str:
        """`value` with every secret and pattern match replaced."""
        for regex in self._regexes:
            value = regex.sub(REDACTED, value)
        return value

    def json(self, value: Any) -> Any:
        """A JSON value with every string (keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(key)): self.json(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers without credentials, the others redacted."""
        return {name: self.text(value) for name, value in headers.items() if name.lower() not in SECRET_HEADERS}


@functools.lru_cache(maxsize=64)
def redactor(patterns: tuple[str, ...] = ()) -> Redactor:
    """A shared redactor for a set of patterns (compiling the combined expression once)."""
    return Redactor(patterns)


def normalize_request(body: Any, patterns: tuple[str, ...] = ()) -> Any:
    """A request body as recordings store and compare it: volatile fields dropped, secrets redacted."""
    if not isinstance(body, Mapping):
        return redactor(patterns).json(body)
    out = {key: value for key, value in body.items() if key not in VOLATILE_FIELDS}
    options = out.get("stream_options")
    if isinstance(options, Mapping) and "include_obfuscation" in options:
        trimmed = {key: value for key, value in options.items() if key != "include_obfuscation"}
        if trimmed:
            out["stream_options"] = trimmed
        else:
            del out["stream_options"]
    return redactor(patterns).json(out)
