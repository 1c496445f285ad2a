"""The failure text the pytest plugin shows for a test's problem requests: misses (with the closest scenarios and
what differed), violations of the real API's rules, and replies that loop."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .journal import Entry


def describe_problems(entries: Sequence[Entry], hint: str | None = None) -> str:
    """The failure message for this test's requests that matched no scenario, broke a rule of the real API (under
    `--validate warn`) or were answered with a warning (and, in replay mode, how to record the missing exchanges)."""
    misses = [entry for entry in entries if entry.miss is not None or entry.violation is not None]
    warned = [entry for entry in entries if entry.warning is not None]
    parts = [describe_misses(misses, hint)] if misses else []
    if warned:
        parts.append(describe_warnings(warned))
    return "\n\n".join(parts)


def describe_warnings(entries: Sequence[Entry]) -> str:
    """The failure message for requests answered with a warning: each request, the warning and its fix."""
    count = len(entries)
    lines = [f"mockllm: {count} request{'s' if count != 1 else ''} in this test got a reply that loops."]
    for number, entry in enumerate(entries, 1):
        lines += ["", f"{number}. {entry.method} {entry.path}", f"   {entry.warning}"]
    lines += ["", "Fix the scenario order or conditions as above, or allow it with @pytest.mark.mockllm(strict=False)."]
    return "\n".join(lines)


def describe_misses(entries: Sequence[Entry], hint: str | None = None) -> str:
    """The failure message for requests that matched no scenario: each request and the closest scenarios (and, in
    replay mode, how to record the missing exchanges)."""
    broken = [entry for entry in entries if entry.violation is not None]
    entries = [entry for entry in entries if entry.violation is None]
    count = len(entries)
    lines = [f"mockllm: {count} request{'s' if count != 1 else ''} in this test matched no scenario."] if count else []
    for number, entry in enumerate(entries, 1):
        lines += ["", f"{number}. {entry.method} {entry.path}", f"   body: {_show_body(entry)}"]
        lines += [f"   {line}" for line in (entry.miss or "").splitlines()]
    if broken:
        lines += _describe_violations(broken)
    if not count:
        return "\n".join(lines)
    lines += [
        "",
        "Add a scenario for each request (mockllm.add(when=..., reply=...) or a file in @pytest.mark.mockllm(...)), "
        "or allow unmatched requests with @pytest.mark.mockllm(strict=False).",
    ]
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def _show_body(entry: Entry) -> str:
    body = json.dumps(entry.body, ensure_ascii=False) if entry.body is not None else "(none)"
    return body[:599] + "…" if len(body) > 600 else body


def _describe_violations(entries: Sequence[Entry]) -> list[str]:
    """Requests answered under `--validate warn` although the real API would refuse them."""
    count = len(entries)
    lines = [f"mockllm: {count} request{'s' if count != 1 else ''} in this test would be refused by the real API."]
    for number, entry in enumerate(entries, 1):
        violation = entry.violation or {}
        lines += ["", f"{number}. {entry.method} {entry.path} broke the rule `{violation.get('rule')}`"]
        lines += [f"   body: {_show_body(entry)}", f"   {violation.get('message')}"]
    lines += [
        "",
        "Fix the request the client sends, or, for a test that sends a bad request on purpose, add `validate: off` to "
        "the scenario that answers it.",
    ]
    return lines
