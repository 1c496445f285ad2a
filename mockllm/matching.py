"""Conditions, first-match selection, sequences, and explanations of a miss."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import drift
from .index import Index, WhenValues, normalized_body
from .protocols.base import ParsedRequest
from .scenarios import Reply, Scenario, StringCondition, When

# Token ids cannot be read back as text without the model's tokenizer files, which are not available offline.
TOKEN_IDS = (
    "the input arrived as token ids, which mockllm cannot read as text (LangChain's OpenAIEmbeddings sends token "
    "ids by default: pass check_embedding_ctx_length=False to send the text)"
)


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one condition of a scenario against one request."""

    condition: str
    passed: bool
    detail: str


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + '…"'


@functools.cache
def _plain(name: str, passed: bool) -> Check:
    """A check without detail: one shared instance per name and outcome (matching makes millions of them)."""
    return Check(name, passed, "")


def _string(name: str, condition: StringCondition, value: str | None, explain: bool = True) -> Check:
    if value is None:
        if not explain:
            return _plain(name, False)
        return Check(name, False, f"expected {condition.describe()}, but the request has no {name}")
    if condition.test(value):
        return _plain(name, True)
    return (
        Check(name, False, f"expected {condition.describe()}, got {_show(value)}") if explain else _plain(name, False)
    )


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


def _tool_name(condition: StringCondition) -> str:
    """A tool-name condition for messages: the bare name when exact (as users write it), else `contains "x"`."""
    return condition.exact if condition.exact is not None else f"a tool matching {condition.describe()}"


def _body_check(expected: dict[str, Any], body: dict[str, Any]) -> Callable[[], str] | None:
    """None when `body` holds `expected`, else what differs (a callable: it is worded only when shown)."""
    for key, value in expected.items():
        if key not in body:
            return lambda: f"expected `{key}` in the body, but the request has none"
        if not _subset(value, body[key]):
            return lambda: f"expected `{key}` = {_show(value)}, got {_show(body[key])}"
    return None


def _messages_check(condition: int | list[Any], messages: list[tuple[str, str]]) -> Callable[[], str] | None:
    """None when the conversation satisfies the `messages` condition, else what differs (worded when shown)."""
    if isinstance(condition, int):
        if len(messages) == condition:
            return None
        return lambda: f"expected {condition} messages, got {len(messages)}"
    if len(condition) != len(messages):
        return lambda: f"expected {len(condition)} messages, got {len(messages)}"
    for index, (wanted, (role, text)) in enumerate(zip(condition, messages, strict=True)):
        for name, value in (("role", role), ("content", text)):
            cond = getattr(wanted, name)
            if cond is not None and not cond.test(value):
                return lambda: f"messages[{index}].{name}: expected {cond.describe()}, got {_show(value)}"
    return None


def _worded(name: str, ok: bool, detail: Callable[[], str] | None) -> Check:
    return _plain(name, ok) if ok or detail is None else Check(name, ok, detail())


def _unworded(name: str, ok: bool, detail: Callable[[], str] | None) -> Check:
    return _plain(name, ok)


def _checks(when: When, request: ParsedRequest, explain: bool = True) -> Iterator[Check]:
    """Every condition of `when` against the request, in a stable order, lazily (matching stops at a failure).

    Without `explain` a failed check has no detail: matching and ranking a miss's closest scenarios only count
    failures, and wording them (values dumped as JSON, a recording's differences) cost more than the test.
    """

    check = _worded if explain else _unworded
    if when.api is not None:
        ok = when.api == request.api
        yield check("api", ok, lambda: f"expected {when.api}, got {request.api}")
    if when.model is not None:
        yield _string("model", when.model, request.model, explain)
    if when.stream is not None:
        ok = when.stream == request.stream
        yield check("stream", ok, lambda: f"expected {str(when.stream).lower()}, got {str(request.stream).lower()}")
    if (prompt := when.prompt) is not None:
        if not request.prompts and any(not isinstance(item, str) for item in request.inputs):
            yield check("prompt", False, lambda: f"expected {prompt.describe()}, but {TOKEN_IDS}")
        elif not request.prompts:
            yield check("prompt", False, lambda: f"expected {prompt.describe()}, but the request has no prompt")
        else:
            failed = next((p for p in request.prompts if not prompt.test(p)), None)
            yield _string("prompt", prompt, failed, explain) if failed is not None else _plain("prompt", True)
    if when.system is not None:
        yield _string("system", when.system, request.system, explain)
    if when.messages is not None:
        differs = _messages_check(when.messages, request.messages)
        yield check("messages", differs is None, differs)
    if when.tools is not None:
        # Each entry needs some offered tool of its own kind; frameworks name tools themselves (`final_result`).
        missing = [cond for cond in when.tools if not any(cond.test(name) for name in request.tools)]
        yield check(
            "tools",
            not missing,
            lambda: (
                f"the request does not offer {', '.join(_tool_name(cond) for cond in missing)} "
                f"(offers: {', '.join(request.tools) or 'none'})"
            ),
        )
    if (after := when.after_tool) is not None:
        ok = any(after.test(name) for name in request.tool_results)
        yield check(
            "after_tool",
            ok,
            lambda: (
                f"expected a result of {_tool_name(after)}, got "
                f"{', '.join(request.tool_results) or 'no tool results after the last assistant message'}"
            ),
        )
    if when.headers is not None:
        for name, condition in when.headers.items():
            yield _string(f"headers.{name.lower()}", condition, request.headers.get(name.lower()), explain)
    if when.body is not None:
        differs = _body_check(when.body, request.body)
        yield check("body", differs is None, differs)
    if when.turn is not None:
        ok = when.turn == request.turn
        yield check("turn", ok, lambda: f"expected turn {when.turn}, got {request.turn}")
    if when.request is not None:
        # A recording answers only the very request it was made for: the normalised bodies must be equal.
        got_body = normalized_body(request, when._redact)
        recorded = when.request
        ok = got_body == recorded
        yield check(
            "request", ok, lambda: f"the request differs from the recording: {drift.explain(recorded, got_body)}"
        )


def evaluate(when: When, request: ParsedRequest) -> list[Check]:
    """Every condition of `when` against the request, in a stable order."""
    return list(_checks(when, request))


def matches(when: When, request: ParsedRequest) -> bool:
    """Do all conditions hold?"""
    return all(check.passed for check in _checks(when, request, explain=False))


@dataclass(frozen=True, slots=True)
class Selection:
    """The scenario chosen for a request and the reply of its sequence to send."""

    scenario: Scenario
    reply: Reply
    position: int


class UnknownScenario(LookupError):
    """`x-mockllm-scenario` named an id that is not loaded."""


class Scenarios:
    """The loaded scenarios in match order, with sequence positions; safe to use from several threads.

    Runtime scenarios and the files' are indexed apart (`index.py`), so that adding a scenario at runtime re-files
    the few runtime ones, not ten thousand recordings. Every change swaps in a new index under the lock.
    """

    def __init__(self, files: Iterable[Scenario] = ()) -> None:
        self._lock = threading.Lock()
        self._files: list[Scenario] = list(files)
        self._runtime: list[Scenario] = []
        self._positions: dict[str, int] = {}
        self._files_index = Index(self._files)
        self._runtime_index = Index(())
        self._ordered: list[Scenario] = list(self._files)

    def _reorder(self, files: bool = True) -> None:
        """After a change: the match order and the indexes (the files' only if `files` changed)."""
        if files:
            self._files_index = Index(self._files)
        self._runtime_index = Index(reversed(self._runtime))
        self._ordered = [*self._runtime_index.scenarios, *self._files]

    def all(self) -> list[Scenario]:
        """Every scenario in match order: runtime ones (newest first), then the files' in load order."""
        return list(self._ordered)

    @property
    def file_scenarios(self) -> list[Scenario]:
        return list(self._files)

    @property
    def runtime_scenarios(self) -> list[Scenario]:
        return list(self._runtime)

    def replace_files(self, scenarios: Iterable[Scenario]) -> None:
        """Swap the file-loaded scenarios (reload); positions of ids that remain are kept."""
        with self._lock:
            self._files = list(scenarios)
            self._reorder()

    def upsert_files(self, scenarios: Iterable[Scenario]) -> None:
        """Add scenarios as if loaded from files (a new recording), replacing those with the same id in place; a
        replaced scenario's sequence starts again."""
        with self._lock:
            files = list(self._files)
            where = {s.name: i for i, s in reversed(list(enumerate(files)))}  # the first scenario with each id
            for scenario in scenarios:
                index = where.get(scenario.name)
                if index is None:
                    where[scenario.name] = len(files)
                    files.append(scenario)
                else:
                    files[index] = scenario
                self._positions.pop(scenario.name, None)
            self._files = files
            self._reorder()

    def add(self, scenarios: Iterable[Scenario]) -> None:
        """Add runtime scenarios: they match before everything added earlier, in their own order.

        A runtime scenario replaces an earlier runtime one with its id; an id of a file's scenario is a ValueError.
        """
        batch = list(scenarios)
        with self._lock:
            files = self._files_index.names
            for scenario in batch:
                if scenario.name in files:
                    raise ValueError(
                        f"the id `{scenario.name}` ({scenario.location}) is already used by the scenario at "
                        f"{files[scenario.name].location}; choose another id"
                    )
            ids = {s.name for s in batch}
            # _runtime is oldest first and matched newest first: store the batch reversed to keep its order.
            self._runtime = [s for s in self._runtime if s.name not in ids] + batch[::-1]
            for scenario in batch:
                self._positions.pop(scenario.name, None)
            self._reorder(files=False)

    def clear_runtime(self) -> None:
        """Back to the scenarios loaded from files."""
        with self._lock:
            for scenario in self._runtime:
                self._positions.pop(scenario.name, None)
            self._runtime = []
            self._reorder(files=False)

    def reset_positions(self) -> None:
        """Every sequence starts again at its first reply."""
        with self._lock:
            self._positions.clear()

    def ids(self) -> set[str]:
        return {scenario.name for scenario in self._ordered}

    def get(self, scenario_id: str) -> Scenario | None:
        with self._lock:
            return self._named(scenario_id)

    def _named(self, scenario_id: str) -> Scenario | None:
        """The first scenario in match order with this id."""
        found = self._runtime_index.names.get(scenario_id)
        return found if found is not None else self._files_index.names.get(scenario_id)

    def _take(self, scenario: Scenario) -> Selection | None:
        """Advance the scenario's sequence; None when a fall-through sequence is used up."""
        sequence = scenario.sequence
        position = self._positions.get(scenario.name, 0)
        if position >= len(sequence) and scenario.then_mode == "fall-through":
            return None
        self._positions[scenario.name] = position + 1
        cycle = scenario.then_mode == "cycle"
        index = position % len(sequence) if cycle else min(position, len(sequence) - 1)
        return Selection(scenario, sequence[index], position)

    def select(
        self, request: ParsedRequest, forced: str | None = None, accept: Callable[[Scenario], bool] | None = None
    ) -> Selection | None:
        """The first scenario whose conditions hold (or the forced one), with its next reply."""
        with self._lock:
            if forced is not None:
                scenario = self._named(forced)
                if scenario is None:
                    raise UnknownScenario(forced)
                return self._take(scenario) or Selection(scenario, scenario.sequence[-1], len(scenario.sequence))
            # The indexes give, in match order, every scenario whose indexed conditions the request meets: the
            # first of them whose conditions all hold is the first in match order whose conditions all hold.
            for index in (self._runtime_index, self._files_index):
                if not index.scenarios:
                    continue  # most servers have no runtime scenarios: no request values to work out for them
                for scenario in index.candidates(request):
                    if accept is not None and not accept(scenario):
                        continue
                    if matches(scenario.when, request):
                        selection = self._take(scenario)
                        if selection is not None:
                            return selection
            return None

    def explain_miss(self, request: ParsedRequest, limit: int = 3) -> str:
        """Why nothing matched: the closest scenarios and, for each, the conditions that failed."""
        with self._lock:
            scenarios = list(self._ordered)
            positions = dict(self._positions)
        summary = describe_request(request)
        if not scenarios:
            return (
                f"No scenario matched this {request.api} request ({summary}): no scenarios are loaded. "
                f"Load scenario files (`mockllm serve PATH`, or `@pytest.mark.mockllm(PATH)` in tests) or add "
                f"scenarios (POST /_mockllm/scenarios, or `mockllm.add()` in tests)."
            )
        closest = _closest(scenarios, request, limit)
        lines = [f"No scenario matched this {request.api} request ({summary}). Closest scenarios:"]
        for scenario in closest:
            checks = evaluate(scenario.when, request)
            failed = [f"{check.condition}: {check.detail}" for check in checks if not check.passed]
            if not failed and positions.get(scenario.name, 0) >= len(scenario.sequence):
                failed = [f"its {len(scenario.sequence)} replies are used up (then: fall-through)"]
            ok = [check.condition for check in checks if check.passed]
            tail = f" (matched: {', '.join(ok)})" if ok else ""
            lines.append(f"- `{scenario.name}` ({scenario.location}): {'; '.join(failed)}{tail}")
        lines.append("Add a scenario for this request or fix the conditions above (`mockllm check` validates files).")
        return "\n".join(lines)


def _drift(scenario: Scenario, request: ParsedRequest) -> int:
    """In how many places the request differs from a recording's (0 for a scenario that is not a recording)."""
    if scenario.when.request is None:
        return 0
    return len(drift.differences(scenario.when.request, normalized_body(request, scenario.when._redact)))


def _closest(scenarios: list[Scenario], request: ParsedRequest, limit: int) -> list[Scenario]:
    """The `limit` scenarios closest to matching: the largest share of conditions passed, then the most passed; among
    recordings, the fewest differences from the request; then match order.

    Conditions are counted without wording the failures, and differences are counted only for the recordings that
    could make the cut: a miss against ten thousand scenarios takes milliseconds, not half a second.
    """
    ranked: list[tuple[float, int, int, bool]] = []  # -share, -passed, order, whether a recording's body is equal
    for order, scenario in enumerate(scenarios):
        checks = list(_checks(scenario.when, request, explain=False))
        passed = sum(check.passed for check in checks)
        same_body = any(check.condition == "request" and check.passed for check in checks)
        ranked.append((-(passed / len(checks)) if checks else -1.0, -passed, order, same_body))
    ranked.sort()
    if not 0 < limit < len(ranked):
        keyed = [(share, passed, _drift(scenarios[order], request), order) for share, passed, order, _ in ranked]
        return [scenarios[order] for *_, order in sorted(keyed)[:limit]]
    cut = ranked[limit - 1][:2]
    better = [item for item in ranked[:limit] if item[:2] < cut]
    tied = [item for item in ranked if item[:2] == cut]
    needed = limit - len(better)
    # A scenario that is not a recording has no differences; a recording has none only if its body is equal.
    drifts = {
        order: _drift(scenarios[order], request)
        for _, _, order, same_body in tied
        if same_body or scenarios[order].when.request is None
    }
    exact = [order for _, _, order, _ in tied if drifts.get(order) == 0]
    if len(exact) >= needed:
        chosen = exact[:needed]
    else:
        by_drift = sorted((drifts[o] if o in drifts else _drift(scenarios[o], request), o) for _, _, o, _ in tied)
        chosen = [order for _, order in by_drift[:needed]]
    first = sorted((share, passed, _drift(scenarios[order], request), order) for share, passed, order, _ in better)
    return [scenarios[order] for *_, order in first] + [scenarios[order] for order in chosen]


def describe_request(request: ParsedRequest) -> str:
    """A short description of a request for messages: model, prompt, stream."""
    parts = [f"model {_show(request.model)}" if request.model is not None else "no model"]
    if request.prompt is not None:
        parts.append(f"prompt {_show(request.prompt, 60)}")
    if request.stream:
        parts.append("stream")
    if request.tool_results:
        parts.append(f"after tool {', '.join(request.tool_results)}")
    return ", ".join(parts)


def shadowing_warnings(scenarios: list[Scenario]) -> list[tuple[Scenario, Scenario]]:
    """Pairs (earlier, later) where `earlier` matches every request `later` would, so `later` never answers.

    For each scenario, the first earlier one that covers it. Only earlier scenarios filed under values the later
    one's exact conditions offer are compared (`index.WhenValues`): one whose exact model differs, say, cannot cover
    it. So the check is near-linear in the number of scenarios, not quadratic.
    """
    # A fall-through sequence lets requests pass once used up: it shadows nothing.
    kept = [(i, s) for i, s in enumerate(scenarios) if not (s.then_mode == "fall-through" and s.replies is not None)]
    earlier = Index((s for _, s in kept), patterns=False)
    rank = [i for i, _ in kept]  # each filed scenario's place in `scenarios`
    pairs = []
    for j, later in enumerate(scenarios):
        for position in earlier.positions(WhenValues(later.when, earlier.substrings)):
            if rank[position] >= j:
                break
            candidate = earlier.scenarios[position]
            if _covers(candidate.when, later.when):
                pairs.append((candidate, later))
                break
    return pairs


def _covers_string(a: StringCondition, b: StringCondition | None) -> bool:
    if b is None:
        return False
    if a == b:
        return True
    return b.exact is not None and a.test(b.exact)


def _covers(a: When, b: When) -> bool:
    """Does every request that satisfies `b` also satisfy `a`? (A conservative approximation.)"""
    for name in When.model_fields:
        mine = getattr(a, name)
        if mine is None:
            continue
        theirs = getattr(b, name)
        if isinstance(mine, StringCondition):
            if not _covers_string(mine, theirs):
                return False
        elif name == "tools":
            # Every tool `a` asks for must be implied by one `b` asks for: then any request offering b's offers a's.
            if theirs is None or not all(any(_covers_string(m, t) for t in theirs) for m in mine):
                return False
        elif name == "headers":
            if theirs is None or any(not _covers_string(c, theirs.get(k)) for k, c in mine.items()):
                return False
        elif name == "body":
            if theirs is None or not _subset(mine, theirs):
                return False
        elif mine != theirs:
            return False
    return True
