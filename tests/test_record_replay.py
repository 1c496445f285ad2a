"""Record then replay, end to end: the real SDKs through the proxy to a fake upstream on 127.0.0.1, then offline.

`FakeUpstream` (tests/fake_upstream.py) behaves like the real APIs: paced chunks, padded JSON, obfuscation,
rate-limit headers, request ids, cookies, gzip. Nothing here touches the internet.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml
from conftest import DATA
from fake_upstream import FakeUpstream
from serve_process import ServeProcess

from mockllm import MockServer
from mockllm.loading import load_scenarios
from mockllm.logs import configure_logging, log_request, redact_logs, reset_logging

# Fake keys in the real formats, put together at run time so that no secret scanner mistakes the source for a leak.
SECRET = "-".join(("sk", "proj", "THISisAfakeKEYthatMUSTneverBEwritten0123"))
ANTHROPIC_SECRET = "-".join(("sk", "ant", "api03", "THISisAfakeKEYthatMUSTneverBEwritten"))
USER: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def recorder(upstream: FakeUpstream, out: Path, mode: str = "missing", **options: Any) -> MockServer:
    options.setdefault("time_scale", 1)
    return MockServer(upstream=upstream.url, record=mode, out=str(out), **options).start()


def oai(server: MockServer, key: str = SECRET) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=key, max_retries=0)


def text_of(stream: Any) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def files(out: Path) -> list[Path]:
    return sorted(out.glob("*.yaml"))


def raw_stream(url: str, body: dict[str, Any], path: str = "/v1/chat/completions", **headers: str) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.post(url + path, json=body, headers={"authorization": f"Bearer {SECRET}", **headers})


def journal(server: MockServer) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = httpx.get(server.url + "/_mockllm/requests").json()
    return entries


# -- record, then replay byte for byte --------------------------------------------------------------------------


def test_openai_stream_recorded_then_replayed_byte_for_byte(upstream: FakeUpstream, tmp_path: Path) -> None:
    body = {"model": "gpt-4o-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    server = recorder(upstream, tmp_path)
    try:
        live = raw_stream(server.url, body)
        assert live.status_code == 200
        with oai(server) as client:  # the same request again: replayed from the new recording, not forwarded
            again = text_of(client.chat.completions.create(**body))
        assert len(upstream.requests) == 1
        # The client's key went upstream (used), and nowhere else.
        assert upstream.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    finally:
        server.stop()
    (recording,) = files(tmp_path)
    assert recording.name.startswith("chat-")
    assert again.startswith("Echo: Say hello")
    document = yaml.safe_load(recording.read_text())
    assert document["recorded"]["upstream"] == upstream.url
    assert document["recorded"]["mockllm"]
    scenario = document["scenarios"][0]
    assert scenario["when"] == {"api": "chat", "request": body}
    raw = scenario["reply"]["raw"]
    assert raw["status"] == 200
    assert raw["headers"]["content-type"].startswith("text/event-stream")
    assert raw["headers"]["x-request-id"] == live.headers["x-request-id"]
    assert "set-cookie" not in raw["headers"]  # cookies and edge headers are not kept
    assert [e["at"] for e in raw["events"]] == sorted(e["at"] for e in raw["events"])
    # Offline, from the folder alone: the same bytes, the recorded request id.
    with MockServer([tmp_path], time_scale=0) as replay:
        replayed = raw_stream(replay.url, body)
    assert replayed.content == live.content
    assert replayed.headers["x-request-id"] == live.headers["x-request-id"]
    assert b'"obfuscation"' in replayed.content


def test_the_first_chunk_reaches_the_client_while_the_upstream_holds_the_rest(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    server = recorder(upstream, tmp_path)
    release = upstream.hold()
    try:
        with oai(server) as client:
            stream = client.chat.completions.create(model="m", messages=USER, stream=True)
            first = next(iter(stream))  # arrives while the upstream holds every other chunk back
            assert upstream.holding.wait(10)  # the upstream still holds the rest back
            assert first.choices[0].delta.role == "assistant"
            assert files(tmp_path) == []  # nothing is written before the exchange is whole
            release.set()
            rest = text_of(stream)
        assert rest.startswith("Echo: Say hello")
        for _ in range(200):
            if files(tmp_path):
                break
            time.sleep(0.01)
        assert len(files(tmp_path)) == 1
    finally:
        release.set()
        server.stop()


def test_anthropic_stream_keeps_event_lines_and_padding(upstream: FakeUpstream, tmp_path: Path) -> None:
    request = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": USER, "stream": True}
    server = recorder(upstream, tmp_path)
    try:
        with httpx.Client(timeout=30) as client:
            live = client.post(
                server.url + "/v1/messages",
                json=request,
                headers={"x-api-key": ANTHROPIC_SECRET, "anthropic-version": "2023-06-01"},
            )
    finally:
        server.stop()
    assert live.status_code == 200
    assert b"event: message_start\n" in live.content
    with MockServer([tmp_path], time_scale=0) as replay:
        sdk = anthropic.Anthropic(base_url=replay.anthropic_base_url, api_key="sk-ant-other", max_retries=0)
        with sdk, sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=USER) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        with httpx.Client(timeout=30) as client:
            replayed = client.post(
                replay.url + "/v1/messages", json=request, headers={"anthropic-version": "2023-06-01"}
            )
    assert text.startswith("Echo: Say hello")
    assert final.stop_reason == "end_turn"
    assert replayed.content == live.content  # event lines and whitespace padding included
    assert replayed.headers["request-id"] == live.headers["request-id"]


@pytest.mark.parametrize("capture", sorted((DATA / "captures" / "openai").glob("*.sse")), ids=lambda p: p.stem)
def test_every_openai_capture_replays_byte_for_byte_and_parses(
    upstream: FakeUpstream, tmp_path: Path, capture: Path
) -> None:
    upstream.serve_capture(capture)
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    with recorder(upstream, tmp_path, time_scale=0) as server:
        live = raw_stream(server.url, body)
    assert live.content == capture.read_bytes()
    with MockServer([tmp_path], time_scale=0) as replay:
        assert raw_stream(replay.url, body).content == capture.read_bytes()
        with oai(replay) as client:
            chunks = list(client.chat.completions.create(**body))
    assert chunks
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)


@pytest.mark.parametrize("capture", sorted((DATA / "captures" / "anthropic").glob("*.sse")), ids=lambda p: p.stem)
def test_every_anthropic_capture_replays_byte_for_byte_and_parses(
    upstream: FakeUpstream, tmp_path: Path, capture: Path
) -> None:
    upstream.serve_capture(capture)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": USER, "stream": True}
    headers = {"anthropic-version": "2023-06-01"}
    with recorder(upstream, tmp_path, time_scale=0) as server:
        live = raw_stream(server.url, body, "/v1/messages", **headers)
    assert live.content == capture.read_bytes()
    with MockServer([tmp_path], time_scale=0) as replay:
        assert raw_stream(replay.url, body, "/v1/messages", **headers).content == capture.read_bytes()
        sdk = anthropic.Anthropic(base_url=replay.anthropic_base_url, api_key="sk-ant-x", max_retries=0)
        with sdk, sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=256, messages=USER) as stream:
            message = stream.get_final_message()
    assert message.content


def test_non_streamed_gzip_body_is_stored_decompressed(upstream: FakeUpstream, tmp_path: Path) -> None:
    with recorder(upstream, tmp_path) as server, oai(server) as client:
        live = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert live.parse().choices[0].message.content == "Echo: Say hello"
    assert upstream.requests[0].headers.get("accept-encoding", "").count("gzip")  # the upstream could compress
    raw = yaml.safe_load(files(tmp_path)[0].read_text())["scenarios"][0]["reply"]["raw"]
    assert "content-encoding" not in raw["headers"]
    assert json.loads(raw["body"])["choices"][0]["message"]["content"] == "Echo: Say hello"
    assert raw["body"].startswith("{\n  ")  # the upstream's own formatting, not re-serialised
    with MockServer([tmp_path], time_scale=0) as replay, oai(replay) as client:
        assert client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content == (
            "Echo: Say hello"
        )


# -- errors, upstream failures ----------------------------------------------------------------------------------


def test_upstream_errors_are_recorded_and_replayed(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.fail_next(429, {"retry-after": "7"})
    with recorder(upstream, tmp_path) as server, oai(server) as client, pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    raw = yaml.safe_load(files(tmp_path)[0].read_text())["scenarios"][0]["reply"]["raw"]
    assert (raw["status"], raw["headers"]["retry-after"]) == (429, "7")
    replay = MockServer([tmp_path], time_scale=0)
    with replay, oai(replay) as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.response.headers["retry-after"] == "7"


def test_unreachable_upstream_is_a_502_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    server = MockServer(upstream="http://127.0.0.1:9", record="missing", out=str(tmp_path))
    with server, oai(server) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.status_code == 502
    assert "http://127.0.0.1:9/v1/chat/completions" in caught.value.message
    assert "could not be reached" in caught.value.message
    assert files(tmp_path) == []


def test_slow_upstream_is_a_504_in_anthropic_shape(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.delay = 2.0
    server = recorder(upstream, tmp_path, upstream_timeout=0.3)
    try:
        response = httpx.post(
            server.url + "/v1/messages",
            json={"model": "claude", "max_tokens": 5, "messages": USER},
            headers={"anthropic-version": "2023-06-01"},
            timeout=30,
        )
    finally:
        server.stop()
    assert response.status_code == 504
    assert response.json()["type"] == "error"
    assert "timed out" in response.json()["error"]["message"]
    assert files(tmp_path) == []


def test_upstream_reset_mid_stream_resets_the_client_and_writes_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reset_after(2)
    with recorder(upstream, tmp_path) as server, oai(server) as client:
        with pytest.raises(Exception) as caught:
            text_of(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
        entry = journal(server)[-1]
    assert not isinstance(caught.value, AssertionError)
    assert (entry["status"], entry["outcome"]) == (200, "reset")
    assert files(tmp_path) == []


# -- secrets --------------------------------------------------------------------------------------------------


def test_a_key_the_upstream_echoes_back_reaches_no_file_and_no_log(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.echo_key = True
    out = tmp_path / "out"
    log = io.StringIO()
    configure_logging("plain", "debug", log)  # as `mockllm serve --log-level debug --redact ...` logs
    redact_logs(["acct-[0-9]+"])
    # This process also runs the test's own openai client, whose debug lines a server process would not have.
    quiet = [logging.getLogger(name) for name in ("openai", "httpx2", "httpcore2")]
    for logger in quiet:
        logger.disabled = True
    try:
        with recorder(upstream, out, redact=["acct-[0-9]+"]) as server, oai(server) as client:
            server.state.listeners.append(log_request)
            prompt: Any = [{"role": "user", "content": "echo my key, account acct-12345"}]
            live = client.chat.completions.create(model="gpt-4o", messages=prompt, stream=True)
            assert SECRET in text_of(live)  # the live stream is the user's own: it passes through unredacted
            client.chat.completions.create(model="gpt-4o", messages=prompt)
        # Replay needs no flags: the file's `redact` applies to incoming requests before they are compared.
        with MockServer([out], time_scale=0) as replay, oai(replay) as other:
            again = other.chat.completions.create(model="gpt-4o", messages=prompt)
    finally:
        reset_logging()
        redact_logs([])
        for logger in quiet:
            logger.disabled = False
    assert "[REDACTED]" in (again.choices[0].message.content or "")
    assert "POST /v1/chat/completions chat-" in log.getvalue()  # the log did get lines
    written = "".join(path.read_text() for path in tmp_path.rglob("*") if path.is_file())
    assert written
    for secret in (SECRET, "acct-12345"):
        assert secret not in written
        assert secret not in log.getvalue()
    assert yaml.safe_load(files(out)[0].read_text())["recorded"]["redact"] == ["acct-[0-9]+"]


# -- replay: drift, edits, faults, timing ---------------------------------------------------------------------


def record_one(upstream: FakeUpstream, out: Path, **body: Any) -> Path:
    with recorder(upstream, out, time_scale=0) as server:
        response = raw_stream(server.url, {"model": "gpt-4o", "messages": USER, **body})
        assert response.status_code == 200
    (path,) = files(out)
    return path


def test_a_drifted_request_names_the_fields_that_changed(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = record_one(upstream, tmp_path, temperature=0.2)
    with MockServer([tmp_path], time_scale=0) as replay, oai(replay) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            client.with_options(max_retries=2).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Say hello!"}], temperature=0.9
            )
        entries = journal(replay)
    message = caught.value.message
    assert f"`{path.stem}` ({path}:" in message
    assert 'messages[0].content: recorded "Say hello", got "Say hello!"' in message
    assert "temperature: recorded 0.2, got 0.9" in message
    assert len(entries) == 1  # x-should-retry: false, never retried
    assert entries[0]["miss"] == message.split(" - ", 1)[-1] or "temperature" in entries[0]["miss"]


def test_an_edited_recording_replays_the_edit(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = record_one(upstream, tmp_path, stream=True)
    document = yaml.safe_load(path.read_text())
    events = document["scenarios"][0]["reply"]["raw"]["events"]
    for event in events:
        event.pop("at")  # offsets dropped by hand
        event["data"] = event["data"].replace("Echo", "Edited")
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with MockServer([tmp_path], time_scale=1) as replay, oai(replay) as client:
        started = time.monotonic()
        text = text_of(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert text.startswith("Edited: Say hello")
    assert time.monotonic() - started < 2  # no offsets: sent at once


def test_a_fault_on_a_recording_fires_after_the_right_event(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = record_one(upstream, tmp_path, stream=True)
    document = yaml.safe_load(path.read_text())
    document["scenarios"][0]["reply"]["fault"] = {"kind": "error_event", "after": 2, "message": "Broken on purpose"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    got: list[str] = []

    def read(stream: Any) -> None:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)

    replay = MockServer([tmp_path], time_scale=0)
    with replay, oai(replay) as client, pytest.raises(openai.APIError) as caught:
        read(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert len(got) == 2
    assert caught.value.message == "Broken on purpose"


def test_replay_keeps_the_recorded_pace(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.gap = 0.05
    with recorder(upstream, tmp_path) as server:
        raw_stream(server.url, {"model": "gpt-4o", "messages": USER, "stream": True})
    events = yaml.safe_load(files(tmp_path)[0].read_text())["scenarios"][0]["reply"]["raw"]["events"]
    offsets = [event["at"] for event in events]
    assert offsets[-1] - offsets[0] >= 0.05 * (len(offsets) - 2)  # the upstream's gaps were recorded
    with MockServer([tmp_path], time_scale=1) as replay:
        raw_stream(replay.url, {"model": "gpt-4o", "messages": USER, "stream": True})
        (entry,) = journal(replay)
    # Content chunks leave at their recorded offsets: never early, and (generously) not much late.
    content = [e["at"] for e in events if '"content":"' in e["data"] and '"content":""' not in e["data"]]
    assert len(entry["chunk_times"]) == len(content)
    for sent, due in zip(entry["chunk_times"], content, strict=True):
        assert due - 0.002 <= sent <= due + 0.5


# -- modes ----------------------------------------------------------------------------------------------------


def test_all_re_records_and_identical_requests_become_replies(upstream: FakeUpstream, tmp_path: Path) -> None:
    record_one(upstream, tmp_path)
    upstream.fail_next(503)
    with recorder(upstream, tmp_path, mode="all", time_scale=0) as server, oai(server) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content
    assert len(upstream.requests) == 3  # `all` forwarded both, though a recording existed
    (path,) = files(tmp_path)
    scenario = yaml.safe_load(path.read_text())["scenarios"][0]
    assert [reply["raw"]["status"] for reply in scenario["replies"]] == [503, 200]
    assert scenario["then"] == "repeat-last"
    with MockServer([tmp_path], time_scale=0) as replay, oai(replay) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content


def test_ten_concurrent_recordings_into_one_folder_lose_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with recorder(upstream, tmp_path, time_scale=0) as server:

        def ask(index: int) -> None:
            try:
                with oai(server) as client:
                    prompt: Any = [{"role": "user", "content": f"question {index}"}]
                    text_of(client.chat.completions.create(model="gpt-4o", messages=prompt, stream=True))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert len(files(tmp_path)) == 10
    assert len(load_scenarios([tmp_path])) == 10  # every file whole and valid
    assert not list(tmp_path.glob(".*.tmp"))


def test_client_hanging_up_after_the_last_chunk_keeps_the_recording(upstream: FakeUpstream, tmp_path: Path) -> None:
    with recorder(upstream, tmp_path, time_scale=0) as server:
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "POST", server.url + "/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True}
            ) as response,
        ):
            for line in response.iter_lines():
                if "[DONE]" in line:
                    break  # hang up at once
        for _ in range(300):
            if files(tmp_path):
                break
            time.sleep(0.01)
    assert len(files(tmp_path)) == 1


def test_serve_command_records_then_replays(upstream: FakeUpstream, tmp_path: Path) -> None:
    out = tmp_path / "recordings"
    args = ("--upstream", f"chat={upstream.url}", "--record", "missing", "--out", str(out), "--time-scale", "0")
    with ServeProcess(*args) as process:
        process.wait_for(lambda line: "recording (--record missing) into" in line)
        with openai.OpenAI(base_url=process.url + "/v1", api_key=SECRET, max_retries=0) as client:
            assert client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content
        process.signal()
        assert process.wait() == 0
    assert len(files(out)) == 1
    upstream.stop()
    with ServeProcess(str(out), "--time-scale", "0") as process:  # replay: the default --record none
        with openai.OpenAI(base_url=process.url + "/v1", api_key="sk-other", max_retries=0) as client:
            reply = client.chat.completions.create(model="gpt-4o", messages=USER)
        process.signal()
        assert process.wait() == 0
    assert reply.choices[0].message.content == "Echo: Say hello"
    assert not any(SECRET in line for line in process.lines)


def test_the_model_list_is_recorded_and_replayed(upstream: FakeUpstream, tmp_path: Path) -> None:
    with recorder(upstream, tmp_path, time_scale=0) as server, oai(server) as client:
        live = [model.id for model in client.models.list()]
        anthropic_live = httpx.get(server.url + "/v1/models", headers={"anthropic-version": "2023-06-01"}).json()
    assert live
    assert len(files(tmp_path)) == 2  # OpenAI's shape and Anthropic's are two recordings
    upstream.stop()
    with MockServer([tmp_path], time_scale=0) as replay, oai(replay) as client:
        assert [model.id for model in client.models.list()] == live
        again = httpx.get(replay.url + "/v1/models", headers={"anthropic-version": "2023-06-01"}).json()
    assert again == anthropic_live
