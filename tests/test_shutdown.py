"""SIGTERM (and Ctrl-C): stop accepting, let streams in flight finish for up to --grace, then exit 0."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import openai
import pytest
from serve_process import ServeProcess, refuses_connections

SCENARIOS = """
version: 1
scenarios:
  - id: slow                       # 20 chunks, 100 ms apart: two seconds in flight
    when: {prompt: slow}
    reply:
      chunks: [c00, c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19]
      timing: {ttft: 0ms, chunk: 100ms}
  - id: stuck                      # never ends on its own
    when: {prompt: stuck}
    reply:
      text: This stream stalls after the first chunk.
      fault: {kind: stall, after: 1}
"""

EXPECTED = "".join(f"c{i:02d}" for i in range(20))


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "slow.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    return path


def _client(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)


def test_sigterm_lets_the_stream_in_flight_finish_then_exits_0(scenario_file: Path) -> None:
    with ServeProcess(str(scenario_file), "--log-format", "json") as server:
        stream = _client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "slow"}], stream=True
        )
        text, finish, refused = "", None, False
        for chunk in stream:
            if not chunk.choices:
                continue
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
            if text and not refused:
                server.signal(signal.SIGTERM)
                # New connections are refused at once, while this stream goes on.
                refused = refuses_connections(server.url, within=5)
        assert refused
        assert text == EXPECTED
        assert finish == "stop"
        assert server.wait() == 0
        records = server.records()
    assert any("Waiting for connections to close" in r["message"] for r in records)
    [request] = [r for r in records if r.get("event") == "request"]
    assert (request["scenario"], request["status"], request["chunks"]) == ("slow", 200, 20)
    assert records[-1]["event"] == "stop"


def _stream_broken() -> tuple[type[BaseException], ...]:
    """What a cut stream raises: the SDK's error, or (openai 3.3) the transport's own, httpx or httpx2."""
    kinds: list[type[BaseException]] = [openai.APIError, httpx.HTTPError]
    try:
        import httpx2  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return tuple(kinds)
    return (*kinds, httpx2.HTTPError)


_STREAM_BROKEN = _stream_broken()


def test_a_stream_longer_than_the_grace_period_is_cut_and_the_exit_is_still_0(scenario_file: Path) -> None:
    with ServeProcess(str(scenario_file), "--grace", "500ms") as server:
        stream = _client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "stuck"}], stream=True
        )
        received = ""
        started = 0.0
        with pytest.raises(_STREAM_BROKEN):  # noqa: PT012 - the stream breaks mid-iteration
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received += chunk.choices[0].delta.content
                    if not started:
                        server.signal(signal.SIGTERM)
                        started = time.monotonic()
        elapsed = time.monotonic() - started
        assert received == "This"
        assert server.wait() == 0
        assert 0.4 < elapsed < 15
    assert any("timeout graceful shutdown exceeded" in line for line in server.lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_while_idle_exits_0_at_once(scenario_file: Path, signum: int) -> None:
    with ServeProcess(str(scenario_file), "--log-format", "json") as server:
        assert httpx.get(server.url + "/_mockllm/health").status_code == 200
        started = time.monotonic()
        server.signal(signum)
        assert server.wait() == 0
        assert time.monotonic() - started < 10
        records = server.records()
    assert records[-1]["event"] == "stop"
    assert not any(r["level"] == "error" for r in records)
