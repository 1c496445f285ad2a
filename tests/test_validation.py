"""Contract validation ("no false greens"), driven through the real `openai` and `anthropic` SDKs: each rule's 400
(status, error type, `param`, `code`, the API's words and the rule), `--validate warn` and `off`, `validate: off`
on a scenario, and the pytest plugin failing a test in warn mode."""

from __future__ import annotations

import logging
import textwrap
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from conftest import StartServer
from sse_utils import openai_client

from mockllm import MockServer
from mockllm.app import Settings

pytest_plugins = ["pytester"]

SCENARIOS = """
version: 1
scenarios:
  - id: on-purpose
    when: {prompt: on purpose}
    validate: off
    reply: {text: Answered anyway.}
  - id: anything
    when: {prompt: {regex: "^(?!unmatched)"}}
    reply: {text: ok}
"""
USER: Any = {"role": "user", "content": "hi"}
CALL: Any = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
ASKED: Any = {"role": "assistant", "content": None, "tool_calls": [CALL]}
ANSWER: Any = {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees"}
TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture
def server(start_server: StartServer) -> MockServer:
    return start_server(scenarios_yaml=SCENARIOS)


def chat_refusal(server: MockServer, rule: bool = True, **params: Any) -> openai.BadRequestError:
    """The 400 the chat request gets; the client may retry twice, but a refusal must not be retried (a broken `rule`
    also says so in `x-should-retry`, which the SDK obeys over the status)."""
    client = openai_client(server, max_retries=2)
    params.setdefault("messages", [USER])
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", **params)
    error = caught.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    if rule:
        assert error.response.headers["x-should-retry"] == "false"
    [entry] = server.state.journal.entries()  # one request: not retried
    assert entry.error is not None
    assert entry.error["status"] == 400
    assert entry.violation is None
    return error


def message_of(error: openai.APIStatusError | anthropic.APIStatusError) -> str:
    body = error.body
    assert isinstance(body, dict)
    inner = body.get("error", body)
    assert isinstance(inner, dict)
    return str(inner["message"])


# -- Chat Completions --------------------------------------------------------------------------------------------


CHAT_RULES = [
    pytest.param(
        {"messages": [USER, ANSWER]},
        "messages.[1].role",
        None,
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
        "tool-message-answers-a-call",
        id="tool-without-call",
    ),
    pytest.param(
        {"messages": [USER, ASKED, {**ANSWER, "tool_call_id": "call_9"}]},
        "messages.[2].tool_call_id",
        None,
        "Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous message.",
        "tool-message-answers-a-call",
        id="tool-answers-unknown-id",
    ),
    pytest.param(
        {"messages": [USER, ASKED, {"role": "user", "content": "and?"}]},
        "messages.[1].role",
        None,
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        "'tool_call_id'. The following tool_call_ids did not have response messages: call_1",
        "tool-calls-answered",
        id="call-unanswered",
    ),
    pytest.param(
        {"stream_options": {"include_usage": True}},
        "stream_options",
        None,
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream-options-need-stream",
        id="stream-options-without-stream",
    ),
    pytest.param(
        {"max_tokens": 10, "max_completion_tokens": 10},
        "max_tokens",
        "invalid_parameter_combination",
        "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
        "max-tokens-or-max-completion-tokens",
        id="max-tokens-both",
    ),
    pytest.param(
        {"tool_choice": "required"},
        "tool_choice",
        None,
        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        "tool-choice-names-an-offered-tool",
        id="tool-choice-without-tools",
    ),
    pytest.param(
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
        "tool_choice",
        None,
        "Invalid value for 'tool_choice': function 'get_time' is not one of the 'tools' of the request.",
        "tool-choice-names-an-offered-tool",
        id="tool-choice-names-unoffered-tool",
    ),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
        "response_format.json_schema.name",
        "missing_required_parameter",
        "Missing required parameter: 'response_format.json_schema.name'.",
        "response-format-json-schema",
        id="json-schema-without-name",
    ),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
        "response_format.json_schema.name",
        "invalid_value",
        "Invalid 'response_format.json_schema.name': string does not match pattern.",
        "response-format-json-schema",
        id="json-schema-bad-name",
    ),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": "object"}}},
        "response_format.json_schema.schema",
        "invalid_type",
        "Invalid type for 'response_format.json_schema.schema': expected an object, but got string instead.",
        "response-format-json-schema",
        id="json-schema-not-an-object",
    ),
    pytest.param(
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        },
        "response_format",
        None,
        "Invalid schema for response_format 'answer': In context=(), 'additionalProperties' is required to be "
        "supplied and to be false.",
        "response-format-strict-schema",
        id="strict-schema-additional-properties",
    ),
    pytest.param(
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["place"],
                        "properties": {
                            "place": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                                "required": ["city"],
                            }
                        },
                    },
                },
            }
        },
        "response_format",
        None,
        "Invalid schema for response_format 'answer': In context=('properties', 'place'), 'required' is required "
        "to be supplied and to be an array including every key in properties. Missing 'zip'.",
        "response-format-strict-schema",
        id="strict-schema-required",
    ),
]


@pytest.mark.parametrize(("params", "param", "code", "words", "rule"), CHAT_RULES)
def test_chat_rules(
    server: MockServer, params: dict[str, Any], param: str, code: str | None, words: str, rule: str
) -> None:
    error = chat_refusal(server, **params)
    assert (error.param, error.code) == (param, code)
    message = message_of(error)
    assert message.startswith(words)  # the API's words first, then the rule
    assert f"mockllm rule `{rule}`" in message
    assert "validate: off" in message


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"n": 0}, "n", "integer_below_min_value"),
        ({"n": 129}, "n", "integer_above_max_value"),
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"top_p": -0.1}, "top_p", "decimal_below_min_value"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
        ({"top_logprobs": 3}, "top_logprobs", "invalid_value"),
    ],
)
def test_chat_ranges(server: MockServer, params: dict[str, Any], param: str, code: str) -> None:
    """Ranges are checked when the request is parsed (they hold whatever the scenario), in OpenAI's words."""
    error = chat_refusal(server, rule=False, **params)
    assert (error.param, error.code) == (param, code)
    assert message_of(error).startswith("Invalid")
    assert param in message_of(error)


def test_a_well_formed_tool_conversation_passes(server: MockServer) -> None:
    """No false reds: calls answered in order, then the conversation goes on."""
    second = {**CALL, "id": "call_2"}
    messages = [
        {"role": "system", "content": "Be brief."},
        USER,
        {**ASKED, "tool_calls": [CALL, second]},
        ANSWER,
        {**ANSWER, "tool_call_id": "call_2"},
        {"role": "assistant", "content": "It is 12 degrees."},
        {"role": "user", "content": "thanks"},
    ]
    completion = openai_client(server).chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_completion_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join(c.choices[0].delta.content or "" for c in completion if c.choices) == "ok"


# -- Anthropic Messages ------------------------------------------------------------------------------------------

THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
TOOL_USE: Any = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
RESULT: Any = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 degrees"}
RESULTS: Any = {"role": "user", "content": [RESULT]}
CALLED: Any = {"role": "assistant", "content": [TOOL_USE]}


def anthropic_refusal(server: MockServer, body: dict[str, Any]) -> anthropic.BadRequestError:
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)
    with client, pytest.raises(anthropic.BadRequestError) as caught:
        # `post`: the typed `messages.create` would not let a test leave out `max_tokens`.
        client.post("/v1/messages", body={"model": "claude-sonnet-4-5", **body}, cast_to=dict)
    error = caught.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    assert error.response.headers["x-should-retry"] == "false"
    payload: Any = error.body
    assert payload["type"] == "error"
    assert payload["request_id"] == error.request_id
    assert len(server.state.journal.entries()) == 1
    return error


@pytest.mark.parametrize(
    ("body", "words", "rule"),
    [
        pytest.param({"messages": [USER]}, "max_tokens: Field required", "max-tokens-required", id="no-max-tokens"),
        pytest.param(
            {"max_tokens": 100, "messages": [USER, {"role": "assistant", "content": "Hm."}, RESULTS]},
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous message.",
            "tool-result-answers-tool-use",
            id="stray-tool-result",
        ),
        pytest.param(
            {"max_tokens": 100, "messages": [USER, CALLED, {"role": "user", "content": "and?"}]},
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1.",
            "tool-use-answered",
            id="tool-use-unanswered",
        ),
        pytest.param(
            {
                "max_tokens": 2048,
                "thinking": THINKING,
                "messages": [USER, {"role": "assistant", "content": [TOOL_USE]}, {"role": "user", "content": [RESULT]}],
            },
            "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`.",
            "thinking-block-first",
            id="thinking-continuation-without-thinking",
        ),
        pytest.param(
            {"max_tokens": 1024, "thinking": THINKING, "messages": [USER]},
            "`max_tokens` must be greater than `thinking.budget_tokens`.",
            "thinking-budget-below-max-tokens",
            id="thinking-budget",
        ),
        pytest.param(
            {"max_tokens": 2048, "thinking": THINKING, "temperature": 0.5, "messages": [USER]},
            "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode.",
            "thinking-temperature",
            id="thinking-temperature",
        ),
    ],
)  # fmt: skip
def test_anthropic_rules(server: MockServer, body: dict[str, Any], words: str, rule: str) -> None:
    message = message_of(anthropic_refusal(server, body))
    assert message.startswith(words)
    assert f"mockllm rule `{rule}`" in message


def test_anthropic_thinking_continuation_with_its_signature_passes(server: MockServer) -> None:
    thought: Any = {"type": "thinking", "thinking": "Call the tool.", "signature": "c2ln"}
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    with client:
        message = client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=2048,
            thinking=THINKING,
            messages=[USER, {"role": "assistant", "content": [thought, TOOL_USE]}, RESULTS],
        )
    assert message.content[-1].type == "text"
    assert message.content[-1].text == "ok"


# -- Responses ---------------------------------------------------------------------------------------------------

FUNCTION_CALL: Any = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
OUTPUT: Any = {"type": "function_call_output", "call_id": "call_1", "output": "12 degrees"}


@pytest.mark.parametrize(
    ("params", "param", "code", "words", "rule"),
    [
        pytest.param(
            {"input": [{"role": "user", "content": "hi"}, {**OUTPUT, "call_id": "call_9"}]},
            "input[1]", None, "No tool call found for function call output with call_id call_9.",
            "function-call-output-answers-a-call", id="output-without-call",
        ),
        pytest.param(
            {"input": [{"role": "user", "content": "hi"}, FUNCTION_CALL, {"role": "user", "content": "and?"}]},
            "input", None, "No tool output found for function call call_1.", "function-calls-answered",
            id="call-without-output",
        ),
        pytest.param(
            {"input": "hi", "previous_response_id": "resp_unknown"},
            "previous_response_id", "previous_response_not_found",
            "Previous response with id 'resp_unknown' not found.", "previous-response-known", id="unknown-previous",
        ),
    ],
)  # fmt: skip
def test_responses_rules(
    server: MockServer, params: dict[str, Any], param: str, code: str | None, words: str, rule: str
) -> None:
    client = openai_client(server, max_retries=2)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", **params)
    error = caught.value
    assert (error.status_code, error.type, error.param, error.code) == (400, "invalid_request_error", param, code)
    assert message_of(error).startswith(words)
    assert f"mockllm rule `{rule}`" in message_of(error)
    assert error.response.headers["x-should-retry"] == "false"
    assert len(server.state.journal.entries()) == 1


def test_responses_continuation_passes(server: MockServer) -> None:
    client = openai_client(server)
    conversation: Any = [{"role": "user", "content": "hi"}, FUNCTION_CALL, OUTPUT]
    first = client.responses.create(model="gpt-4o", input=conversation)
    second = client.responses.create(model="gpt-4o", input="more", previous_response_id=first.id)
    assert second.output_text == "ok"


# -- modes -------------------------------------------------------------------------------------------------------


def test_warn_answers_journals_and_logs(start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    server = start_server(scenarios_yaml=SCENARIOS, validate="warn")
    with caplog.at_level(logging.WARNING, logger="mockllm"):
        completion = openai_client(server).chat.completions.create(model="gpt-4o", messages=[USER, ANSWER])
    assert completion.choices[0].message.content == "ok"
    [entry] = server.state.journal.entries()
    for _ in range(1000):  # the entry is complete once the server has sent the last byte
        if entry.duration is not None:
            break
        time.sleep(0.001)
    assert entry.status == 200
    assert entry.error is None
    assert entry.violation is not None
    assert entry.violation["rule"] == "tool-message-answers-a-call"
    assert entry.violation["message"].startswith("Invalid parameter: messages with role 'tool'")
    assert httpx.get(server.url + "/_mockllm/requests").json()[0]["violation"] == entry.violation
    [record] = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "violation"]
    assert record.levelno == logging.WARNING
    assert "tool-message-answers-a-call" in record.getMessage()


def test_off_answers_without_a_trace(start_server: StartServer) -> None:
    server = start_server(scenarios_yaml=SCENARIOS, validate="off")
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    with client:
        # A `tool_result` answering no `tool_use`: Anthropic's 400, let through because validation is off.
        messages: Any = [USER, {"role": "assistant", "content": "Hm."}, RESULTS]
        answer = client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=messages)
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "ok"
    [entry] = server.state.journal.entries()
    assert entry.violation is None
    assert entry.error is None


def test_scenario_validate_off(server: MockServer) -> None:
    """`validate: off` lets the requests its scenario answers through; the others are still refused."""
    bad: Any = {"role": "user", "content": "on purpose"}
    completion = openai_client(server).chat.completions.create(model="gpt-4o", messages=[bad, ANSWER])
    assert completion.choices[0].message.content == "Answered anyway."
    server.state.journal.clear()
    chat_refusal(server, messages=[USER, ANSWER])


def test_a_refused_request_matching_nothing_gets_its_400_not_a_miss(server: MockServer) -> None:
    error = chat_refusal(server, messages=[{"role": "user", "content": "unmatched"}, ANSWER])
    assert server.state.journal.entries()[0].miss is None
    assert "tool-message-answers-a-call" in message_of(error)


def test_validate_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="validate='loose' is not a mode; use one of strict, warn, off"):
        Settings(validate="loose")


def test_plugin_fails_a_test_in_warn_mode(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".ini",
        pytest="[pytest]\naddopts = -p no:cacheprovider\nfilterwarnings = error\n"
        "asyncio_default_fixture_loop_scope = function\nmockllm_time_scale = 0\n",
    )
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest
            from mockllm import MockServer

            @pytest.fixture(scope="session")
            def mockllm_server():
                with MockServer(validate="warn", time_scale=0) as server:
                    yield server
            """
        )
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            import openai

            BAD = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_1", "content": "x"}]

            def test_bad(mockllm):
                mockllm.add(reply={"text": "ok"})
                with openai.OpenAI() as client:
                    answer = client.chat.completions.create(model="m", messages=BAD)
                assert answer.choices[0].message.content == "ok"  # answered: only the plugin can catch it

            def test_bad_on_purpose(mockllm):
                mockllm.add(reply={"text": "ok"}, validate="off")
                with openai.OpenAI() as client:
                    client.chat.completions.create(model="m", messages=BAD)
            """
        )
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    text = "\n".join(result.outlines)
    assert "1 request in this test would be refused by the real API" in text
    assert "broke the rule `tool-message-answers-a-call`" in text
    assert "add `validate: off` to the scenario" in text
    assert "matched no scenario" not in text
