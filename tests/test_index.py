"""The matching index (`mockllm/index.py`) against brute force: on random scenario sets, requests and runtime changes
it picks the very scenario and reply that testing every scenario in order picks, gives the same miss explanations,
and `mockllm check` gives the same shadowing warnings as comparing every pair. The brute-force versions below are
the code the index replaced, kept as the oracle."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mockllm import index
from mockllm.index import Index, freeze, required_substring
from mockllm.loading import load_scenarios, load_text
from mockllm.matching import (
    Scenarios,
    Selection,
    UnknownScenario,
    _covers,
    describe_request,
    evaluate,
    matches,
    shadowing_warnings,
)
from mockllm.protocols import anthropic_request, openai_chat, openai_completions
from mockllm.protocols.base import ParsedRequest
from mockllm.redaction import normalize_request
from mockllm.scenarios import Scenario, StringCondition

# --- The oracle: the brute-force matcher the index replaced ---------------------------------------------------------


class BruteForce:
    """`Scenarios` as it was: every scenario tested in match order."""

    def __init__(self, files: Iterable[Scenario] = ()) -> None:
        self._files = list(files)
        self._runtime: list[Scenario] = []
        self._positions: dict[str, int] = {}
        self._ordered = list(self._files)

    def _reorder(self) -> None:
        self._ordered = [*reversed(self._runtime), *self._files]

    def replace_files(self, scenarios: Iterable[Scenario]) -> None:
        self._files = list(scenarios)
        self._reorder()

    def upsert_files(self, scenarios: Iterable[Scenario]) -> None:
        files = list(self._files)
        for scenario in scenarios:
            index = next((i for i, s in enumerate(files) if s.name == scenario.name), None)
            if index is None:
                files.append(scenario)
            else:
                files[index] = scenario
            self._positions.pop(scenario.name, None)
        self._files = files
        self._reorder()

    def add(self, scenarios: Iterable[Scenario]) -> None:
        batch = list(scenarios)
        files = {s.name: s for s in self._files}
        for scenario in batch:
            if scenario.name in files:
                raise ValueError(scenario.name)
        ids = {s.name for s in batch}
        self._runtime = [s for s in self._runtime if s.name not in ids] + batch[::-1]
        for scenario in batch:
            self._positions.pop(scenario.name, None)
        self._reorder()

    def clear_runtime(self) -> None:
        for scenario in self._runtime:
            self._positions.pop(scenario.name, None)
        self._runtime = []
        self._reorder()

    def reset_positions(self) -> None:
        self._positions.clear()

    def _take(self, scenario: Scenario) -> Selection | None:
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
        if forced is not None:
            scenario = next((s for s in self._ordered if s.name == forced), None)
            if scenario is None:
                raise UnknownScenario(forced)
            return self._take(scenario) or Selection(scenario, scenario.sequence[-1], len(scenario.sequence))
        for scenario in self._ordered:
            if accept is not None and not accept(scenario):
                continue
            if matches(scenario.when, request):
                selection = self._take(scenario)
                if selection is not None:
                    return selection
        return None

    def explain_miss(self, request: ParsedRequest, limit: int = 3) -> str:
        from mockllm import drift
        from mockllm.index import normalized_body

        scenarios, positions = list(self._ordered), dict(self._positions)
        summary = describe_request(request)
        if not scenarios:
            return (
                f"No scenario matched this {request.api} request ({summary}): no scenarios are loaded. "
                f"Load scenario files (`mockllm serve PATH`, or `@pytest.mark.mockllm(PATH)` in tests) or add "
                f"scenarios (POST /_mockllm/scenarios, or `mockllm.add()` in tests)."
            )
        ranked = []
        for order, scenario in enumerate(scenarios):
            checks = evaluate(scenario.when, request)
            passed = sum(check.passed for check in checks)
            score = passed / len(checks) if checks else 1.0
            drifted = (
                len(drift.differences(scenario.when.request, normalized_body(request, scenario.when._redact)))
                if scenario.when.request is not None
                else 0
            )
            ranked.append((-score, -passed, drifted, order, scenario, checks))
        ranked.sort(key=lambda item: item[:4])
        lines = [f"No scenario matched this {request.api} request ({summary}). Closest scenarios:"]
        for *_, scenario, checks in ranked[:limit]:
            failed = [f"{check.condition}: {check.detail}" for check in checks if not check.passed]
            if not failed and positions.get(scenario.name, 0) >= len(scenario.sequence):
                failed = [f"its {len(scenario.sequence)} replies are used up (then: fall-through)"]
            ok = [check.condition for check in checks if check.passed]
            tail = f" (matched: {', '.join(ok)})" if ok else ""
            lines.append(f"- `{scenario.name}` ({scenario.location}): {'; '.join(failed)}{tail}")
        lines.append("Add a scenario for this request or fix the conditions above (`mockllm check` validates files).")
        return "\n".join(lines)


def pairwise_shadowing(scenarios: list[Scenario]) -> list[tuple[Scenario, Scenario]]:
    """`shadowing_warnings` as it was: every pair compared."""
    pairs = []
    for j, later in enumerate(scenarios):
        for earlier in scenarios[:j]:
            if earlier.then_mode == "fall-through" and earlier.replies is not None:
                continue
            if _covers(earlier.when, later.when):
                pairs.append((earlier, later))
                break
    return pairs


# --- Random scenarios and requests, from small vocabularies so that they meet ---------------------------------------

MODELS = ["m1", "m2", "gpt-4o", "gpt-4o-mini"]
PROMPTS = ["hi", "hello there", "say hi to Bob", "weather in Oslo", "ask 1: why", "hi hi", "x", "secret-abc inside"]
SYSTEMS = ["be brief", "You are a pirate.", "be brief\nand kind"]
TOOLS = ["get_weather", "get_time", "final_result_1"]
REDACT = [[], ["secret-[a-z]+"]]


def text_condition(rng: random.Random, values: list[str]) -> Any:
    value = rng.choice(values)
    kind = rng.randrange(8)
    if kind <= 3:
        return value
    if kind == 4:
        start = rng.randrange(len(value))
        return {"contains": rng.choice([value[start : start + rng.randint(1, 5)], "zzz", ""])}
    if kind == 5:
        pattern = rng.choice(
            ["^" + re.escape(value), re.escape(value[:2]) + ".*" + re.escape(value[-1:]), "(?i)" + re.escape(value)]
        )
        return {"regex": rng.choice([pattern, "a|h", re.escape(value) + "$", "[hs]i", "colou?r", "hi\\b"])}
    if kind == 6:
        return {"glob": rng.choice([value[:2] + "*", "*" + value[-2:], "?" + value[1:], "[hs]*", "*"])}
    return {"contains": value[: rng.randint(1, len(value))]}


def request_body(rng: random.Random) -> dict[str, Any]:
    """A chat request body; recordings are made from these too."""
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.4:
        messages.append({"role": "system", "content": rng.choice(SYSTEMS)})
    messages.append({"role": "user", "content": rng.choice(PROMPTS)})
    if rng.random() < 0.25:  # a tool call (or parallel calls) and their results
        calls = [
            {"id": f"c{i}", "type": "function", "function": {"name": tool, "arguments": "{}"}}
            for i, tool in enumerate(rng.sample(TOOLS, rng.randint(1, 2)))
        ]
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        messages += [{"role": "tool", "tool_call_id": call["id"], "content": "12 degrees"} for call in calls]
    body: dict[str, Any] = {"model": rng.choice(MODELS), "messages": messages}
    if rng.random() < 0.3:
        body["tools"] = [
            {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
            for name in rng.sample(TOOLS, rng.randint(1, 3))
        ]
    if rng.random() < 0.3:
        body["stream"] = rng.random() < 0.5
    if rng.random() < 0.3:
        body["temperature"] = rng.choice([0.5, 1, 1.0])
    if rng.random() < 0.3:
        body["user"] = rng.choice(["u1", "u2"])  # volatile: recordings ignore it
    return body


def when(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rng.random() < 0.3:
        out["api"] = rng.choice(["chat", "chat", "completions", "messages"])
    if rng.random() < 0.6:
        out["model"] = text_condition(rng, MODELS)
    if rng.random() < 0.7:
        out["prompt"] = text_condition(rng, PROMPTS)
    if rng.random() < 0.15:
        out["system"] = text_condition(rng, SYSTEMS)
    if rng.random() < 0.1:
        out["stream"] = rng.random() < 0.5
    if rng.random() < 0.15:
        out["tools"] = [text_condition(rng, TOOLS) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.15:
        out["after_tool"] = text_condition(rng, TOOLS)
    if rng.random() < 0.05:
        out["turn"] = rng.randint(0, 1)
    if rng.random() < 0.05:
        out["messages"] = rng.randint(1, 3)
    if rng.random() < 0.05:
        out["headers"] = {"x-team": text_condition(rng, ["a", "b"])}
    if rng.random() < 0.05:
        out["body"] = {"temperature": rng.choice([0.5, 1])}
    return out


def scenario(rng: random.Random, name: str, recording: tuple[str, ...] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": name}
    if recording is not None:
        out["when"] = {"api": "chat", "request": normalize_request(request_body(rng), recording)}
    elif rng.random() < 0.9:
        out["when"] = when(rng)
    if rng.random() < 0.3:
        out["replies"] = [{"text": f"{name} {i}"} for i in range(rng.randint(1, 3))]
        then = rng.choice([None, "repeat-last", "cycle", "fall-through", "fall-through"])
        if then is not None:
            out["then"] = then
    else:
        out["reply"] = {"text": name}
    return out


def file_scenarios(rng: random.Random, count: int, prefix: str = "f") -> list[Scenario]:
    """`count` scenarios in a few files: hand-written ones, and recordings made with and without redaction."""
    loaded: list[Scenario] = []
    made = 0
    for number in range(rng.randint(1, 4)):
        redact = rng.choice(REDACT) if rng.random() < 0.4 else None
        size = max(1, count // 3) if number < 3 else count
        items = []
        for _ in range(size):
            if made >= count:
                break
            items.append(scenario(rng, f"{prefix}{made}", tuple(redact) if redact is not None else None))
            made += 1
        document: dict[str, Any] = {"version": 1, "scenarios": items}
        if redact is not None:
            document["recorded"] = {"redact": redact}
        loaded += load_text(yaml.safe_dump(document), f"{prefix}-{number}.yaml")
    return loaded


def runtime_scenarios(rng: random.Random, names: list[str]) -> list[Scenario]:
    document = {"version": 1, "scenarios": [scenario(rng, name) for name in names]}
    return load_text(yaml.safe_dump(document), "<runtime>")


def request(rng: random.Random, recorded: list[dict[str, Any]]) -> ParsedRequest:
    headers = {"x-team": rng.choice(["a", "b"])} if rng.random() < 0.3 else {}
    kind = rng.random()
    if kind < 0.15:
        prompt: Any = rng.choice(PROMPTS) if rng.random() < 0.6 else rng.sample(PROMPTS, rng.randint(1, 2))
        return openai_completions.parse({"model": rng.choice(MODELS), "prompt": prompt}, headers)
    if kind < 0.3:
        body: dict[str, Any] = {
            "model": rng.choice(MODELS),
            "max_tokens": 5,
            "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
        }
        if rng.random() < 0.5:
            body["system"] = rng.choice(SYSTEMS)
        return anthropic_request.parse(body, headers)
    if recorded and kind < 0.55:
        body = dict(rng.choice(recorded))  # the very request a recording was made for, give or take a volatile field
        if rng.random() < 0.5:
            body["user"] = "someone"
        return openai_chat.parse(body, headers)
    return openai_chat.parse(request_body(rng), headers)


def same(a: Selection | None, b: Selection | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.scenario is b.scenario and a.reply is b.reply and a.position == b.position


# --- Selection -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_selection_is_the_first_match_in_order_through_every_change(seed: int) -> None:
    rng = random.Random(seed)
    files = file_scenarios(rng, rng.randint(5, 60))
    recorded = [request_body(random.Random(seed * 1000 + i)) for i in range(5)]
    # Recordings of requests this test sends: each file's scenarios are followed by recordings of `recorded`.
    extra = load_text(
        yaml.safe_dump(
            {
                "version": 1,
                "recorded": {"redact": ["secret-[a-z]+"]},
                "scenarios": [
                    {"id": f"rec{i}", "when": {"api": "chat", "request": normalize_request(body, ("secret-[a-z]+",))},
                     "reply": {"text": f"recorded {i}"}}
                    for i, body in enumerate(recorded)
                ],
            }
        ),
        "recordings.yaml",
    )  # fmt: skip
    files += extra
    rng.shuffle(files)
    indexed, oracle = Scenarios(files), BruteForce(files)
    runtime_names = [f"r{i}" for i in range(8)]
    for step in range(150):
        op = rng.random()
        if op < 0.05:
            batch = runtime_scenarios(rng, rng.sample(runtime_names, rng.randint(1, 3)))
            clash = bool(files) and rng.random() < 0.1
            if clash:
                batch.append(files[0])  # an id a file already uses
            for target in (indexed, oracle):
                if clash:
                    with pytest.raises(ValueError):
                        target.add(batch)
                else:
                    target.add(batch)
        elif op < 0.09:
            batch = file_scenarios(rng, rng.randint(1, 4), prefix=rng.choice(["f", "u"]))
            indexed.upsert_files(batch)
            oracle.upsert_files(batch)
            files = oracle._files
        elif op < 0.11:
            files = rng.sample(files, len(files))[: rng.randint(0, len(files))]
            indexed.replace_files(files)
            oracle.replace_files(files)
        elif op < 0.14:
            indexed.clear_runtime()
            oracle.clear_runtime()
        elif op < 0.17:
            indexed.reset_positions()
            oracle.reset_positions()
        else:
            parsed, twin = (request(random.Random(f"{seed}-{step}"), recorded) for _ in range(2))
            forced = None
            if rng.random() < 0.05:
                forced = rng.choice([*(s.name for s in oracle._ordered), "nobody"])
            accept = (lambda s: s.when.api != "chat") if rng.random() < 0.1 else None
            try:
                expected = oracle.select(parsed, forced, accept)
            except UnknownScenario:
                with pytest.raises(UnknownScenario):
                    indexed.select(twin, forced, accept)
                continue
            got = indexed.select(twin, forced, accept)
            assert same(got, expected), (seed, step, got, expected)
            if expected is None and rng.random() < 0.3:
                assert indexed.explain_miss(twin) == oracle.explain_miss(parsed)
        assert indexed.all() == oracle._ordered
        assert [indexed.get(s.name) for s in oracle._ordered] == [
            next(o for o in oracle._ordered if o.name == s.name) for s in oracle._ordered
        ]


@pytest.mark.parametrize("seed", range(15))
def test_miss_explanations_rank_as_before(seed: int) -> None:
    rng = random.Random(seed)
    files = file_scenarios(rng, rng.randint(1, 80))
    indexed, oracle = Scenarios(files), BruteForce(files)
    for step in range(30):
        for limit in (3, 1, 5):
            parsed = request(random.Random(f"{seed}-{step}"), [])
            assert indexed.explain_miss(parsed, limit) == oracle.explain_miss(parsed, limit)


def test_a_scenario_selected_from_several_threads_keeps_its_sequence() -> None:
    loaded = load_text(
        "version: 1\nscenarios:\n"
        + "".join(f"  - {{id: s{i}, when: {{prompt: p{i}}}, reply: {{text: x}}}}\n" for i in range(200))
        + "  - {id: counter, when: {prompt: count}, replies: [{text: a}, {text: b}], then: cycle}\n"
    )
    state = Scenarios(loaded)
    positions: list[int] = []

    def work() -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": "count"}]}
        for _ in range(200):
            selection = state.select(openai_chat.parse(body, {}))
            assert selection is not None
            positions.append(selection.position)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(positions) == list(range(800))


# --- Shadowing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(60))
def test_shadowing_warnings_are_those_of_comparing_every_pair(seed: int) -> None:
    rng = random.Random(seed)
    loaded = file_scenarios(rng, rng.randint(2, 120))
    # Copies of earlier conditions, narrowed or not, so that many pairs shadow each other.
    for _ in range(rng.randint(0, 30)):
        source = rng.choice(loaded)
        data = source.model_dump(mode="json", exclude_none=True, by_alias=True)
        data["id"] = f"copy{len(loaded)}"
        data.setdefault("when", {})
        if rng.random() < 0.5:
            data["when"].update(when(rng))
        loaded += load_text(yaml.safe_dump({"version": 1, "scenarios": [data]}), "copies.yaml")
    rng.shuffle(loaded)
    expected = [(a.name, b.name) for a, b in pairwise_shadowing(loaded)]
    assert [(a.name, b.name) for a, b in shadowing_warnings(loaded)] == expected


def test_shadowing_is_found_across_kinds_of_condition() -> None:
    loaded = load_text(
        """
version: 1
scenarios:
  - {id: any-gpt, when: {model: {glob: "gpt-*"}, prompt: {contains: weather}}, reply: {text: a}}
  - {id: exact, when: {model: gpt-4o, prompt: What is the weather?, api: chat}, reply: {text: b}}
  - {id: regex, when: {prompt: {regex: "^hello [a-z]+$"}}, reply: {text: c}}
  - {id: hello, when: {prompt: hello world, system: be brief}, reply: {text: d}}
  - {id: same-regex, when: {prompt: {regex: "^hello [a-z]+$"}, turn: 0}, reply: {text: e}}
  - {id: tool, when: {tools: [get_time]}, reply: {text: f}}
  - {id: tools, when: {tools: [get_time, get_weather], model: m}, reply: {text: g}}
  - {id: no-literal, when: {prompt: {regex: "(?i)HELLO"}}, reply: {text: h}}
  - {id: hello-again, when: {prompt: Hello there}, reply: {text: i}}
"""
    )
    pairs = [(a.name, b.name) for a, b in shadowing_warnings(loaded)]
    assert pairs == [
        ("any-gpt", "exact"),
        ("regex", "hello"),
        ("regex", "same-regex"),
        ("tool", "tools"),
        ("no-literal", "hello-again"),
    ]
    assert pairs == [(a.name, b.name) for a, b in pairwise_shadowing(loaded)]


# --- What the index files scenarios by -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "substring"),
    [
        ({"contains": "weather"}, "weather"),
        ({"glob": "gpt-4o*"}, "gpt-4o"),
        ({"glob": "*-mini"}, "-mini"),
        ({"glob": "a*bcd?e"}, "bcd"),
        ({"glob": "[ab]cdef"}, ""),
        ({"regex": "^ask 14:"}, "ask 14:"),
        ({"regex": "colou?r"}, "colo"),
        ({"regex": "foo.*barbaz"}, "barbaz"),
        ({"regex": "(?i)hello"}, ""),
        ({"regex": "hello|world"}, ""),
        ({"regex": "(hello) world"}, " world"),
        ({"regex": "\\d+"}, ""),
    ],
)
def test_a_required_substring_is_in_every_value_the_condition_accepts(condition: Any, substring: str) -> None:
    assert required_substring(StringCondition.model_validate(condition)) == substring


def test_recorded_bodies_are_compared_as_python_compares_them() -> None:
    assert freeze({"a": 1, "b": [True, {"c": None}]}) == freeze({"b": [1, {"c": None}], "a": 1.0})
    assert hash(freeze({"a": 1})) == hash(freeze({"a": 1.0}))
    assert freeze({"a": [1, 2]}) != freeze({"a": [2, 1]})
    with pytest.raises(TypeError):
        freeze({"a": {1, 2}})


def test_a_body_that_cannot_be_looked_up_is_compared_with_every_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    recorded = {
        "version": 1,
        "scenarios": [{"id": "rec", "when": {"api": "chat", "request": body}, "reply": {"text": "r"}}],
    }
    state = Scenarios(load_text(yaml.safe_dump(recorded), "rec.yaml"))

    def too_deep(value: Any) -> Any:
        raise RecursionError

    monkeypatch.setattr(index, "freeze", too_deep)
    selection = state.select(openai_chat.parse(body, {}))
    assert selection is not None
    assert selection.scenario.name == "rec"


def test_the_index_skips_only_what_cannot_match() -> None:
    loaded = load_text(
        """
version: 1
scenarios:
  - {id: a, when: {model: m1, prompt: hi}, reply: {text: a}}
  - {id: b, when: {model: m2, prompt: hi}, reply: {text: b}}
  - {id: c, when: {prompt: {contains: hi}}, reply: {text: c}}
  - {id: d, when: {stream: true}, reply: {text: d}}
  - {id: e, when: {api: messages}, reply: {text: e}}
"""
    )
    index = Index(loaded)
    parsed = openai_chat.parse({"model": "m1", "messages": [{"role": "user", "content": "oh hi"}]}, {})
    assert [s.name for s in index.candidates(parsed)] == ["c", "d"]
    parsed = openai_chat.parse({"model": "m1", "messages": [{"role": "user", "content": "hi"}]}, {})
    assert [s.name for s in index.candidates(parsed)] == ["a", "c", "d"]


# --- Ten thousand scenarios ----------------------------------------------------------------------------------------


def test_ten_thousand_scenarios_load_and_select_in_order(tmp_path: Path) -> None:
    for number in range(10):
        items = [
            {"id": f"s{i}", "when": {"model": f"m{i % 7}", "prompt": f"question {i}"}, "reply": {"text": f"answer {i}"}}
            for i in range(number * 900, (number + 1) * 900)
        ]
        if number == 5:
            items.insert(0, {"id": "broad", "when": {"prompt": {"contains": "question 5"}}, "reply": {"text": "b"}})
        (tmp_path / f"part-{number}.yaml").write_text(yaml.safe_dump({"version": 1, "scenarios": items}))
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for i in range(999):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"recorded {i}"}]}
        scenarios = [{"id": f"rec{i}", "when": {"api": "chat", "request": body}, "reply": {"text": f"replay {i}"}}]
        (recordings / f"chat-{i:04}.yaml").write_text(yaml.safe_dump({"version": 1, "scenarios": scenarios}))
    loaded = load_scenarios([tmp_path])
    assert len(loaded) == 10_000
    state = Scenarios(loaded)

    def ask(model: str, prompt: str) -> str | None:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        selection = state.select(openai_chat.parse(body, {}))
        return selection.scenario.name if selection is not None else None

    assert ask("gpt-4o-mini", "recorded 998") == "rec998"
    assert ask(f"m{8999 % 7}", "question 8999") == "s8999"
    assert ask(f"m{4851 % 7}", "question 4851") == "s4851"  # after the broad scenario, which does not match it
    assert ask(f"m{555 % 7}", "question 555") == "s555"  # before it
    assert ask(f"m{5001 % 7}", "question 5001") == "broad"  # after it, and shadowed by it
    assert ask("m0", "question 9000") is None
    warnings = [(a.name, b.name) for a, b in shadowing_warnings(loaded)]
    assert [later for _, later in warnings] == [f"s{i}" for i in range(5000, 6000)]
    assert {earlier for earlier, _ in warnings} == {"broad"}
