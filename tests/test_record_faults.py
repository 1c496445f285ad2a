"""Recording under faults: a server killed (SIGKILL) while it records never leaves a truncated or corrupt scenario
file; concurrent writers to one folder lose nothing; an `--out` that cannot be written is a clear error at start-up,
and a write that fails later still lets the live stream reach the client, which is told in an SSE comment.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fake_upstream import FakeUpstream
from serve_process import ServeProcess

from mockllm import MockServer
from mockllm.loading import load_scenarios, read_file, scenario_files

KILLS = 50
LANES = 3  # servers killed side by side, recording into the same folder (so writers of two processes meet too)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(gap=0.001) as fake:
        yield fake


def stream_chat(url: str, prompt: str, outcomes: list[str]) -> None:
    """One streamed chat request read to the end; notes `whole` or `broken` (the server was killed)."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": True}
    try:
        with httpx.Client(timeout=10) as client, client.stream("POST", url + "/v1/chat/completions", json=body) as r:
            text = "".join(r.iter_text())
        outcomes.append("whole" if "[DONE]" in text else "broken")
    except httpx.HTTPError:
        outcomes.append("broken")


def check_folder(out: Path) -> int:
    """Every scenario file in `out` loads; no temporary file is among what the loader reads. Returns the count."""
    files = [path for path, problem in scenario_files([out]) if problem is None]
    for path in files:
        assert not path.name.endswith(".tmp"), path
        scenarios, problems = read_file(path)
        assert problems == [], (path, path.read_text())
        assert len(scenarios) == 1, path
    if files:
        load_scenarios([out])
    return len(files)


def test_sigkill_while_recording_never_leaves_a_broken_file(upstream: FakeUpstream, tmp_path: Path) -> None:
    out = tmp_path / "recordings"
    rng = random.Random(16)
    outcomes: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    kills: list[int] = []

    def lane(number: int) -> None:
        try:
            for kill in range(number, KILLS, LANES):
                args = ("--upstream", upstream.url, "--record", "missing", "--out", str(out), "--time-scale", "0")
                with ServeProcess(*args) as server:
                    with lock:
                        wait = rng.uniform(0.0, 0.3)
                    clients = [
                        threading.Thread(
                            target=stream_chat, args=(server.url, f"lane {number} kill {kill} #{i}", outcomes)
                        )
                        for i in range(4)
                    ]
                    for client in clients:
                        client.start()
                    if kill % 5 == 0:  # every fifth kill after the answers, so that some are whole however slow
                        for client in clients:  # the machine is
                            client.join(15)
                    time.sleep(wait)  # a random moment: before, during or after the recordings are written
                    server.signal(signal.SIGKILL)
                    assert server.wait(10) == -signal.SIGKILL
                    kills.append(kill)
                    for client in clients:
                        client.join(15)
                with lock:
                    check_folder(out)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    lanes = [threading.Thread(target=lane, args=(n,)) for n in range(LANES)]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join(120)
    assert failures == []
    assert sorted(kills) == list(range(KILLS))
    recorded = check_folder(out)
    # The kills fell at different moments: some answers were whole (and recorded), some cut off.
    assert "broken" in outcomes
    assert "whole" in outcomes
    assert 0 < recorded <= outcomes.count("whole") + outcomes.count("broken")


def test_twenty_writers_of_two_servers_into_one_folder_lose_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    options: dict[str, Any] = {"upstream": upstream.url, "record": "missing", "out": str(tmp_path), "time_scale": 0}
    with MockServer(**options) as first, MockServer(**options) as second:
        outcomes: list[str] = []
        clients = [
            threading.Thread(target=stream_chat, args=((first, second)[i % 2].url, f"writer {i}", outcomes))
            for i in range(20)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(30)
    assert outcomes == ["whole"] * 20
    assert check_folder(tmp_path) == 20
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_out_that_cannot_be_written_stops_serve_at_start(upstream: FakeUpstream, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    command = [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--upstream", upstream.url]
    result = subprocess.run(
        [*command, "--record", "missing", "--out", str(blocker / "recordings")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert f"--out '{blocker / 'recordings'}' cannot hold recordings" in result.stderr
    assert "give a writable folder" in result.stderr
    with pytest.raises(ValueError, match="cannot hold recordings"):
        MockServer(upstream=upstream.url, record="missing", out=str(blocker))


def test_stale_temporary_files_are_removed_at_start_and_never_loaded(upstream: FakeUpstream, tmp_path: Path) -> None:
    stale = tmp_path / ".chat-0123456789ab.yaml.x1y2z3.tmp"
    stale.write_text("version: 1\nscenarios: [{id: half")  # what a kill mid-write leaves
    fresh = tmp_path / ".chat-ba9876543210.yaml.a1b2c3.tmp"
    fresh.write_text("version: 1\nscenarios: [{id: half")  # another server's write in progress
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert [path for path, _ in scenario_files([tmp_path])] == [tmp_path]  # the loader sees no scenario file
    with MockServer(upstream=upstream.url, record="missing", out=str(tmp_path), time_scale=0):
        assert not stale.exists()
        assert fresh.exists()


def break_folder(out: Path) -> None:
    """Make every later write into `out` fail (root ignores permissions: a file where the folder was)."""
    shutil.rmtree(out)
    out.write_text("not a folder any more")


def test_a_failed_write_still_streams_the_answer_and_says_so(
    upstream: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "recordings"
    caplog.set_level(logging.ERROR, logger="mockllm")
    with MockServer(upstream=upstream.url, record="missing", out=str(out), time_scale=0) as server:
        break_folder(out)
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "disk full"}], "stream": True}
        raw = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=10).text
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0) as client:
            messages: Any = [{"role": "user", "content": "disk full again"}]
            stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            plain = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "plain"}])
        journal = httpx.get(server.url + "/_mockllm/requests").json()
    # The whole stream reached the client, then the comment (ignored by SDKs) saying why nothing was recorded.
    assert "[DONE]" in raw
    assert raw.index("data: [DONE]") < raw.index(": mockllm could not record this answer: ")
    assert raw.endswith("\n\n")
    assert text == "Echo: disk full again"
    # A non-streamed answer is whole too; the journal and the log tell that its recording is lost.
    assert plain.choices[0].message.content == "Echo: plain"
    assert [entry["error"]["type"] for entry in journal] == ["recording_failed"] * 3
    assert [entry["status"] for entry in journal] == [200] * 3
    logged = [record.getMessage() for record in caplog.records if record.name == "mockllm"]
    assert len(logged) == 3
    assert all(message.startswith("mockllm could not write the recording of POST") for message in logged)
