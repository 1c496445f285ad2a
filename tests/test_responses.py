"""The Responses API on the wire (`POST /v1/responses`): framing, events, validation, faults, the conversation store.

The SDK-level proofs are in test_sdk_responses.py; these read the raw bytes (wire-formats.md §4).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sse_utils import post_raw, split_events

from mockllm import MockServer
from mockllm.conversations import Conversations
from mockllm.loading import ScenarioError, load_text

PATH = "/v1/responses"


def serve(start_server: Any, *scenarios: dict[str, Any], **options: Any) -> MockServer:
    document = {"version": 1, "scenarios": list(scenarios)}
    server: MockServer = start_server(scenarios_yaml=json.dumps(document), **options)
    return server


def events(server: MockServer, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a streamed response; every event has both lines."""
    response = post_raw(server.url, PATH, {"model": "gpt-4.1", "stream": True, **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    out = []
    for raw in split_events(response.content):
        name_line, data_line = raw.split(b"\n")
        assert name_line.startswith(b"event: "), raw
        assert data_line.startswith(b"data: "), raw
        out.append((name_line[7:].decode(), json.loads(data_line[6:])))
    return out


def create(server: MockServer, body: dict[str, Any]) -> httpx.Response:
    return post_raw(server.url, PATH, {"model": "gpt-4.1", **body})


def names(stream: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in stream]


TEXT = {"id": "text", "reply": {"text": "Hello there!"}}


def test_text_stream_framing_and_order(start_server: Any) -> None:
    server = serve(start_server, TEXT)
    stream = events(server, {"input": "hi"})
    assert names(stream) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["type"] for _, data in stream] == names(stream)
    assert [data["sequence_number"] for _, data in stream] == list(range(len(stream)))
    created, progress = stream[0][1]["response"], stream[1][1]["response"]
    final = stream[-1][1]["response"]
    assert created["status"] == progress["status"] == "in_progress"
    assert created["usage"] is None
    assert created["output"] == []
    assert created["id"] == final["id"]
    assert created["id"].startswith("resp_")
    assert final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello there!"
    assert final["usage"]["output_tokens"] == 3
    assert final["usage"]["total_tokens"] == final["usage"]["input_tokens"] + 3
    assert final["usage"]["input_tokens_details"] == {"cached_tokens": 0}
    delta = stream[4][1]
    assert delta["delta"] == "Hello"
    assert delta["logprobs"] == []
    assert isinstance(delta["obfuscation"], str)
    assert delta["obfuscation"]
    item_id = stream[2][1]["item"]["id"]
    assert item_id.startswith("msg_")
    assert all(data["item_id"] == item_id for _, data in stream[3:9])
    assert stream[7][1]["text"] == "Hello there!"


def test_response_echoes_the_request_parameters(start_server: Any) -> None:
    server = serve(start_server, TEXT)
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]
    body = {
        "input": "hi",
        "instructions": "Be brief.",
        "temperature": 0.3,
        "tools": tools,
        "store": False,
        "truncation": "auto",
        "text": {"format": {"type": "json_object"}},
        "reasoning": {"effort": "low"},
        "metadata": {"k": "v"},
        "top_p": None,
    }
    response = create(server, body)
    assert response.status_code == 200
    assert response.text.startswith('{\n  "id": "resp_')  # pretty-printed, 2 spaces, as OpenAI's non-stream bodies
    assert response.headers["x-request-id"].startswith("req_")
    data = response.json()
    assert data["object"] == "response"
    assert data["instructions"] == "Be brief."
    assert data["temperature"] == 0.3
    assert data["tools"] == [{**tools[0], "description": None, "strict": True}]
    assert data["store"] is False
    assert data["truncation"] == "auto"
    assert data["text"]["format"] == {"type": "json_object"}
    assert data["reasoning"] == {"effort": "low", "summary": None}
    assert data["metadata"] == {"k": "v"}
    assert data["top_p"] == 1.0  # null is the API's default
    assert data["tool_choice"] == "auto"
    assert data["usage"]["output_tokens"] == 3


def test_obfuscation_can_be_turned_off(start_server: Any) -> None:
    server = serve(start_server, TEXT)
    stream = events(server, {"input": "hi", "stream_options": {"include_obfuscation": False}})
    deltas = [data for name, data in stream if name.endswith(".delta")]
    assert deltas
    assert all("obfuscation" not in data for data in deltas)


REASONING = {"id": "think", "reply": {"reasoning": "Let me think.", "text": "Done."}}


def test_reasoning_item_without_a_summary_request_has_an_empty_summary(start_server: Any) -> None:
    server = serve(start_server, REASONING)
    stream = events(server, {"input": "hi"})
    assert not [name for name in names(stream) if "reasoning_summary" in name]
    final = stream[-1][1]["response"]
    reasoning, message = final["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["summary"] == []
    assert "encrypted_content" not in reasoning
    assert message["type"] == "message"
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 4


def test_reasoning_summary_and_encrypted_content(start_server: Any) -> None:
    server = serve(start_server, REASONING)
    body = {"input": "hi", "reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"]}
    stream = events(server, body)
    assert names(stream)[2:10] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    added = stream[2][1]
    assert added["output_index"] == 0
    assert added["item"]["summary"] == []
    assert stream[8][1]["text"] == "Let me think."
    assert stream[9][1]["part"] == {"type": "summary_text", "text": "Let me think."}
    reasoning = stream[-1][1]["response"]["output"][0]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert isinstance(reasoning["encrypted_content"], str)
    assert len(reasoning["encrypted_content"]) > 40
    assert stream[-1][1]["response"]["output"][1]["content"][0]["text"] == "Done."


def test_refusal(start_server: Any) -> None:
    server = serve(start_server, {"id": "no", "reply": {"refusal": "I can't help with that."}})
    stream = events(server, {"input": "hi"})
    assert stream[3][1]["part"] == {"type": "refusal", "refusal": ""}
    deltas = [data["delta"] for name, data in stream if name == "response.refusal.delta"]
    assert "".join(deltas) == "I can't help with that."
    done = next(data for name, data in stream if name == "response.refusal.done")
    assert done["refusal"] == "I can't help with that."
    content = stream[-1][1]["response"]["output"][0]["content"]
    assert content == [{"type": "refusal", "refusal": "I can't help with that."}]


TOOL = {"id": "call", "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}}


def test_function_call_events(start_server: Any) -> None:
    server = serve(start_server, TOOL)
    stream = events(server, {"input": "weather?"})
    added = stream[2][1]["item"]
    assert list(added) == ["type", "id", "call_id", "name", "arguments", "status"]
    assert added["id"].startswith("fc_")
    assert added["call_id"].startswith("call_")
    assert (added["name"], added["arguments"], added["status"]) == ("get_weather", "", "in_progress")
    deltas = [data for name, data in stream if name == "response.function_call_arguments.delta"]
    assert "".join(data["delta"] for data in deltas) == '{"city": "Oslo"}'
    assert all(data["item_id"] == added["id"] and data["output_index"] == 0 for data in deltas)
    done = next(data for name, data in stream if name == "response.function_call_arguments.done")
    assert (done["name"], done["arguments"]) == ("get_weather", '{"city": "Oslo"}')
    final = stream[-1][1]["response"]
    assert final["status"] == "completed"
    assert final["output"] == [{**added, "arguments": '{"city": "Oslo"}', "status": "completed"}]


def test_max_output_tokens_makes_the_response_incomplete(start_server: Any) -> None:
    text = " ".join(["word"] * 30)
    server = serve(start_server, {"id": "long", "reply": {"text": text}})
    stream = events(server, {"input": "hi", "max_output_tokens": 16})
    assert names(stream)[-1] == "response.incomplete"
    final = stream[-1][1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"
    assert final["usage"]["output_tokens"] == 16
    assert len([n for n in names(stream) if n == "response.output_text.delta"]) == 16
    body = create(server, {"input": "hi", "max_output_tokens": 16}).json()
    assert body["status"] == "incomplete"
    assert body["max_output_tokens"] == 16


def fault(kind: str, after: int, **extra: Any) -> dict[str, Any]:
    return {"id": "f", "reply": {"text": "One two three four five", "fault": {"kind": kind, "after": after, **extra}}}


@pytest.mark.parametrize("after", [0, 2, 5])
def test_error_event_nested_continues_the_sequence(start_server: Any, after: int) -> None:
    server = serve(start_server, fault("error_event", after, type="insufficient_quota", message="No quota."))
    stream = events(server, {"input": "hi"})
    assert names(stream)[-2:] == ["error", "response.failed"]
    assert [data["sequence_number"] for _, data in stream] == list(range(len(stream)))
    assert len([n for n in names(stream) if n == "response.output_text.delta"]) == after
    error, failed = stream[-2][1], stream[-1][1]
    assert error["error"] == {"type": "insufficient_quota", "code": "insufficient_quota", "message": "No quota.",
                              "param": None}  # fmt: skip
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "insufficient_quota", "message": "No quota."}
    assert failed["response"]["id"] == stream[0][1]["response"]["id"]
    entry = httpx.get(server.url + "/_mockllm/requests").json()[-1]
    assert (entry["api"], entry["fault"], entry["chunks"]) == ("responses", "error_event", after)


def test_error_event_flat_form(start_server: Any) -> None:
    server = serve(start_server, fault("error_event", 1, form="flat"))
    stream = events(server, {"input": "hi"})
    error = stream[-2][1]
    assert error == {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error while processing your request. Sorry about that!",
        "param": None,
        "sequence_number": len(stream) - 2,
    }
    assert stream[-1][1]["type"] == "response.failed"


def test_end_fault_stops_before_the_terminal_event(start_server: Any) -> None:
    server = serve(start_server, fault("end", 5))
    stream = events(server, {"input": "hi"})
    assert names(stream)[-1] == "response.output_text.delta"
    assert "response.completed" not in names(stream)


def test_form_is_only_for_error_events() -> None:
    with pytest.raises(ScenarioError, match="`form` shapes an error_event fault"):
        load_text(json.dumps({"version": 1, "scenarios": [fault("end", 1, form="flat")]}), "<test>")


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"input": 5}, "input", "expected one of a string or an array of input items"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", "Invalid value: 'robot'"),
        ({"input": [{"role": "user"}]}, "input[0].content", "Missing required parameter"),
        (
            {"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
            "input[0].content[0].type",
            "Supported values are: 'output_text', and 'refusal'",
        ),
        ({"input": [{"type": "telepathy"}]}, "input[0].type", "Invalid value: 'telepathy'"),
        ({"input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools[0].name", "Missing"),
        ({"input": "x", "max_output_tokens": 5}, "max_output_tokens", "Expected a value >= 16"),
        ({"input": "x", "temperature": 3}, "temperature", "decimal above maximum value"),
        ({"input": "x", "include": ["everything"]}, "include[0]", "Invalid value: 'everything'"),
        ({"input": "x", "reasoning": {"summary": "long"}}, "reasoning.summary", "Invalid value: 'long'"),
        ({"input": "x", "stream_options": {"include_obfuscation": False}}, "stream_options", "only allowed"),
        (
            {"input": [{"type": "function_call_output", "call_id": "call_1", "output": "x"}]},
            "input[0]",
            "No tool call found for function call output with call_id call_1.",
        ),
        (
            {
                "input": [
                    {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
                    {"role": "user", "content": "and?"},
                ]
            },
            "input",
            "No tool output found for function call call_1.",
        ),
        ({"input": "x", "previous_response_id": "resp_unknown"}, "previous_response_id", "'resp_unknown' not found"),
    ],
)
def test_requests_the_real_api_refuses(start_server: Any, body: dict[str, Any], param: str, fragment: str) -> None:
    server = serve(start_server, TEXT)
    response = create(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]


def test_matching_sees_instructions_turns_and_tool_results(start_server: Any) -> None:
    server = serve(
        start_server,
        {
            "id": "answer",
            "when": {"api": "responses", "after_tool": "get_weather", "turn": 1, "system": "Be brief.", "messages": 4},
            "reply": {"text": "12 degrees."},
        },
        {"id": "other", "when": {"prompt": "nothing"}, "reply": {"text": "no"}},
    )
    conversation = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "12C"},
    ]
    response = create(server, {"input": conversation, "instructions": "Be brief."})
    assert response.status_code == 200, response.text
    assert response.json()["output"][0]["content"][0]["text"] == "12 degrees."


def test_a_miss_is_explained_in_openai_shape(start_server: Any) -> None:
    server = serve(start_server, {"id": "greet", "when": {"prompt": "hello"}, "reply": {"text": "Hi"}})
    response = create(server, {"input": "goodbye"})
    assert response.status_code == 404
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["code"] == "no_scenario_matched"
    assert "responses request" in error["message"]
    assert "`greet`" in error["message"]
    assert 'expected "hello", got "goodbye"' in error["message"]


def test_scenario_error_in_openai_shape(start_server: Any) -> None:
    server = serve(start_server, {"id": "limited", "reply": {"error": {"status": 429, "retry_after": 2}}}, time_scale=1)
    response = create(server, {"input": "hi", "stream": True})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_previous_response_id_continues_and_reset_forgets(start_server: Any) -> None:
    server = serve(
        start_server,
        {"id": "second", "when": {"turn": 1, "prompt": "And again?"}, "reply": {"text": "Again."}},
        {"id": "first", "reply": {"text": "Once."}},
    )
    first = create(server, {"input": "Once?"}).json()
    second = create(server, {"input": "And again?", "previous_response_id": first["id"]})
    assert second.status_code == 200, second.text
    assert second.json()["previous_response_id"] == first["id"]
    assert second.json()["output"][0]["content"][0]["text"] == "Again."
    # A reference to an item of a stored response resolves to that item.
    reference = {"type": "item_reference", "id": first["output"][0]["id"]}
    conversation = [{"role": "user", "content": "Once?"}, reference, {"role": "user", "content": "And again?"}]
    third = create(server, {"input": conversation})
    assert third.json()["output"][0]["content"][0]["text"] == "Again."
    unstored = create(server, {"input": "Once?", "store": False}).json()
    assert create(server, {"input": "x", "previous_response_id": unstored["id"]}).status_code == 400
    httpx.post(server.url + "/_mockllm/reset")
    gone = create(server, {"input": "And again?", "previous_response_id": first["id"]})
    assert gone.status_code == 400
    assert gone.json()["error"]["code"] == "previous_response_not_found"


def test_the_store_is_bounded() -> None:
    store = Conversations(limit=2)
    for name in ("a", "b", "c"):
        store.remember(name, [{"id": f"msg_{name}", "type": "message"}])
    assert store.recall("a") is None
    assert store.recall("c") == [{"id": "msg_c", "type": "message"}]
    assert store.find_item("msg_b") == {"id": "msg_b", "type": "message"}
    assert len(store) == 2
    store.clear()
    assert store.recall("c") is None


def test_non_streamed_reply_waits_out_the_timing(start_server: Any) -> None:
    server = serve(start_server, {"id": "slow", "reply": {"text": "a b c", "timing": {"ttft": "100ms"}}}, time_scale=1)
    response = create(server, {"input": "hi"})
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.09
