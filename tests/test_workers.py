"""`mockllm serve --workers N`: real worker processes on one port, driven by the openai SDK.

One server with two workers is shared by the tests that only send requests; the tests of stopping, restarting and
failing to start run their own. Which worker a connection reaches is the kernel's choice: the tests open fresh
connections until both workers have answered (each `openai.OpenAI` client has its own connection pool).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from serve_process import ServeProcess, refuses_connections

SCENARIOS = """
version: 1
scenarios:
  - id: paced                      # 300 ms to the first chunk, then 20 ms a chunk
    when: {prompt: paced}
    reply:
      chunks: [one, " two", " three", " four"]
      timing: {ttft: 300ms, chunk: 20ms}
  - id: limited
    when: {prompt: limited}
    reply:
      error: {status: 429, retry_after: 1s}
  - id: cut                        # the connection drops after two chunks
    when: {prompt: cut}
    reply:
      chunks: [a, b, c, d]
      fault: {kind: disconnect, after: 2}
  - id: slow                       # 20 chunks, 50 ms apart: one second in flight
    when: {prompt: slow}
    reply:
      chunks: [c00, c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19]
      timing: {ttft: 0ms, chunk: 50ms}
"""

pytestmark = pytest.mark.skipif(os.name != "posix", reason="--workers serves on Linux and macOS")


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workers") / "workers.yaml"
    path.write_text(SCENARIOS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(scenario_file: Path) -> Iterator[ServeProcess]:
    """`mockllm serve --workers 2 --port 0`, JSON logs; stopped with SIGTERM (exit 0) after the module."""
    with ServeProcess(str(scenario_file), "--workers", "2", "--log-format", "json") as process:
        yield process
        process.signal(signal.SIGTERM)
        assert process.wait() == 0


def _health(url: str, count: int) -> Iterator[dict[str, Any]]:
    """`count` health answers, each on a new connection (so that the kernel picks a worker for each)."""
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for _ in range(count):
            yield http.get(url + "/_mockllm/health").json()


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0, timeout=30)


def _ask(url: str, prompt: str, stream: bool = True) -> tuple[str, float]:
    """A chat request on a connection of its own: the text, and the seconds to its first content chunk."""
    client = _client(url)
    try:
        started = time.monotonic()
        if not stream:
            completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
            return completion.choices[0].message.content or "", time.monotonic() - started
        text, first = "", 0.0
        for chunk in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": prompt}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic() - started
                text += chunk.choices[0].delta.content
        return text, first
    finally:
        client.close()


def _workers_that_answered(server: ServeProcess, scenario: str) -> set[int]:
    return {r["worker"] for r in server.records() if r.get("event") == "request" and r.get("scenario") == scenario}


def _on_both_workers(server: ServeProcess, scenario: str, send: Callable[[], Any]) -> list[Any]:
    """Call `send` (one request on a fresh connection) in concurrent rounds until both workers logged `scenario`;
    the results of every call."""
    results: list[Any] = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):
            results += pool.map(lambda _: send(), range(8))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _workers_that_answered(server, scenario) != {1, 2}:
                time.sleep(0.02)  # the log line follows the response's end
            if _workers_that_answered(server, scenario) == {1, 2}:
                return results
    raise AssertionError(f"`{scenario}` was answered by workers {_workers_that_answered(server, scenario)} only")


def test_one_start_line_names_the_url_and_both_workers(server: ServeProcess) -> None:
    [start] = [r for r in server.records() if r.get("event") == "start"]
    assert start["workers"] == 2
    assert len(set(start["pids"])) == 2
    assert "with 2 worker processes" in start["message"]
    # Every worker's own lines carry its number; the supervisor's carry none.
    started = [r for r in server.records() if r["message"].startswith("Started server process")]
    assert sorted(r["worker"] for r in started) == [1, 2]
    assert "worker" not in start


def test_both_workers_answer_on_one_port(server: ServeProcess) -> None:
    [start] = [r for r in server.records() if r.get("event") == "start"]
    seen: dict[int, int] = {}
    for health in _health(server.url, 200):
        assert health["workers"] == 2
        seen[health["worker"]] = health["pid"]
        if len(seen) == 2:
            break
    assert sorted(seen) == [1, 2]
    assert sorted(seen.values()) == sorted(start["pids"])


def test_streams_on_many_connections_are_answered_by_both_workers(server: ServeProcess) -> None:
    results = _on_both_workers(server, "paced", lambda: _ask(server.url, "paced"))
    assert {text for text, _ in results} == {"one two three four"}
    # Pacing holds in every worker: nothing arrives before its 300 ms.
    assert min(first for _, first in results) >= 0.28


def test_an_error_scenario_is_served_by_every_worker(server: ServeProcess) -> None:
    def limited() -> openai.RateLimitError:
        with pytest.raises(openai.RateLimitError) as caught:
            _ask(server.url, "limited", stream=False)
        return caught.value

    errors = _on_both_workers(server, "limited", limited)
    assert {e.response.headers["retry-after"] for e in errors} == {"1"}


def test_a_disconnect_fault_is_applied_by_every_worker(server: ServeProcess) -> None:
    def cut() -> BaseException:
        with pytest.raises(Exception) as caught:  # the SDK's error, or its transport's (by openai version)
            _ask(server.url, "cut")
        return caught.value

    _on_both_workers(server, "cut", cut)
    outcomes = {r["outcome"] for r in server.records() if r.get("event") == "request" and r["scenario"] == "cut"}
    assert outcomes == {"reset"}


@pytest.mark.parametrize(
    ("method", "path", "subject"),
    [
        ("GET", "/_mockllm/requests", "The journal is per worker process"),
        ("DELETE", "/_mockllm/requests", "The journal is per worker process"),
        ("POST", "/_mockllm/scenarios", "Runtime scenarios are per worker process"),
        ("DELETE", "/_mockllm/scenarios", "Runtime scenarios are per worker process"),
        ("POST", "/_mockllm/reset", "Sequence positions, the journal and runtime scenarios are per worker process"),
    ],
)
def test_the_admin_api_refuses_what_one_worker_cannot_answer(
    server: ServeProcess, method: str, path: str, subject: str
) -> None:
    response = httpx.request(method, server.url + path, content=b"version: 1\nscenarios: []\n")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "per_worker_state"
    assert error["message"].startswith(subject)
    assert "(--workers 2)" in error["message"]
    assert "Run mockllm with --workers 1 (the default)" in error["message"]


def test_the_scenario_list_is_the_same_in_every_worker(server: ServeProcess) -> None:
    listed = {tuple(s["id"] for s in httpx.get(server.url + "/_mockllm/scenarios").json()) for _ in range(10)}
    assert listed == {("paced", "limited", "cut", "slow")}


def test_a_killed_worker_is_restarted_and_sigterm_lets_streams_finish(scenario_file: Path) -> None:
    with ServeProcess(str(scenario_file), "--workers", "2", "--grace", "5s") as server:
        assert sum("with 2 worker processes" in line for line in server.lines) == 1
        pids = {health["pid"] for health in _health(server.url, 100)}
        assert len(pids) == 2
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        server.wait_for(lambda line: f"(pid {victim}) ended unexpectedly with killed by SIGKILL" in line)
        server.wait_for(lambda line: "is serving again" in line)
        seen: set[int] = set()
        for health in _health(server.url, 200):
            seen.add(health["pid"])
            if len(seen - {victim}) == 2:
                break
        assert victim not in seen
        assert len(seen) == 2  # the survivor and the new worker

        # SIGTERM: the stream in flight ends whole, new connections are refused, the exit is 0.
        text = ""
        for chunk in _client(server.url).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "slow"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                if text == "c00":
                    server.signal(signal.SIGTERM)
                    assert refuses_connections(server.url, within=5)
        assert text == "".join(f"c{i:02d}" for i in range(20))
        assert server.wait(15) == 0
    # Plain log lines name the worker that wrote them; the supervisor's own lines do not.
    for index in (1, 2):
        assert any(f"INFO [worker {index}] Started server process" in line for line in server.lines)
    assert server.lines[-1].endswith("INFO mockllm stopped")


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(scenario_file: Path) -> None:
    with ServeProcess(str(scenario_file), "--workers", "2") as server:
        assert httpx.get(server.url + "/_mockllm/health").status_code == 200
        server.signal(signal.SIGKILL)
        assert server.wait() == -signal.SIGKILL
        assert refuses_connections(server.url, within=10)  # no orphan keeps the port
        assert server.wait_for(lambda line: "the supervisor process is gone" in line)


def test_a_worker_that_cannot_start_stops_the_server_with_its_error(scenario_file: Path, tmp_path: Path) -> None:
    # The scenarios are valid when the supervisor checks them; a worker process then breaks the file before it
    # loads it, as an edit between the two would.
    broken = tmp_path / "broken.yaml"
    broken.write_text(SCENARIOS, encoding="utf-8")
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if '--multiprocessing-fork' in sys.argv:\n"
        "    open(os.environ['BREAK_FILE'], 'w').write('version: 1\\nscenarios: [{id: x, repy: {text: hi}}]\\n')\n",
        encoding="utf-8",
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOCKLLM_")}
    environment.update(PYTHONPATH=os.pathsep.join([str(tmp_path), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]))
    environment.update(BREAK_FILE=str(broken))
    done = subprocess.run(
        [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--workers", "2", str(broken)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert done.returncode == 1
    assert "unknown key `repy`; did you mean `reply`?" in done.stderr
    assert (
        "could not start (exit code 1), so the server stops: not serving: 1 problem in the scenario files"
        in done.stderr
    )
    assert "mockllm stopped" not in done.stderr


def test_without_so_reuseport_the_workers_share_one_socket(scenario_file: Path) -> None:
    # As on macOS: the supervisor binds one socket, and every worker accepts from it.
    command = [
        sys.executable,
        "-c",
        "import sys; from mockllm import supervisor; from mockllm.cli import main; "
        "supervisor._reuse_port_supported = lambda: False; sys.exit(main(sys.argv[1:]))",
        "serve",
        "--port",
        "0",
    ]
    with ServeProcess(str(scenario_file), "--workers", "2", command=command) as server:
        assert {health["workers"] for health in _health(server.url, 10)} == {2}
        assert _ask(server.url, "paced")[0] == "one two three four"
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
