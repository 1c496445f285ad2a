"""`mockllm check`'s dialect warnings: replies the dialect they will be served in cannot show as written.

Each warning says what the client will see instead, and how to get what the scenario means.
"""

from __future__ import annotations

from collections.abc import Iterable

from .dialects import profile
from .scenarios import Scenario

# APIs whose replies cannot carry a tool call in any dialect (legacy Completions has text only).
_TEXT_ONLY = ("completions", "embeddings")


def dialect_warnings(scenarios: Iterable[Scenario], default: str) -> list[str]:
    """One line per problem, `file:line: ...`, for scenarios served in `default` unless they name a `dialect:`."""
    out: list[str] = []
    for scenario in scenarios:
        name = scenario.dialect or default
        dialect = profile(name)
        where = f"{scenario.location}: scenario `{scenario.name}`"
        api = scenario.when.api
        if api is not None and api not in ("chat", "completions", "embeddings"):
            continue  # Responses and Messages have no dialects
        for reply in scenario.sequence:
            for choice in reply.all_choices():
                if choice.reasoning and dialect.reasoning_field is None and api != "completions":
                    out.append(
                        f"{where} replies with `reasoning`, but the {name} dialect has no reasoning field: the "
                        f"client sees only the text (the reasoning counts in "
                        f"usage.completion_tokens_details.reasoning_tokens). Serve it with `dialect: vllm` "
                        f"(`reasoning`) or `dialect: vllm-0.10` (`reasoning_content`) to test a client that reads "
                        f"reasoning"
                    )
                if choice.refusal and dialect.vllm:
                    out.append(
                        f"{where} replies with `refusal`, but the {name} dialect has no refusal field: the client "
                        f"sees the refusal as ordinary `content`. Use `dialect: openai` to test refusal handling"
                    )
                if choice.tool_calls and api in _TEXT_ONLY:
                    out.append(
                        f"{where} replies with `tool_calls` on the {api} API, which cannot carry a tool call: the "
                        f"client sees none. Match `api: chat` instead"
                    )
            error = reply.error
            if error is not None and error.code == "content_filter" and dialect.errors != "azure":
                out.append(
                    f"{where} answers an error with `code: content_filter`; in the {name} dialect that is a plain "
                    f"{error.status} without Azure's `innererror.content_filter_result`. Use `dialect: azure` (or the "
                    f"Azure paths) for Azure's blocked-prompt error"
                )
    return out
