"""The tool-loop trap: a tool-call scenario placed before the `after_tool` scenario that answers the result also
answers the follow-up request, and the agent loops. `mockllm check` warns about the ordering; the server notices the
loop at runtime and says so in the journal, the log and the pytest plugin's failure text."""

from __future__ import annotations

import json
import logging
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import StartServer

from mockllm.cli import main
from mockllm.loading import load_text
from mockllm.logs import log_request
from mockllm.toolloop import tool_loop_warnings

pytest_plugins = ["pytester"]

HEAD = "version: 1\nscenarios:\n"
CALLER = """\
  - id: weather
    when:
      prompt: {contains: weather}
      tools: [get_weather]
    reply:
      tool_calls:
        - name: get_weather
          arguments: {city: Oslo}
"""
ANSWERER = """\
  - id: weather-answer
    when: {after_tool: get_weather}
    reply: {text: It is 12 degrees in Oslo.}
"""
TRAP = HEAD + CALLER + ANSWERER
FIXED = HEAD + ANSWERER + CALLER
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def loops(text: str) -> list[tuple[str, str, str]]:
    found = tool_loop_warnings(load_text(textwrap.dedent(text), "s.yaml"))
    return [(loop.earlier.name, loop.later.name, loop.tool) for loop in found]


def scenario_list(body: str) -> str:
    return "version: 1\nscenarios:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")


CALL = "reply: {tool_calls: [{name: get_weather, arguments: {city: Oslo}}]}"
ANSWER = "- id: answer\n  when: {after_tool: get_weather}\n  reply: {text: Twelve degrees.}"


@pytest.mark.parametrize(
    ("scenarios", "expected"),
    [
        # The trap: the tool call comes first and still matches the follow-up.
        (f"- id: call\n  when: {{prompt: weather}}\n  {CALL}\n{ANSWER}", [("call", "answer", "get_weather")]),
        # A pattern in after_tool is the same trap.
        (
            f"- id: call\n  {CALL}\n- id: answer\n  when: {{after_tool: {{glob: 'get_*'}}}}\n  reply: {{text: x}}",
            [("call", "answer", "get_weather")],
        ),
        # A sequence that repeats its tool call at the end loops too.
        (
            f"- id: call\n  replies: [{{text: hi}}, {{tool_calls: [{{name: get_weather}}]}}]\n{ANSWER}",
            [("call", "answer", "get_weather")],
        ),
        # The fixed order: the after_tool scenario first.
        (f"{ANSWER}\n- id: call\n  {CALL}", []),
        # `turn: 0` or a `messages` count tells the follow-up apart.
        (f"- id: call\n  when: {{turn: 0}}\n  {CALL}\n{ANSWER}", []),
        (f"- id: call\n  when: {{messages: 1}}\n  {CALL}\n{ANSWER}", []),
        # A sequence that answers the follow-up with text (or falls through) ends the loop itself.
        (f"- id: call\n  replies: [{{tool_calls: [{{name: get_weather}}]}}, {{text: done}}]\n{ANSWER}", []),
        (
            f"- id: call\n  replies: [{{tool_calls: [{{name: get_weather}}]}}]\n  then: fall-through\n{ANSWER}",
            [],
        ),
        # The after_tool scenario is about another tool, or another model: not this conversation's follow-up.
        (f"- id: call\n  {CALL}\n- id: answer\n  when: {{after_tool: get_time}}\n  reply: {{text: x}}", []),
        (
            f"- id: call\n  when: {{model: a}}\n  {CALL}\n"
            f"- id: answer\n  when: {{model: b, after_tool: get_weather}}\n  reply: {{text: x}}",
            [],
        ),
        # An earlier after_tool for another tool does not hold on this follow-up.
        (f"- id: call\n  when: {{after_tool: search}}\n  {CALL}\n{ANSWER}", []),
    ],
)
def test_tool_loop_warnings(scenarios: str, expected: list[tuple[str, str, str]]) -> None:
    assert loops(scenario_list(scenarios)) == expected


def test_check_warns_about_the_ordering_with_both_scenarios_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trap = tmp_path / "trap.yaml"
    trap.write_text(TRAP)
    assert main(["check", str(trap)]) == 0  # a warning, not an error
    out, err = capsys.readouterr()
    assert out == "ok: 2 scenarios in 1 file, 1 warning\n"
    assert err == (
        f"warning: {trap}:11: scenario `weather-answer` (after_tool) never answers the result of get_weather: "
        f"`weather` ({trap}:3) comes first, calls get_weather, and its conditions still hold on the follow-up request "
        f"that carries the result, so the agent calls get_weather again and loops. Move `weather-answer` above "
        f"`weather`, or add `turn: 0` (or an `after_tool` condition) to `weather`\n"
    )
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(FIXED)
    assert main(["check", str(fixed)]) == 0
    assert capsys.readouterr() == ("ok: 2 scenarios in 1 file\n", "")


def _agent_turns(base_url: str, rounds: int) -> list[str | None]:
    """A hand-written agent loop: call the model, run each tool it asks for, send the result back."""
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Oslo?"}]
    answers: list[str | None] = []
    for _ in range(rounds):
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        message = completion.choices[0].message
        answers.append(message.content)
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "12 degrees"})
    return answers


def test_the_server_notices_the_loop_in_the_journal_and_the_log(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(scenarios_yaml=TRAP)
    server.state.listeners.append(log_request)
    with caplog.at_level(logging.INFO, logger="mockllm"):
        answers = _agent_turns(server.openai_base_url, rounds=3)
        deadline = time.monotonic() + 10
        while len([r for r in caplog.records if r.levelno == logging.WARNING]) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert answers == [None, None, None]  # the reply is still sent: the agent loops
    journal = httpx.get(f"{server.url}/_mockllm/requests").json()
    assert [entry["scenario"] for entry in journal] == ["weather"] * 3
    assert [entry["status"] for entry in journal] == [200] * 3
    assert journal[0]["warning"] is None
    expected = (
        "tool loop: scenario `weather` (<test>:3) answered with a call of get_weather a request that already carries "
        "a result of get_weather, so the agent will call it again and again. Fix: `weather-answer` (<test>:11) would "
        "answer this request but comes after `weather`: move it above `weather`, or add `turn: 0` to `weather`."
    )
    assert journal[1]["warning"] == expected
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"request 2: {expected}", f"request 3: {expected}"]


def test_without_an_after_tool_scenario_the_fix_says_to_add_one(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=HEAD + CALLER)
    _agent_turns(server.openai_base_url, rounds=2)
    journal = httpx.get(f"{server.url}/_mockllm/requests").json()
    assert journal[1]["warning"].endswith(
        "Fix: add a scenario with `when: {after_tool: get_weather}` above `weather` to answer the result, or add "
        "`turn: 0` to `weather`."
    )


def test_the_fixed_order_and_a_deliberate_sequence_raise_no_warning(start_server: StartServer) -> None:
    fixed = start_server(scenarios_yaml=FIXED)
    assert _agent_turns(fixed.openai_base_url, rounds=3) == [None, "It is 12 degrees in Oslo."]
    # Two calls of the same tool in a row, then the answer: the sequence means its repeated call.
    sequence = start_server(
        scenarios_yaml=scenario_list(
            """
            - id: search-twice
              replies:
                - {tool_calls: [{name: get_weather, arguments: {city: Oslo}}]}
                - {tool_calls: [{name: get_weather, arguments: {city: Bergen}}]}
                - {text: Both cold.}
            """
        )
    )
    assert _agent_turns(sequence.openai_base_url, rounds=4) == [None, None, "Both cold."]
    for server in (fixed, sequence):
        journal = httpx.get(f"{server.url}/_mockllm/requests").json()
        assert all(entry["warning"] is None for entry in journal), json.dumps(journal)


def test_the_plugin_fails_the_test_with_the_warning_and_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".ini",
        pytest="[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\n"
        "mockllm_time_scale = 0\n",
    )
    (pytester.path / "trap.yaml").write_text(TRAP)
    pytester.makepyfile(
        test_agent=f"""
        import openai, pytest

        TOOL = {WEATHER_TOOL!r}

        def agent(rounds):
            client = openai.OpenAI(max_retries=0)
            messages = [{{"role": "user", "content": "What's the weather in Oslo?"}}]
            for _ in range(rounds):
                message = client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, tools=[TOOL]).choices[0].message
                if not message.tool_calls:
                    return message.content
                messages.append(message.model_dump(exclude_none=True))
                messages += [{{"role": "tool", "tool_call_id": c.id, "content": "12"}} for c in message.tool_calls]
            return None

        @pytest.mark.mockllm("trap.yaml")
        def test_gives_up_quietly(mockllm):
            agent(2)  # an agent that gives up after two rounds, without raising

        @pytest.mark.mockllm("trap.yaml", strict=False)
        def test_lenient(mockllm):
            agent(2)
            assert mockllm.warnings[0].warning.startswith("tool loop:")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    text = "\n".join(result.outlines)
    assert "mockllm: 1 request in this test got a reply that loops." in text
    assert "tool loop: scenario `weather` (" in text
    assert "Fix: `weather-answer` (" in text
    assert "move it above `weather`, or add `turn: 0` to `weather`." in text
