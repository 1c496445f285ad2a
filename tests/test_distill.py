"""`mockllm distill`: recordings built by hand from real captures, distilled, checked, served, and read back
through the real SDKs of other APIs than the one they were recorded from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml
from conftest import DATA, StartServer
from sse_utils import openai_client

from mockllm.cli import main
from mockllm.distill import distill
from mockllm.tokens import tokenize

OPENAI = DATA / "captures" / "openai"
ANTHROPIC = DATA / "captures" / "anthropic"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "GetWeatherArgs",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def capture_events(path: Path, first: float = 0.3, step: float = 0.02) -> list[dict[str, Any]]:
    """A capture's SSE events as a recording keeps them, with plausible offsets: `first`, then every `step`."""
    events: list[dict[str, Any]] = []
    for block in path.read_text(encoding="utf-8").strip("\n").split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name in ("event", "data"):
                event[name] = value
        event["at"] = round(first + step * len(events), 3)
        events.append(event)
    return events


def capture_deltas(path: Path) -> list[str]:
    """The text pieces of a Chat Completions capture, in order."""
    pieces = []
    for event in capture_events(path):
        if event["data"] != "[DONE]":
            for choice in json.loads(event["data"])["choices"]:
                if choice["index"] == 0 and choice["delta"].get("content"):
                    pieces.append(choice["delta"]["content"])
    return pieces


def recorded(scenario_id: str, api: str, request: dict[str, Any], **reply: Any) -> dict[str, Any]:
    return {"id": scenario_id, "when": {"api": api, "request": request}, "reply": {"raw": reply}}


def stream(events: list[dict[str, Any]], status: int = 200) -> dict[str, Any]:
    headers = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_1"}
    return {"status": status, "headers": headers, "events": events}


def write_recording(path: Path, *scenarios: dict[str, Any]) -> Path:
    document = {
        "version": 1,
        "recorded": {"upstream": "https://api.openai.com", "date": "2026-12-06T20:00:00Z", "mockllm": "0.1.0"},
        "scenarios": list(scenarios),
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def chat_request(prompt: str, *extra: dict[str, Any], **body: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}, *extra], "stream": True, **body}


def distilled(tmp_path: Path, *paths: Path) -> tuple[Path, dict[str, Any]]:
    """Run `mockllm distill -o`, then `mockllm check` on the output (both exit 0); the file and its data."""
    out = tmp_path / "distilled.yaml"
    assert main(["distill", *map(str, paths), "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    return out, yaml.safe_load(out.read_text(encoding="utf-8"))


TEXT_PROMPT = "What's the weather like in SF?"


@pytest.fixture
def text_recording(tmp_path: Path) -> Path:
    events = capture_events(OPENAI / "chat-stream-text.sse", first=0.25, step=0.01)
    return write_recording(
        tmp_path / "chat-text.yaml", recorded("chat-3f2a9c1d5e7b", "chat", chat_request(TEXT_PROMPT), **stream(events))
    )


def test_a_chat_stream_becomes_a_neutral_scenario(
    tmp_path: Path, text_recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, data = distilled(tmp_path, text_recording)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Distilled by `mockllm distill`")
    assert "recorded" not in data
    assert data["version"] == 1
    [scenario] = data["scenarios"]
    assert scenario["id"] == "chat-3f2a9c1d5e7b"
    assert scenario["when"] == {"model": "gpt-4o", "prompt": TEXT_PROMPT}
    reply = scenario["reply"]
    pieces = capture_deltas(OPENAI / "chat-stream-text.sse")
    # OpenAI cut "I'm" as one piece where mockllm's tokenizer would not: the recorded boundaries are kept.
    assert pieces != tokenize("".join(pieces))
    assert reply["chunks"] == pieces
    assert "text" not in reply
    assert reply["model"] == "gpt-4o-2024-08-06"  # the snapshot that answered
    assert reply["usage"] == {"prompt_tokens": 14, "completion_tokens": 30}
    # The role chunk (offset 0.25) carries no content; the first piece came at 0.26, then one every 10 ms.
    assert reply["timing"] == {"ttft": 0.26, "chunk": 0.01}
    assert "finish_reason" not in reply


def test_a_chat_recording_serves_the_same_text_to_chat_messages_and_responses_clients(
    tmp_path: Path, text_recording: Path, start_server: StartServer
) -> None:
    out, _ = distilled(tmp_path, text_recording)
    server = start_server(out)
    pieces = capture_deltas(OPENAI / "chat-stream-text.sse")
    client = openai_client(server)
    chunks = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": TEXT_PROMPT}], stream=True
    )
    got = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert got == pieces  # the same text, cut where OpenAI cut it

    claude = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    try:
        with claude.messages.stream(
            model="gpt-4o", max_tokens=1024, messages=[{"role": "user", "content": TEXT_PROMPT}]
        ) as events:
            deltas = list(events.text_stream)
            message = events.get_final_message()
    finally:
        claude.close()
    assert deltas == pieces
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 30

    response = client.responses.create(model="gpt-4o", input=TEXT_PROMPT)
    assert response.output_text == "".join(pieces)


def test_a_tool_loop_keeps_its_order_and_serves_the_same_calls(tmp_path: Path, start_server: StartServer) -> None:
    prompt = "What's the weather like in Edinburgh?"
    first = recorded(
        "chat-tool",
        "chat",
        chat_request(prompt, tools=[WEATHER_TOOL]),
        **stream(capture_events(OPENAI / "chat-stream-tool-call.sse")),
    )
    call = {"id": "call_c91SqDXlYFuETYv8mUHzz6pp", "type": "function"}
    call["function"] = {"name": "GetWeatherArgs", "arguments": '{"city":"Edinburgh"}'}  # type: ignore[assignment]
    answer = json.dumps(
        {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "It is 12 degrees."}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 80, "completion_tokens": 6, "total_tokens": 86},
        }
    )
    after = chat_request(
        prompt,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "12 degrees"},
        tools=[WEATHER_TOOL],
        stream=False,
    )
    second = recorded(
        "chat-after", "chat", after, status=200, headers={"content-type": "application/json"}, body=answer, at=0.8
    )
    path = write_recording(tmp_path / "loop.yaml", first, second)
    _, data = distilled(tmp_path, path)
    assert [s["id"] for s in data["scenarios"]] == ["chat-after", "chat-tool"]  # the more specific one first
    assert data["scenarios"][0]["when"] == {"model": "gpt-4o", "prompt": prompt, "after_tool": "GetWeatherArgs"}
    assert data["scenarios"][0]["reply"]["timing"] == {"ttft": 0.8}  # a body: complete at its offset
    [spec] = data["scenarios"][1]["reply"]["tool_calls"]
    recorded_args = json.loads("".join(spec.get("chunks") or [spec.get("arguments")]))

    server = start_server(tmp_path / "distilled.yaml")
    client = openai_client(server)
    messages: list[Any] = [{"role": "user", "content": prompt}]
    reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    [made] = reply.choices[0].message.tool_calls or []
    assert made.function.name == "GetWeatherArgs"
    assert json.loads(made.function.arguments) == recorded_args
    assert recorded_args["city"] == "Edinburgh"
    messages += [reply.choices[0].message, {"role": "tool", "tool_call_id": made.id, "content": "12 degrees"}]
    final = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == "It is 12 degrees."

    # The same loop through the Anthropic client: the call comes as a tool_use block with the same input.
    claude = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    tools: Any = [{"name": "GetWeatherArgs", "input_schema": {"type": "object"}}]
    try:
        message = claude.messages.create(
            model="gpt-4o", max_tokens=1024, tools=tools, messages=[{"role": "user", "content": prompt}]
        )
        [use] = [block for block in message.content if block.type == "tool_use"]
        assert use.name == "GetWeatherArgs"
        assert use.input == recorded_args
        assert message.stop_reason == "tool_use"
        follow = claude.messages.create(
            model="gpt-4o",
            max_tokens=1024,
            tools=tools,
            messages=[
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": message.content},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12 degrees"}]},
            ],
        )
    finally:
        claude.close()
    assert follow.content[0].type == "text"
    assert follow.content[0].text == "It is 12 degrees."


def test_an_anthropic_stream_serves_an_openai_client(tmp_path: Path, start_server: StartServer) -> None:
    request = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "stream": True,
    }
    events = capture_events(ANTHROPIC / "messages-stream-text-then-tool-use-edited.sse")
    path = write_recording(tmp_path / "messages.yaml", recorded("messages-1", "messages", request, **stream(events)))
    _, data = distilled(tmp_path, path)
    reply = data["scenarios"][0]["reply"]
    assert reply["chunks"] == ["I", "'ll check the current weather in Paris for you."]
    assert reply["tool_calls"] == [{"name": "get_weather", "chunks": ['{"locati', 'on": "P', "ar", 'is"}']}]
    assert reply["usage"] == {"prompt_tokens": 377, "completion_tokens": 65}
    server = start_server(tmp_path / "distilled.yaml")
    answer = openai_client(server).chat.completions.create(
        model="claude-sonnet-4-20250514",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[{"type": "function", "function": {"name": "get_weather"}}],
    )
    message = answer.choices[0].message
    assert message.content == "I'll check the current weather in Paris for you."
    [call] = message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris"}
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 377


def test_timing_comes_from_the_offsets(tmp_path: Path) -> None:
    events = capture_events(OPENAI / "chat-stream-refusal.sse")
    content = [e for e in events if '"refusal":"' in e["data"] and '"refusal":""' not in e["data"]]
    # Irregular gaps: 40, 10, 20, 20 ms ...; the median is kept, the first content event gives ttft.
    for event, at in zip(content, [0.5123, 0.5523, 0.5623, 0.5823, 0.6023], strict=False):
        event["at"] = at
    for event in content[5:]:
        event["at"] = 0.6023 + 0.02 * (content.index(event) - 4)
    path = write_recording(tmp_path / "refusal.yaml", recorded("r", "chat", chat_request("hi"), **stream(events)))
    [scenario] = yaml.safe_load(distill([path]).text)["scenarios"]
    assert scenario["reply"]["timing"] == {"ttft": 0.512, "chunk": 0.02}
    assert scenario["reply"]["refusal"] == "I'm sorry, I can't assist with that request."
    assert "text" not in scenario["reply"]
    assert "chunks" not in scenario["reply"]
    # Without offsets (an edited recording) there is no timing at all.
    for event in events:
        del event["at"]
    write_recording(path, recorded("r", "chat", chat_request("hi"), **stream(events)))
    assert "timing" not in yaml.safe_load(distill([path]).text)["scenarios"][0]["reply"]


def test_an_error_recording_and_a_sequence(tmp_path: Path, start_server: StartServer) -> None:
    limited = {
        "status": 429,
        "headers": {"content-type": "application/json", "retry-after": "1", "x-should-retry": "true"},
        "body": json.dumps(
            {
                "error": {
                    "message": "Rate limit reached for gpt-4o on tokens per min (TPM).",
                    "type": "tokens",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            }
        ),
    }
    ok = stream(capture_events(OPENAI / "chat-stream-text.sse"))
    scenario: dict[str, Any] = {"id": "seq", "when": {"api": "chat", "request": chat_request(TEXT_PROMPT)}}
    scenario |= {"replies": [{"raw": limited}, {"raw": ok}], "then": "repeat-last"}
    path = write_recording(tmp_path / "seq.yaml", scenario)
    _, data = distilled(tmp_path, path)
    [distilled_scenario] = data["scenarios"]
    first, second = distilled_scenario["replies"]
    assert distilled_scenario["then"] == "repeat-last"
    assert first == {
        "error": {
            "status": 429,
            "type": "tokens",
            "message": "Rate limit reached for gpt-4o on tokens per min (TPM).",
            "code": "rate_limit_exceeded",
            "retry_after": 1.0,
            "should_retry": True,
        }
    }
    assert second["chunks"] == capture_deltas(OPENAI / "chat-stream-text.sse")
    server = start_server(tmp_path / "distilled.yaml")
    client = openai_client(server)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TEXT_PROMPT}])
    assert caught.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "true"
    again = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TEXT_PROMPT}])
    assert again.choices[0].message.content == "".join(capture_deltas(OPENAI / "chat-stream-text.sse"))


def test_n_choices_become_choices(tmp_path: Path) -> None:
    events = capture_events(OPENAI / "chat-stream-json-schema-n3.sse")
    path = write_recording(tmp_path / "n3.yaml", recorded("n3", "chat", chat_request("weather", n=3), **stream(events)))
    reply = yaml.safe_load(distill([path]).text)["scenarios"][0]["reply"]
    assert len(reply["choices"]) == 3
    for index, choice in enumerate(reply["choices"]):
        texts = []
        for event in events:
            if event["data"] != "[DONE]":
                texts += [
                    c["delta"].get("content") or "" for c in json.loads(event["data"])["choices"] if c["index"] == index
                ]
        assert "".join(choice.get("chunks") or [choice.get("text", "")]) == "".join(texts)


def test_bodies_of_responses_and_messages(tmp_path: Path) -> None:
    responses_body = {
        "id": "resp_1",
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "model": "gpt-4.1-mini-2025-04-14",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Thinking."}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
            },
        ],
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 7},
            "total_tokens": 21,
        },
    }
    messages_body = {
        "type": "message",
        "model": "claude-sonnet-4-20250514",
        "content": [
            {"type": "thinking", "thinking": "Let me look.", "signature": "x"},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 5,
            "cache_creation_input_tokens": 0,
            "output_tokens": 20,
        },
    }
    headers = {"content-type": "application/json"}
    path = write_recording(
        tmp_path / "bodies.yaml",
        recorded(
            "resp",
            "responses",
            {"model": "gpt-4.1-mini", "input": "Say hello"},
            status=200,
            headers=headers,
            body=json.dumps(responses_body),
        ),
        recorded(
            "msg",
            "messages",
            {
                "model": "claude-sonnet-4-20250514",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "Find Paris"}],
            },
            status=200,
            headers=headers,
            body=json.dumps(messages_body),
        ),
    )
    resp, msg = yaml.safe_load(distill([path]).text)["scenarios"]
    assert resp["when"] == {"model": "gpt-4.1-mini", "prompt": "Say hello"}
    assert resp["reply"] == {
        "reasoning": "Thinking.",
        "text": "Hello",
        "finish_reason": "length",
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "cached_tokens": 4, "reasoning_tokens": 7},
        "model": "gpt-4.1-mini-2025-04-14",
    }
    assert msg["when"] == {"model": "claude-sonnet-4-20250514", "prompt": "Find Paris"}
    assert msg["reply"] == {
        "reasoning": "Let me look.",
        "tool_calls": [{"name": "lookup", "arguments": {"q": "Paris"}}],
        "usage": {"prompt_tokens": 15, "completion_tokens": 20, "cached_tokens": 5},
    }


def test_a_file_that_is_not_a_recording_is_refused_with_its_line(
    tmp_path: Path, text_recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hand = tmp_path / "hand.yaml"
    hand.write_text("version: 1\nscenarios:\n  - id: greet\n    when: {prompt: hi}\n    reply: {text: Hello}\n")
    out = tmp_path / "out.yaml"
    assert main(["distill", str(text_recording), str(hand), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{hand}:4: scenarios[0].when: not a recorded scenario" in err
    assert "--record missing" in err
    assert "nothing written" in err
    assert not out.exists()
    other = tmp_path / "notes.yaml"
    other.write_text("just: a mapping\n")
    assert main(["distill", str(other)]) == 1
    assert f"error: {other}:1: not a recording" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    write_recording(
        broken, {"id": "x", "when": {"api": "chat", "request": chat_request("hi")}, "reply": {"raw": {"status": 200}}}
    )
    assert main(["distill", str(broken)]) == 1
    assert "neither `events` (a stream) nor `body`" in capsys.readouterr().err


def test_distill_prints_to_stdout_and_reads_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    events = capture_events(OPENAI / "chat-stream-max-tokens-length.sse")
    write_recording(folder / "a.yaml", recorded("a", "chat", chat_request("weather", max_tokens=1), **stream(events)))
    write_recording(folder / "b.yaml", recorded("a", "chat", chat_request("weather"), **stream(events)))
    assert main(["distill", str(folder)]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    first, second = data["scenarios"]
    assert (first["id"], second["id"]) == ("a", "a-2")  # ids stay unique
    assert first["reply"]["finish_reason"] == "length"


def test_recordings_made_by_the_recorder_distill_and_cross_over(tmp_path: Path, start_server: StartServer) -> None:
    """The real recorder (through the proxy, against a fake upstream) writes files that distill reads."""
    from fake_upstream import FakeUpstream

    from mockllm import MockServer

    out = tmp_path / "recordings"
    with FakeUpstream() as upstream:
        upstream.fail_next(429, {"retry-after": "7"})
        with MockServer(upstream=upstream.url, record="missing", out=str(out)) as proxy:
            client = openai.OpenAI(base_url=proxy.openai_base_url, api_key="sk-test", max_retries=0)
            claude = anthropic.Anthropic(base_url=proxy.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
            try:
                with pytest.raises(openai.RateLimitError):
                    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Too much"}])
                chat = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "Say hello"}], stream=True
                )
                assert "".join(c.choices[0].delta.content or "" for c in chat if c.choices) == "Echo: Say hello"
                with claude.messages.stream(
                    model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "What's up"}]
                ) as events:
                    assert events.get_final_text() == "Echo: What's up"
                with client.responses.stream(model="gpt-4.1-mini", input="Name a color") as responses:
                    assert responses.get_final_response().output_text == "Echo: Name a color"
            finally:
                client.close()
                claude.close()
    assert len(list(out.glob("*.yaml"))) == 4
    _, data = distilled(tmp_path, out)
    by_prompt = {s["when"]["prompt"]: s for s in data["scenarios"]}
    assert by_prompt["Too much"]["reply"]["error"]["retry_after"] == 7
    assert by_prompt["Say hello"]["reply"]["timing"]["ttft"] > 0  # the recorded offsets became a pace
    server = start_server(tmp_path / "distilled.yaml")
    client = openai_client(server)
    # Recorded on Messages, asked on Chat; recorded on Chat, asked on Responses and on Messages.
    chat_answer = client.chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "What's up"}]
    )
    assert chat_answer.choices[0].message.content == "Echo: What's up"
    assert client.responses.create(model="gpt-4o", input="Say hello").output_text == "Echo: Say hello"
    claude = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    try:
        message = claude.messages.create(
            model="gpt-4.1-mini", max_tokens=100, messages=[{"role": "user", "content": "Name a color"}]
        )
        assert message.content[0].type == "text"
        assert message.content[0].text == "Echo: Name a color"
        with pytest.raises(anthropic.RateLimitError):
            claude.messages.create(model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "Too much"}])
    finally:
        claude.close()


def test_a_non_streamed_body_becomes_text_that_streams_token_by_token(tmp_path: Path) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there, friend!"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }
    raw = {"status": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body, indent=2)}
    path = write_recording(
        tmp_path / "body.yaml", recorded("chat-body", "chat", chat_request("hi", stream=False), **raw)
    )
    _, data = distilled(tmp_path, path)
    reply = data["scenarios"][0]["reply"]
    # The whole text came at once: nothing says where a stream would cut it, so the tokenizer does.
    assert reply["text"] == "Hello there, friend!"
    assert "chunks" not in reply
