"""`when.tools` and `when.after_tool` take string conditions (`contains`, `regex`, `glob`), because frameworks name
their tools themselves (pydantic-ai's `final_result`, instructor's model class, LangChain's bound functions)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from mockllm.loading import ScenarioError, json_schema, load_text
from mockllm.matching import Check, evaluate, matches, shadowing_warnings
from mockllm.protocols import openai_chat
from mockllm.protocols.base import ParsedRequest
from mockllm.scenarios import When


def tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


def request(*names: str, results: tuple[str, ...] = ()) -> ParsedRequest:
    """A chat request offering the tools `names`, after a call of each tool in `results` and its result."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What's the weather in Oslo?"}]
    if results:
        calls = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": "{}"}}
            for i, name in enumerate(results)
        ]
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        messages += [{"role": "tool", "tool_call_id": f"call_{i}", "content": "ok"} for i in range(len(results))]
    body = {"model": "gpt-4o-mini", "messages": messages, "tools": [tool(name) for name in names]}
    return openai_chat.parse(body, {})


def when(**conditions: Any) -> When:
    return When.model_validate(conditions)


def failed(checks: list[Check]) -> list[str]:
    return [f"{check.condition}: {check.detail}" for check in checks if not check.passed]


@pytest.mark.parametrize(
    ("condition", "offered", "ok"),
    [
        ({"contains": "final"}, ("final_result",), True),
        ({"contains": "final"}, ("get_weather",), False),
        ({"glob": "final_result*"}, ("final_result_Weather",), True),
        ({"glob": "final_result*"}, ("my_final_result",), False),
        ({"regex": "^get_"}, ("lookup", "get_time"), True),
        ({"regex": "^get_"}, ("forget_it",), False),
        ("Weather", ("Weather",), True),
        ("Weather", ("WeatherReport",), False),  # a plain string stays an exact match
    ],
)
def test_tools_take_string_conditions(condition: Any, offered: tuple[str, ...], ok: bool) -> None:
    assert matches(when(tools=[condition]), request(*offered)) is ok


def test_every_tools_entry_needs_an_offered_tool_of_its_own() -> None:
    condition = when(tools=[{"glob": "get_*"}, "book_hotel"])
    assert matches(condition, request("get_weather", "book_hotel"))
    assert failed(evaluate(condition, request("get_weather", "get_time"))) == [
        "tools: the request does not offer book_hotel (offers: get_weather, get_time)"
    ]
    assert failed(evaluate(when(tools=[{"contains": "final"}]), request("get_weather"))) == [
        'tools: the request does not offer a tool matching contains "final" (offers: get_weather)'
    ]


def test_after_tool_takes_a_string_condition() -> None:
    after = request("get_weather", results=("get_weather",))
    assert matches(when(after_tool={"glob": "get_*"}), after)
    assert matches(when(after_tool={"regex": "weather$"}), after)
    assert matches(when(after_tool="get_weather"), after)
    assert failed(evaluate(when(after_tool={"contains": "final"}), after)) == [
        'after_tool: expected a result of a tool matching contains "final", got get_weather'
    ]
    assert failed(evaluate(when(after_tool={"glob": "get_*"}), request("get_weather"))) == [
        'after_tool: expected a result of a tool matching glob "get_*", got no tool results after the last '
        "assistant message"
    ]


def test_a_misspelt_operator_in_a_tool_condition_names_the_fix() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_text("version: 1\nscenarios:\n  - when: {tools: [{contain: final}]}\n    reply: {text: hi}\n", "t.yaml")
    assert "t.yaml:3: scenarios[0].when.tools[0]: unknown key `contain`" in str(caught.value)
    assert "did you mean `contains`?" in str(caught.value)


SHADOW = """
version: 1
scenarios:
  - id: any-getter
    when: {tools: [{glob: "get_*"}]}
    reply: {text: a}
  - id: weather
    when: {tools: [get_weather, book_hotel]}
    reply: {text: b}
  - id: narrower-glob
    when: {tools: [{glob: "get_w*"}]}
    reply: {text: c}
  - id: after-glob
    when: {after_tool: {glob: "get_*"}}
    reply: {text: d}
  - id: after-exact
    when: {after_tool: get_time}
    reply: {text: e}
  - id: after-regex
    when: {after_tool: {regex: time}}
    reply: {text: f}
"""


def test_shadowing_understands_tool_conditions() -> None:
    loaded = load_text(SHADOW, "s.yaml")
    pairs = [(earlier.name, later.name) for earlier, later in shadowing_warnings(loaded)]
    # A glob covers an exact name it matches; it cannot be proven to cover another pattern, so no false warning.
    assert pairs == [("any-getter", "weather"), ("after-glob", "after-exact")]


def test_the_json_schema_takes_string_conditions_for_tools() -> None:
    schema = json_schema()
    document = {
        "version": 1,
        "scenarios": [
            {"when": {"tools": ["a", {"contains": "final"}], "after_tool": {"glob": "get_*"}}, "reply": {"text": "x"}}
        ],
    }
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "scenarios": [{"when": {"after_tool": {"like": "x"}}, "reply": {}}]}, schema)
