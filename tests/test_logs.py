"""Logs of `mockllm serve`: one line per request, plain or JSON, uvicorn's lines in the same format."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from conftest import EXAMPLES, StartServer
from serve_process import ServeProcess

from mockllm.logs import JsonFormatter, configure_logging, log_request, reset_logging

FAULTY = """
version: 1
scenarios:
  - id: cut
    when: {prompt: cut}
    reply: {text: Cut short here, fault: {kind: end, after: 1}}
"""

PLAIN_REQUEST = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO (\S+ \S+ \S+ \d{3} \d+\.\d{3}s.*)$")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    levels = (root.level, logging.getLogger("mockllm").level)
    yield
    reset_logging()
    root.setLevel(levels[0])
    logging.getLogger("mockllm").setLevel(levels[1])


def _record(message: str, *args: object, **attributes: object) -> logging.LogRecord:
    record = logging.LogRecord("mockllm", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(attributes)
    return record


def test_json_formatter_makes_one_object_a_line_with_the_fields_on_top() -> None:
    line = JsonFormatter().format(_record("two\nlines %s", "here", fields={"event": "request", "status": 200}))
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "two\nlines here"
    assert (payload["level"], payload["logger"], payload["event"], payload["status"]) == (
        "info",
        "mockllm",
        "request",
        200,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payload["time"])


def test_json_formatter_keeps_a_traceback_inside_the_object() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("failed", exc_info=sys.exc_info())
    payload = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: boom" in payload["exc"]


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_formats_uvicorn_lines_too_and_replaces_itself() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    configure_logging("json", "info", stream=second)  # replaces the first handler, does not add one
    logging.getLogger("uvicorn.error").warning("Started server process [1]")  # its level is uvicorn's to set
    logging.getLogger("mockllm").debug("not at info level")
    assert first.getvalue() == ""
    [line] = second.getvalue().splitlines()
    assert json.loads(line)["logger"] == "uvicorn.error"
    reset_logging()
    logging.getLogger("mockllm").warning("after reset")
    assert len(second.getvalue().splitlines()) == 1


@pytest.mark.usefixtures("restore_logging")
def test_log_level_warning_silences_request_lines(start_server: StartServer) -> None:
    stream = io.StringIO()
    configure_logging("plain", "warning", stream=stream)
    server = start_server(EXAMPLES)
    server.state.listeners.append(log_request)
    assert httpx.get(server.url + "/_mockllm/health").status_code == 200
    _chat(server.url, "Say hello")
    assert stream.getvalue() == ""


def _chat(url: str, prompt: str, stream: bool = False) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    try:
        if stream:
            for _ in client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": prompt}], stream=True
            ):
                pass
        else:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
    except openai.NotFoundError:
        pass


def test_one_line_per_request_names_scenario_or_miss_status_duration_and_fault(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(EXAMPLES, scenarios_yaml=FAULTY)
    server.state.listeners.append(log_request)
    with caplog.at_level(logging.INFO, logger="mockllm"):
        _chat(server.url, "Say hello")
        _chat(server.url, "Nobody wrote a scenario for this")
        _chat(server.url, "cut", stream=True)
        # A response's line is written once the server has finished it, which may be just after the client read it.
        deadline = time.monotonic() + 10
        while len(caplog.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(r"POST /v1/chat/completions greet 200 \d+\.\d{3}s", lines[0])
    assert re.fullmatch(r"POST /v1/chat/completions miss 404 \d+\.\d{3}s", lines[1])
    assert re.fullmatch(r"POST /v1/chat/completions cut 200 \d+\.\d{3}s fault=end outcome=truncated", lines[2])
    assert len(lines) == 3


def test_plain_logs_of_serve_have_no_uvicorn_access_lines() -> None:
    with ServeProcess(str(EXAMPLES), "--time-scale", "0") as server:
        _chat(server.url, "Say hello")
        _chat(server.url, "Nobody wrote a scenario for this")
        server.wait_for(lambda line: " miss 404 " in line)
        server.signal()
        assert server.wait() == 0
    requests = [m.group(1) for m in map(PLAIN_REQUEST.match, server.lines) if m and m.group(1).startswith("POST")]
    assert [r.split()[2:4] for r in requests] == [["greet", "200"], ["miss", "404"]]
    assert not any("HTTP/1.1" in line for line in server.lines)
    assert "mockllm stopped" in server.lines[-1]


def test_json_logs_of_serve_are_one_object_a_line_from_start_to_stop() -> None:
    with ServeProcess(str(EXAMPLES), "--time-scale", "0", "--log-format", "json") as server:
        _chat(server.url, "Say hello", stream=True)
        _chat(server.url, "Nobody wrote a scenario for this")
        server.wait_for(lambda line: '"status": 404' in line)
        server.signal()
        assert server.wait() == 0
        records = server.records()
    assert records[0]["event"] == "start"
    assert records[0]["scenarios"] == 13
    assert records[0]["url"] == server.url
    assert any(r["logger"] == "uvicorn.error" and "Started server process" in r["message"] for r in records)
    requests = [r for r in records if r.get("event") == "request"]
    assert [(r["scenario"], r["miss"], r["status"], r["fault"]) for r in requests] == [
        ("greet", False, 200, None),
        (None, True, 404, None),
    ]
    assert requests[0]["method"] == "POST"
    assert requests[0]["path"] == "/v1/chat/completions"
    assert requests[0]["chunks"] == 10
    assert isinstance(requests[0]["duration"], float)
    assert any(r["message"] == "Shutting down" for r in records)
    assert records[-1]["event"] == "stop"


def test_json_logs_report_a_bad_scenario_file_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nscenarios:\n  - id: x\n    reply: {txt: typo}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mockllm", "serve", str(bad), "--port", "0", "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stderr.splitlines()]
    [problem] = [r for r in records if r.get("event") == "load_error"]
    assert (problem["file"], problem["line"], problem["level"]) == (str(bad), 4, "error")
    assert "unknown key `txt`; did you mean `text`?" in problem["message"]
    assert records[-1]["event"] == "exit"


def test_at_debug_level_a_miss_is_followed_by_its_reason(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(EXAMPLES)
    server.state.listeners.append(log_request)
    with caplog.at_level(logging.DEBUG, logger="mockllm"):
        _chat(server.url, "Nobody wrote a scenario for this")
    lines = [r.getMessage() for r in caplog.records if r.name == "mockllm"]
    assert " miss 404 " in lines[0]
    assert lines[1].startswith("request 1 matched no scenario: No scenario matched this chat request")
    assert "`greet`" in lines[1]


def test_serve_without_paths_says_it_serves_nothing_and_how_to_load_scenarios() -> None:
    with ServeProcess("--time-scale", "0") as server:
        line = server.wait_for(lambda line: "no scenario files given" in line)
        assert httpx.get(server.url + "/_mockllm/health", timeout=10).json()["scenarios"] == 0  # up and serving
        server.signal()
        assert server.wait() == 0
    assert "every request is a miss (404)" in line
    assert "mockllm serve PATH" in line
    assert "/_mockllm/scenarios" in line
