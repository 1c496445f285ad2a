"""Which scenarios could answer a request, without testing them all: an index on the conditions that a request's
own values look up.

A scenario is filed once, under the conditions it has among: `api`; an exact `model`; an exact `prompt`, or else a
substring every prompt it accepts must contain (the text of `contains`, the longest literal run of a `glob` or of a
`regex`); an exact `system`; the first exact name in `tools`; an exact `after_tool`. A recording is filed under its
normalised request body alone. A scenario with none of them is filed under no condition: a candidate for every
request.

A request looks up each filing it could satisfy (its api, model, prompt, the substrings its prompt holds, system
prompt, offered tools, the tools whose results it carries, its normalised body) and gets the positions of the
candidates in match order. The caller tests them in that order with all their conditions, so the first candidate
whose conditions hold is the first scenario whose conditions hold: the index skips only scenarios that cannot match,
it never decides a match.
"""

from __future__ import annotations

import heapq
import itertools
import operator
import re
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from .protocols.base import ParsedRequest
from .redaction import normalize_request
from .scenarios import Scenario, StringCondition, When

# The conditions a scenario is filed under, as bits of a mask; a recording's body is filed apart (`BODY`).
API, MODEL, PROMPT, SUBSTRING, SYSTEM, TOOL, AFTER_TOOL = 1, 2, 4, 8, 16, 32, 64
_DIMENSIONS = (API, MODEL, PROMPT, SUBSTRING, SYSTEM, TOOL, AFTER_TOOL)  # the bit of place i is 1 << i
BODY = 128

# A filing: the mask of conditions and, for a recording, the redaction patterns its file compares bodies with.
Signature = tuple[int, tuple[str, ...]]


def normalized_body(request: ParsedRequest, patterns: tuple[str, ...]) -> Any:
    """The request's body as recordings compare it (volatile fields dropped, redacted), computed once per patterns."""
    found = request.normalized.get(patterns)
    if found is None:
        found = request.normalized[patterns] = normalize_request(request.body, patterns)
    return found


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for a JSON value, equal (with an equal hash) for values that are equal.

    Mappings become frozen sets of pairs and lists tuples, so `1`, `1.0` and `true` stay as equal as Python's `==`
    has them, which is how a recording is compared. A value that cannot be hashed raises TypeError.
    """
    if isinstance(value, dict):
        return frozenset((key, freeze(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    hash(value)
    return value  # type: ignore[no-any-return]


def _glob_substring(pattern: str) -> str:
    # fnmatch: `*` and `?` are wildcards; from the first `[` (a set of characters) on, nothing is taken.
    return max(re.split(r"[*?]", pattern.split("[", 1)[0]), key=len)


def _regex_substring(pattern: str) -> str:
    """The longest run of plain characters at the top level of a pattern: every match holds it (not under a flag
    that changes what a character matches, like `(?i)`)."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return ""
    if parsed.state.flags & re.IGNORECASE:
        return ""
    best, run = "", []
    for op, av in [*parsed.data, (None, None)]:
        if op is sre_constants.LITERAL:
            run.append(chr(av))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
    return best


def required_substring(condition: StringCondition) -> str:
    """A text every value that satisfies the (non-exact) condition contains; "" if there is none to tell."""
    if condition.contains is not None:
        return condition.contains
    if condition.glob is not None:
        return _glob_substring(condition.glob)
    if condition.regex is not None:
        return _regex_substring(condition.regex)
    return ""


@dataclass(frozen=True, slots=True)
class Filing:
    """Where a scenario's `when` is filed: the conditions (mask), their values, and a recording's patterns."""

    mask: int
    values: tuple[Hashable, ...]
    redact: tuple[str, ...] = ()


def filing_of(when: When) -> Filing:
    """Where a `when` is filed (`When.filing` keeps it)."""
    if when.request is not None:
        try:
            return Filing(BODY, (freeze(when.request),), when._redact)
        except (TypeError, RecursionError):
            pass  # a value YAML can hold but JSON cannot, or one nested too deep: filed by its other conditions
    mask, values = 0, list[Hashable]()
    if when.api is not None:
        mask, values = mask | API, [*values, when.api]
    if when.model is not None and when.model.exact is not None:
        mask, values = mask | MODEL, [*values, when.model.exact]
    if when.prompt is not None:
        if when.prompt.exact is not None:
            mask, values = mask | PROMPT, [*values, when.prompt.exact]
        elif substring := required_substring(when.prompt):
            mask, values = mask | SUBSTRING, [*values, substring]
    if when.system is not None and when.system.exact is not None:
        mask, values = mask | SYSTEM, [*values, when.system.exact]
    tool = next((condition.exact for condition in when.tools or () if condition.exact is not None), None)
    if tool is not None:  # one of the tools it names is enough to file it by
        mask, values = mask | TOOL, [*values, tool]
    if when.after_tool is not None and when.after_tool.exact is not None:
        mask, values = mask | AFTER_TOOL, [*values, when.after_tool.exact]
    return Filing(mask, tuple(values))


class Substrings:
    """The required substrings of the filed prompt conditions; `within(text)` finds those a text holds.

    Testing each one is quick while they are few; when they outnumber the text's characters, the text's
    three-character pieces are looked up instead, each naming the substrings that start with it.
    """

    GRAM = 3

    def __init__(self, substrings: Iterable[str]) -> None:
        distinct = set(substrings)
        self.short = [s for s in distinct if len(s) < self.GRAM]
        self.long = [s for s in distinct if len(s) >= self.GRAM]
        self.by_gram: dict[str, list[str]] = {}
        for substring in self.long:
            self.by_gram.setdefault(substring[: self.GRAM], []).append(substring)

    def __bool__(self) -> bool:
        return bool(self.short or self.long)

    def within(self, text: str) -> list[str]:
        found = [s for s in self.short if s in text]
        if len(self.long) <= len(text):
            found += [s for s in self.long if s in text]
            return found
        gram = self.GRAM
        for piece in {text[i : i + gram] for i in range(len(text) - gram + 1)} & self.by_gram.keys():
            found += [s for s in self.by_gram[piece] if s in text]
        return found


class Values:
    """What a request (or a scenario, for `mockllm check`) offers each filed condition: the values it is looked up
    by, in the order of `_DIMENSIONS`; several for substrings and tools, none when it lacks the value."""

    def __init__(self, offered: Sequence[Sequence[Hashable]]) -> None:
        self.offered = offered
        # Most requests offer one value a condition or none: those keys are taken in one step (`Index._lists`).
        self.single: list[Hashable] = [None] * len(offered)
        present = plural = 0
        for place, values in enumerate(offered):
            if len(values) == 1:
                self.single[place] = values[0]
                present |= 1 << place
            elif values:
                present |= 1 << place
                plural |= 1 << place
        self.present, self.plural = present, plural

    def body(self, redact: tuple[str, ...]) -> Sequence[Hashable] | None:
        """The body a recording filed with these redaction patterns would have to equal (None: not known, every
        recording is a candidate)."""
        raise NotImplementedError


class RequestValues(Values):
    """A request's values."""

    def __init__(self, request: ParsedRequest, substrings: Substrings) -> None:
        self.request = request
        model = request.model
        prompt = request.prompts[0] if request.prompts else None  # a condition on prompts holds for every one
        super().__init__(
            (
                (request.api,),
                (model,) if isinstance(model, str) else (),
                (prompt,) if prompt is not None else (),
                substrings.within(prompt) if prompt is not None and substrings else (),
                (request.system,) if request.system is not None else (),
                tuple(dict.fromkeys(request.tools)),
                tuple(dict.fromkeys(request.tool_results)),
            )
        )

    def body(self, redact: tuple[str, ...]) -> Sequence[Hashable] | None:
        normalized = normalized_body(self.request, redact)
        try:
            return (freeze(normalized),)
        except (TypeError, RecursionError):  # a body nested deeper than freezing recurses
            return None


class WhenValues(Values):
    """A later scenario's values, for `mockllm check`: an earlier scenario can match every request the later one
    would only if each exact value it is filed under is the later one's (or, for a substring, in the later one's
    exact prompt, or the later one's own condition)."""

    def __init__(self, when: When, substrings: Substrings) -> None:
        self.when = when
        prompt = when.prompt
        exact = prompt.exact if prompt is not None else None
        found: list[Hashable] = list(substrings.within(exact)) if exact is not None and substrings else []
        if prompt is not None and exact is None and (own := required_substring(prompt)):
            found.append(own)
        super().__init__(
            (
                (when.api,) if when.api is not None else (),
                _exact(when.model),
                (exact,) if exact is not None else (),
                tuple(dict.fromkeys(found)),
                _exact(when.system),
                tuple(dict.fromkeys(c.exact for c in when.tools or () if c.exact is not None)),
                _exact(when.after_tool),
            )
        )

    def body(self, redact: tuple[str, ...]) -> Sequence[Hashable]:
        # The body as its own filing froze it; one that could not be frozen has no equal among the filed bodies.
        filing: Filing = self.when.filing
        return filing.values if filing.mask == BODY else ()


def _exact(condition: StringCondition | None) -> tuple[str, ...]:
    return (condition.exact,) if condition is not None and condition.exact is not None else ()


def _key(values: tuple[Hashable, ...]) -> Hashable:
    # A table of one condition is keyed by the value itself, as `operator.itemgetter` of one item returns it.
    return values[0] if len(values) == 1 else values


class Index:
    """Scenarios in match order, filed by their conditions (module docstring).

    `patterns=False` files every recording under the same signature, whatever its redaction patterns: `mockllm
    check` compares recorded bodies as written.
    """

    def __init__(self, scenarios: Iterable[Scenario], patterns: bool = True) -> None:
        self.scenarios = list(scenarios)
        self.tables: dict[Signature, dict[Hashable, list[int]]] = {}
        self.names: dict[str, Scenario] = {}
        for position, scenario in enumerate(self.scenarios):
            self.names.setdefault(scenario.name, scenario)
            filing: Filing = scenario.when.filing
            signature = (filing.mask, filing.redact if patterns else ())
            self.tables.setdefault(signature, {}).setdefault(_key(filing.values), []).append(position)
        self.substrings = Substrings(
            str(key[_ordinals(mask).index(_DIMENSIONS.index(SUBSTRING))] if isinstance(key, tuple) else key)
            for (mask, _), table in self.tables.items()
            if mask & SUBSTRING
            for key in table
        )
        self.unfiled = self.tables.get((0, ()), {}).get((), [])  # candidates for every request
        # Looking a request's body up means normalising it: done only when a recording comes before the candidate.
        self.bodies = [signature for signature in self.tables if signature[0] == BODY]
        self.first_body = min((self.tables[s][v][0] for s in self.bodies for v in self.tables[s]), default=-1)
        self.signatures = [
            (mask, table, operator.itemgetter(*_ordinals(mask)), _ordinals(mask))
            for (mask, _), table in self.tables.items()
            if mask not in (0, BODY)
        ]

    def _lists(self, values: Values) -> list[list[int]]:
        """The positions filed under each key the values look up, other than bodies."""
        found = [self.unfiled] if self.unfiled else []
        present, plural, single = values.present, values.plural, values.single
        for mask, table, key_of, ordinals in self.signatures:
            if mask & ~present:
                continue  # the request lacks a value this filing needs
            if not mask & plural:
                positions = table.get(key_of(single))
                if positions is not None:
                    found.append(positions)
                continue
            for key in itertools.product(*(values.offered[o] for o in ordinals)):
                positions = table.get(_key(key))
                if positions is not None:
                    found.append(positions)
        return found

    def _body_positions(self, values: Values) -> list[int]:
        found: list[int] = []
        for signature in self.bodies:
            table = self.tables[signature]
            bodies = values.body(signature[1])
            if bodies is None:
                found.extend(position for positions in table.values() for position in positions)
            for body in bodies or ():
                found.extend(table.get(body, ()))
        return sorted(found)

    def positions(self, values: Values) -> Iterator[int]:
        """The positions of the candidates, in match order."""
        lists = self._lists(values)
        merged: Iterable[int] = lists[0] if len(lists) == 1 else heapq.merge(*lists)
        if not self.bodies:
            yield from merged
            return
        bodies: list[int] | None = None
        for position in merged:
            if bodies is None and self.first_body < position:
                bodies = self._body_positions(values)
            while bodies and bodies[0] < position:
                yield bodies.pop(0)
            yield position
        yield from self._body_positions(values) if bodies is None else bodies

    def candidates(self, request: ParsedRequest) -> Iterator[Scenario]:
        """The scenarios that could match the request, in match order."""
        scenarios = self.scenarios
        for position in self.positions(RequestValues(request, self.substrings)):
            yield scenarios[position]


def _ordinals(mask: int) -> tuple[int, ...]:
    """The places in `_DIMENSIONS` of the conditions a mask holds."""
    return tuple(place for place, dimension in enumerate(_DIMENSIONS) if mask & dimension)
