"""Matching: every `when` condition, string semantics, first-match order, sequences, forcing, miss explanations."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from mockllm.loading import load_text
from mockllm.matching import Check, Scenarios, UnknownScenario, evaluate, matches, shadowing_warnings
from mockllm.protocols import openai_chat, openai_completions
from mockllm.protocols.base import ParsedRequest
from mockllm.scenarios import Scenario, When

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
}


def chat(*messages: dict[str, Any], headers: dict[str, str] | None = None, **body: Any) -> ParsedRequest:
    """A chat request as the server parses it; `headers` lowercased, as the app passes them."""
    body.setdefault("model", "gpt-4o-mini")
    raw = {**body, "messages": list(messages) or [{"role": "user", "content": "Say hello"}]}
    return openai_chat.parse(raw, {key.lower(): value for key, value in (headers or {}).items()})


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def when(**conditions: Any) -> When:
    return When.model_validate(conditions)


def scenarios(text: str) -> list[Scenario]:
    return load_text("version: 1\nscenarios:\n" + textwrap.indent(textwrap.dedent(text).strip("\n"), "  "), "s.yaml")


def failed(checks: list[Check]) -> list[str]:
    return [f"{check.condition}: {check.detail}" for check in checks if not check.passed]


# A conversation after a parallel tool call: question, the assistant's two calls, both results.
AFTER_PARALLEL_CALLS = (
    {"role": "system", "content": "You plan trips."},
    user("Plan a trip to Paris"),
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 degrees"},
    {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
)


# ---------------------------------------------------------------------------------------------------------------
# Each condition


def test_api() -> None:
    request = chat()
    assert matches(when(api="chat"), request)
    assert failed(evaluate(when(api="completions"), request)) == ["api: expected completions, got chat"]
    completion = openai_completions.parse({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello"}, {})
    assert matches(when(api="completions"), completion)


def test_model_exact_glob_regex_contains() -> None:
    request = chat(model="gpt-4o-mini-2024-07-18")
    assert matches(when(model="gpt-4o-mini-2024-07-18"), request)
    assert failed(evaluate(when(model="gpt-4o-mini"), request)) == [
        'model: expected "gpt-4o-mini", got "gpt-4o-mini-2024-07-18"'
    ]
    assert matches(when(model={"glob": "gpt-4o*"}), request)
    assert not matches(when(model={"glob": "gpt-4o"}), request)  # glob matches the whole string
    assert matches(when(model={"regex": r"mini-\d{4}"}), request)  # regex searches anywhere
    assert not matches(when(model={"regex": r"^mini"}), request)
    assert matches(when(model={"contains": "4o-mini"}), request)
    assert failed(evaluate(when(model={"contains": "GPT"}), request)) == [
        'model: expected contains "GPT", got "gpt-4o-mini-2024-07-18"'
    ]


def test_model_names_with_slashes() -> None:
    request = chat(model="meta-llama/Llama-3.1-8B-Instruct")
    assert matches(when(model={"glob": "meta-llama/*"}), request)
    assert matches(when(model="meta-llama/Llama-3.1-8B-Instruct"), request)


def test_stream() -> None:
    assert matches(when(stream=True), chat(stream=True))
    assert matches(when(stream=False), chat())
    assert matches(when(stream=False), chat(stream=False))
    assert failed(evaluate(when(stream=True), chat())) == ["stream: expected true, got false"]


def test_prompt_is_the_last_user_message() -> None:
    request = chat(
        user("What's the weather?"),
        {"role": "assistant", "content": "Where?"},
        user("In Oslo"),
        {"role": "assistant", "content": "Let me check."},
    )
    assert matches(when(prompt="In Oslo"), request)
    assert failed(evaluate(when(prompt="What's the weather?"), request)) == [
        'prompt: expected "What\'s the weather?", got "In Oslo"'
    ]


def test_prompt_joins_the_text_parts_of_multi_part_content() -> None:
    request = chat(
        user(
            [
                {"type": "text", "text": "What is in "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this picture?"},
            ]
        )
    )
    assert matches(when(prompt="What is in this picture?"), request)
    assert matches(when(prompt={"contains": "picture"}), request)
    assert not matches(when(prompt={"contains": "base64"}), request)


def test_prompt_must_hold_for_every_prompt_of_a_list() -> None:
    both = openai_completions.parse({"model": "m", "prompt": ["Say hello", "Say goodbye"]}, {})
    assert matches(when(prompt={"glob": "Say *"}), both)
    assert failed(evaluate(when(prompt={"contains": "hello"}), both)) == [
        'prompt: expected contains "hello", got "Say goodbye"'
    ]


def test_prompt_without_a_user_message() -> None:
    request = chat({"role": "system", "content": "Introduce yourself."})
    assert failed(evaluate(when(prompt="hi"), request)) == ['prompt: expected "hi", but the request has no prompt']


def test_system_joins_system_and_developer_messages() -> None:
    request = chat(
        {"role": "system", "content": "You are a pirate."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in one line."}]},
        user("Hello"),
    )
    assert matches(when(system="You are a pirate.\nAnswer in one line."), request)
    assert matches(when(system={"contains": "pirate"}), request)
    assert failed(evaluate(when(system={"contains": "ninja"}), chat())) == [
        'system: expected contains "ninja", but the request has no system'
    ]


def test_messages_as_a_count_includes_the_system_message() -> None:
    request = chat({"role": "system", "content": "Be brief."}, user("Hi"))
    assert matches(when(messages=2), request)
    assert failed(evaluate(when(messages=1), request)) == ["messages: expected 1 messages, got 2"]


def test_messages_as_a_list_matches_one_to_one() -> None:
    request = chat(
        {"role": "system", "content": "Be brief."}, user("Hi"), {"role": "assistant", "content": "Hello!"}, user("Bye")
    )
    condition = when(
        messages=[
            {"role": "system"},
            {"role": "user", "content": "Hi"},
            {"content": {"glob": "Hello*"}},
            {"role": {"regex": "^u"}, "content": {"contains": "y"}},
        ]
    )
    assert matches(condition, request)
    assert failed(evaluate(when(messages=[{"role": "user"}] * 4), request)) == [
        'messages: messages[0].role: expected "user", got "system"'
    ]
    assert failed(evaluate(when(messages=[{"role": "system"}, {"role": "user"}]), request)) == [
        "messages: expected 2 messages, got 4"
    ]


def test_tools_are_a_subset_of_the_offered_tools() -> None:
    request = chat(user("Plan a trip"), tools=[WEATHER_TOOL, TIME_TOOL])
    assert matches(when(tools=["get_weather"]), request)
    assert matches(when(tools=["get_time", "get_weather"]), request)
    assert matches(when(tools=[]), request)
    assert failed(evaluate(when(tools=["get_weather", "book_hotel"]), request)) == [
        "tools: the request does not offer book_hotel (offers: get_weather, get_time)"
    ]
    assert failed(evaluate(when(tools=["get_weather"]), chat())) == [
        "tools: the request does not offer get_weather (offers: none)"
    ]


def test_after_tool_with_parallel_results() -> None:
    request = chat(*AFTER_PARALLEL_CALLS, tools=[WEATHER_TOOL, TIME_TOOL])
    assert request.tool_results == ["get_weather", "get_time"]
    assert matches(when(after_tool="get_weather"), request)
    assert matches(when(after_tool="get_time"), request)
    assert failed(evaluate(when(after_tool="book_hotel"), request)) == [
        "after_tool: expected a result of book_hotel, got get_weather, get_time"
    ]
    # The prompt is still the question that started the round trip.
    assert matches(when(prompt="Plan a trip to Paris", after_tool="get_weather"), request)


def test_after_tool_only_counts_results_after_the_last_assistant_message() -> None:
    answered = chat(*AFTER_PARALLEL_CALLS, {"role": "assistant", "content": "Sunny at 14:05."}, user("Thanks!"))
    assert answered.tool_results == []
    assert failed(evaluate(when(after_tool="get_weather"), answered)) == [
        "after_tool: expected a result of get_weather, got no tool results after the last assistant message"
    ]
    assert failed(evaluate(when(after_tool="get_weather"), chat())) == [
        "after_tool: expected a result of get_weather, got no tool results after the last assistant message"
    ]


def test_headers_names_are_case_insensitive() -> None:
    request = chat(headers={"X-Team": "blue", "User-Agent": "OpenAI/Python 3.54.0"})
    assert matches(when(headers={"x-team": "blue"}), request)
    assert matches(when(headers={"X-TEAM": "blue"}), request)
    assert matches(when(headers={"user-agent": {"glob": "OpenAI/Python *"}}), request)
    assert failed(evaluate(when(headers={"X-Team": "Blue"}), request)) == [
        'headers.x-team: expected "Blue", got "blue"'  # values stay case-sensitive
    ]
    assert failed(evaluate(when(headers={"x-tenant": {"contains": "acme"}}), request)) == [
        'headers.x-tenant: expected contains "acme", but the request has no headers.x-tenant'
    ]


def test_body_is_a_subset_match() -> None:
    request = chat(
        temperature=0,
        n=2,
        response_format={"type": "json_schema", "json_schema": {"name": "Location", "strict": True}},
        stop=["\n", "END"],
        stream=False,
    )
    assert matches(when(body={"temperature": 0}), request)
    assert matches(when(body={"response_format": {"type": "json_schema"}}), request)
    assert matches(when(body={"response_format": {"json_schema": {"strict": True}}, "n": 2}), request)
    assert matches(when(body={"stop": ["\n", "END"]}), request)
    assert matches(when(body={"temperature": 0.0}), request)  # numbers compare by value
    assert failed(evaluate(when(body={"stop": ["\n"]}), request)) == [
        'body: expected `stop` = ["\\n"], got ["\\n", "END"]'  # lists must be equal
    ]
    assert failed(evaluate(when(body={"stream": 0}), request)) == ["body: expected `stream` = 0, got false"]
    assert failed(evaluate(when(body={"seed": 7}), request)) == [
        "body: expected `seed` in the body, but the request has none"
    ]
    assert failed(evaluate(when(body={"response_format": {"type": "json_object"}}), request)) == [
        'body: expected `response_format` = {"type": "json_object"}, got {"type": "json_schema", "json_schema": '
        '{"name": "Location", "strict": true}}'
    ]


def test_turn_counts_assistant_messages_including_tool_calls() -> None:
    assert matches(when(turn=0), chat())
    request = chat(*AFTER_PARALLEL_CALLS)
    assert request.turn == 1
    assert matches(when(turn=1), request)
    assert failed(evaluate(when(turn=0), request)) == ["turn: expected turn 0, got 1"]


def test_no_conditions_match_everything() -> None:
    assert evaluate(When(), chat()) == []
    assert matches(When(), chat(*AFTER_PARALLEL_CALLS))


def test_every_failed_condition_is_explained_in_a_stable_order() -> None:
    condition = when(api="chat", model="gpt-4o", stream=True, prompt="Bye", turn=3)
    assert failed(evaluate(condition, chat())) == [
        'model: expected "gpt-4o", got "gpt-4o-mini"',
        "stream: expected true, got false",
        'prompt: expected "Bye", got "Say hello"',
        "turn: expected turn 3, got 0",
    ]
    assert [check.condition for check in evaluate(condition, chat())] == ["api", "model", "stream", "prompt", "turn"]


# ---------------------------------------------------------------------------------------------------------------
# String semantics


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("Say hello", "Say hello", True),
        ("Say hello", "say hello", False),  # exact is case-sensitive
        ("Say hello", "Say hello ", False),  # and whole
        ({"contains": "hello"}, "Say hello there", True),
        ({"contains": "Hello"}, "Say hello there", False),  # case-sensitive substring
        ({"regex": "hel+o"}, "Say hello there", True),  # re.search: anywhere
        ({"regex": "^hello"}, "Say hello", False),  # anchored by the user
        ({"regex": "(?i)^say HELLO$"}, "Say hello", True),
        ({"glob": "Say *"}, "Say hello", True),
        ({"glob": "hello"}, "Say hello", False),  # fnmatch on the whole string
        ({"glob": "say *"}, "Say hello", False),  # case-sensitive on every platform
        ({"glob": "Say h?llo"}, "Say hallo", True),
        ({"glob": "[AB]*"}, "Bye", True),
    ],
)
def test_string_conditions(condition: Any, value: str, expected: bool) -> None:
    assert matches(when(prompt=condition), chat(user(value))) is expected


# ---------------------------------------------------------------------------------------------------------------
# Selection order and sequences


def test_first_match_wins_in_load_order() -> None:
    state = Scenarios(
        scenarios(
            """
            - id: specific
              when: {prompt: Say hello, model: gpt-4o-mini}
              reply: {text: specific}
            - id: general
              when: {prompt: {contains: hello}}
              reply: {text: general}
            - id: anything
              reply: {text: anything}
            """
        )
    )
    picked = state.select(chat())
    assert picked is not None
    assert (picked.scenario.name, picked.reply.text) == ("specific", "specific")
    picked = state.select(chat(model="gpt-4o"))
    assert picked is not None
    assert picked.scenario.name == "general"
    picked = state.select(chat(user("Goodbye")))
    assert picked is not None
    assert picked.scenario.name == "anything"


def test_runtime_scenarios_come_first_newest_first() -> None:
    state = Scenarios(scenarios("- id: from-file\n  reply: {text: file}"))
    state.add(load_text("version: 1\nscenarios:\n  - id: older\n    reply: {text: older}\n", "<runtime>"))
    state.add(load_text("version: 1\nscenarios:\n  - id: newer\n    reply: {text: newer}\n", "<runtime>"))
    assert [s.name for s in state.all()] == ["newer", "older", "from-file"]
    picked = state.select(chat())
    assert picked is not None
    assert picked.scenario.name == "newer"
    # Re-adding an id replaces it and moves it to the front.
    state.add(load_text("version: 1\nscenarios:\n  - id: older\n    reply: {text: again}\n", "<runtime>"))
    assert [s.name for s in state.all()] == ["older", "newer", "from-file"]
    state.clear_runtime()
    assert [s.name for s in state.all()] == ["from-file"]


SEQUENCES = """
- id: flaky
  when: {model: flaky}
  replies: [{text: one}, {text: two}, {text: three}]
- id: counter
  when: {model: counter}
  replies: [{text: one}, {text: two}]
  then: cycle
- id: twice
  when: {model: twice}
  replies: [{text: first}, {text: second}]
  then: fall-through
- id: after-twice
  when: {model: twice}
  reply: {text: fallback}
"""


def replies_for(state: Scenarios, model: str, count: int) -> list[str | None]:
    out: list[str | None] = []
    for _ in range(count):
        picked = state.select(chat(model=model))
        out.append(picked.reply.text if picked is not None else None)
    return out


def test_sequence_repeats_its_last_reply_by_default() -> None:
    state = Scenarios(scenarios(SEQUENCES))
    assert replies_for(state, "flaky", 5) == ["one", "two", "three", "three", "three"]


def test_sequence_cycles() -> None:
    state = Scenarios(scenarios(SEQUENCES))
    assert replies_for(state, "counter", 5) == ["one", "two", "one", "two", "one"]


def test_sequence_falls_through_to_the_next_matching_scenario() -> None:
    state = Scenarios(scenarios(SEQUENCES))
    assert replies_for(state, "twice", 4) == ["first", "second", "fallback", "fallback"]


def test_a_used_up_fall_through_sequence_with_nothing_after_it_is_a_miss() -> None:
    state = Scenarios(scenarios("- id: twice\n  replies: [{text: a}, {text: b}]\n  then: fall-through"))
    assert replies_for(state, "any", 3) == ["a", "b", None]
    assert state.explain_miss(chat(model="any")).splitlines()[1] == (
        "- `twice` (s.yaml:3): its 2 replies are used up (then: fall-through)"
    )


def test_sequences_count_per_scenario_and_reset() -> None:
    state = Scenarios(scenarios(SEQUENCES))
    assert replies_for(state, "flaky", 2) == ["one", "two"]
    assert replies_for(state, "counter", 1) == ["one"]
    assert replies_for(state, "flaky", 1) == ["three"]
    state.reset_positions()
    assert replies_for(state, "flaky", 1) == ["one"]
    picked = state.select(chat(model="counter"))
    assert picked is not None
    assert picked.position == 0


def test_only_matching_requests_advance_a_sequence() -> None:
    state = Scenarios(scenarios(SEQUENCES))
    assert replies_for(state, "nothing-matches", 3) == [None, None, None]
    assert replies_for(state, "flaky", 1) == ["one"]


# ---------------------------------------------------------------------------------------------------------------
# x-mockllm-scenario


def test_forced_scenario_ignores_its_conditions() -> None:
    state = Scenarios(
        scenarios(
            """
            - id: greet
              when: {prompt: Say hello}
              reply: {text: Hello!}
            - id: header-forced
              when: {headers: {x-mockllm-scenario: header-forced}}
              reply: {text: Forced.}
            """
        )
    )
    picked = state.select(chat(user("Something else")), forced="greet")
    assert picked is not None
    assert picked.reply.text == "Hello!"
    # A scenario can also match on the header itself, like any other header.
    request = chat(user("Something else"), headers={"X-Mockllm-Scenario": "header-forced"})
    picked = state.select(request)
    assert picked is not None
    assert picked.scenario.name == "header-forced"


def test_forced_sequence_advances_and_stays_on_its_last_reply() -> None:
    state = Scenarios(
        scenarios("- id: twice\n  when: {model: nope}\n  replies: [{text: a}, {text: b}]\n  then: fall-through")
    )
    texts = []
    for _ in range(3):
        picked = state.select(chat(), forced="twice")
        assert picked is not None
        texts.append(picked.reply.text)
    assert texts == ["a", "b", "b"]


def test_forcing_an_unknown_id_raises() -> None:
    state = Scenarios(scenarios("- id: greet\n  reply: {text: Hello!}"))
    with pytest.raises(UnknownScenario, match=r"^nope$"):
        state.select(chat(), forced="nope")


# ---------------------------------------------------------------------------------------------------------------
# Explaining a miss


def test_explain_miss_names_the_closest_scenarios_and_their_failed_conditions() -> None:
    state = Scenarios(
        scenarios(
            """
            - id: weather
              when: {prompt: {contains: weather}, tools: [get_weather]}
              reply: {text: x}
            - id: greet
              when: {api: chat, model: gpt-4o-mini, prompt: Say hello}
              reply: {text: x}
            - id: legacy
              when: {api: completions}
              reply: {text: x}
            - id: pirate
              when: {model: {glob: "gpt-4o*"}, system: {contains: pirate}, stream: true}
              reply: {text: x}
            """
        )
    )
    request = chat(user("Say hi"), stream=True)
    assert state.explain_miss(request) == "\n".join(
        [
            'No scenario matched this chat request (model "gpt-4o-mini", prompt "Say hi", stream). Closest scenarios:',
            '- `greet` (s.yaml:6): prompt: expected "Say hello", got "Say hi" (matched: api, model)',
            '- `pirate` (s.yaml:12): system: expected contains "pirate", but the request has no system '
            "(matched: model, stream)",
            '- `weather` (s.yaml:3): prompt: expected contains "weather", got "Say hi"; tools: the request does not '
            "offer get_weather (offers: none)",
            "Add a scenario for this request or fix the conditions above (`mockllm check` validates files).",
        ]
    )


def test_explain_miss_limit_and_tool_results() -> None:
    state = Scenarios(
        scenarios("\n".join(f"- id: s{i}\n  when: {{turn: {i + 5}}}\n  reply: {{text: x}}" for i in range(5)))
    )
    text = state.explain_miss(chat(*AFTER_PARALLEL_CALLS), limit=2)
    lines = text.splitlines()
    assert lines[0] == (
        'No scenario matched this chat request (model "gpt-4o-mini", prompt "Plan a trip to Paris", after tool '
        "get_weather, get_time). Closest scenarios:"
    )
    assert lines[1:3] == [
        "- `s0` (s.yaml:3): turn: expected turn 5, got 1",
        "- `s1` (s.yaml:6): turn: expected turn 6, got 1",
    ]
    assert len(lines) == 4


def test_explain_miss_with_nothing_loaded() -> None:
    assert Scenarios().explain_miss(chat()) == (
        'No scenario matched this chat request (model "gpt-4o-mini", prompt "Say hello"): no scenarios are loaded. '
        "Load scenario files (`mockllm serve PATH`, or `@pytest.mark.mockllm(PATH)` in tests) or add "
        "scenarios (POST /_mockllm/scenarios, or `mockllm.add()` in tests)."
    )


def test_explain_miss_shortens_long_values() -> None:
    state = Scenarios(scenarios("- id: short\n  when: {prompt: Hi}\n  reply: {text: x}"))
    text = state.explain_miss(chat(user("word " * 100)))
    detail = text.splitlines()[1]
    assert detail.startswith('- `short` (s.yaml:3): prompt: expected "Hi", got "word word')
    assert detail.endswith('…"')
    assert len(detail) < 140


# ---------------------------------------------------------------------------------------------------------------
# Shadowing (what `mockllm check` warns about)


@pytest.mark.parametrize(
    ("earlier", "later", "shadows"),
    [
        ("{}", "{prompt: hi}", True),
        ("{prompt: {contains: hello}}", "{prompt: Say hello}", True),
        ("{prompt: {glob: 'Say *'}}", "{prompt: Say hello, model: gpt-4o}", True),
        ("{prompt: {contains: hello}}", "{prompt: {contains: hello there}}", False),  # only exact values are proved
        ("{prompt: Say hello}", "{prompt: Say hello}", True),
        ("{prompt: Say hello, stream: true}", "{prompt: Say hello}", False),
        ("{tools: [a]}", "{tools: [a, b]}", True),
        ("{tools: [a, b]}", "{tools: [a]}", False),
        ("{headers: {x-team: blue}}", "{headers: {x-team: blue, x-env: ci}}", True),
        ("{body: {temperature: 0}}", "{body: {temperature: 0, n: 2}}", True),
        ("{body: {n: 2}}", "{body: {temperature: 0}}", False),
        ("{turn: 1}", "{turn: 2}", False),
    ],
)
def test_shadowing(earlier: str, later: str, shadows: bool) -> None:
    loaded = scenarios(
        f"- id: earlier\n  when: {earlier}\n  reply: {{text: a}}\n- id: later\n  when: {later}\n  reply: {{text: b}}"
    )
    pairs = [(a.name, b.name) for a, b in shadowing_warnings(loaded)]
    assert pairs == ([("earlier", "later")] if shadows else [])


def test_a_fall_through_sequence_shadows_nothing() -> None:
    loaded = scenarios("- id: first\n  replies: [{text: a}]\n  then: fall-through\n- id: then\n  reply: {text: b}")
    assert shadowing_warnings(loaded) == []
