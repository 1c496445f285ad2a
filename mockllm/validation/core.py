"""What every API's rules share: the `Violation` a broken rule produces.

A rule is a contract the real API enforces on a well-formed request (pairing of tool calls and results, parameters
that exclude each other, ...). Structural checks (JSON types, required fields, numeric ranges) stay in the protocol
modules' `parse`; the rules here run after a scenario is selected, so that `--validate off` and a scenario's
`validate: off` can let a deliberately bad request through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODES = ("strict", "warn", "off")


@dataclass(frozen=True)
class Violation:
    """A request the real API would refuse: its status, error type, `param`, `code` and message (the API's own
    words), plus the rule's id and one sentence that names the rule in plain words."""

    rule: str
    message: str
    explanation: str
    param: str | None = None
    code: str | None = None
    type: str = "invalid_request_error"
    status: int = 400

    @property
    def full_message(self) -> str:
        """The API's message, then the rule, the way the client sees it."""
        return (
            f"{self.message} (mockllm rule `{self.rule}`: {self.explanation} Send `validate: off` on the scenario "
            f"to let such a request through on purpose.)"
        )

    def summary(self) -> dict[str, Any]:
        """What the journal keeps about it (the `violation` key)."""
        return {"rule": self.rule, "message": self.full_message}
