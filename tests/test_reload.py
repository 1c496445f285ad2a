"""`--reload`: changed scenario files are validated whole and swapped in; broken edits keep the last good version."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from conftest import StartServer
from serve_process import ServeProcess

from mockllm import MockServer
from mockllm.reload import ScenarioWatcher

GREET = """version: 1
scenarios:
  - id: greet
    when: {{prompt: Say hello}}
    reply: {{text: {text}}}
"""

COUNTER = """version: 1
scenarios:
  - id: counter
    when: {prompt: Count}
    replies: [{text: One.}, {text: Two.}, {text: Three.}]
    then: cycle
"""


BROKEN = """version: 1
scenarios:
  - id: greet
    when: {prompt: Say hello}
    reply:
      timing: {ttft: soon}
      text: Hello!
"""

SLOW = """version: 1
scenarios:
  - id: greet
    when: {prompt: Say hello}
    reply:
      chunks: [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9]
      timing: {chunk: 100ms}
"""


def edit(path: Path, text: str) -> None:
    """Write `text`, making sure the file's stat changes even within one tick of the file system's clock."""
    before = path.stat() if path.exists() else None
    path.write_text(text, encoding="utf-8")
    if before is not None:
        bumped = max(path.stat().st_mtime_ns, before.st_mtime_ns + 1_000_000)
        os.utime(path, ns=(bumped, bumped))


def ask(server: MockServer, prompt: str = "Say hello") -> str | None:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    try:
        completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
    except openai.NotFoundError:
        return None
    return completion.choices[0].message.content


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "scenarios"
    root.mkdir()
    edit(root / "greet.yaml", GREET.format(text="Hello!"))
    edit(root / "counter.yaml", COUNTER)
    return root


Watch = Callable[..., tuple[MockServer, ScenarioWatcher]]


@pytest.fixture
def watch(start_server: StartServer) -> Iterator[Watch]:
    """A server on the given paths and a watcher on them (not polling: tests call `reload()`)."""
    watchers: list[ScenarioWatcher] = []

    def make(*paths: Path, **options: object) -> tuple[MockServer, ScenarioWatcher]:
        server = start_server(*paths, **options)
        watcher = ScenarioWatcher(paths, server.state.scenarios, interval=0.05)
        watchers.append(watcher)
        return server, watcher

    yield make
    for watcher in watchers:
        watcher.stop()


def test_a_changed_file_is_swapped_in(folder: Path, watch: Watch) -> None:
    server, watcher = watch(folder)
    assert ask(server) == "Hello!"
    assert watcher.reload() is False  # nothing changed yet
    edit(folder / "greet.yaml", GREET.format(text="Hello again!"))
    assert watcher.reload() is True
    assert ask(server) == "Hello again!"


def test_a_broken_edit_keeps_the_last_good_version_and_logs_file_and_line(
    folder: Path, watch: Watch, caplog: pytest.LogCaptureFixture
) -> None:
    server, watcher = watch(folder)
    path = folder / "greet.yaml"
    edit(path, BROKEN)
    with caplog.at_level(logging.ERROR, logger="mockllm"):
        assert watcher.reload() is False
    assert ask(server) == "Hello!"
    [record] = caplog.records
    message = record.getMessage()
    assert f"{path}:6: scenarios[0].reply.timing.ttft:" in message
    assert "'soon' is not a duration" in message
    assert "keeping its last good version" in message
    assert record.fields["file"] == str(path)  # type: ignore[attr-defined]
    assert record.fields["line"] == 6  # type: ignore[attr-defined]
    # Unchanged since: not reported again. Fixed: swapped in.
    caplog.clear()
    assert watcher.reload() is False
    assert caplog.records == []
    edit(path, GREET.format(text="Fixed!"))
    assert watcher.reload() is True
    assert ask(server) == "Fixed!"


def test_a_yaml_syntax_error_names_its_line(folder: Path, watch: Watch, caplog: pytest.LogCaptureFixture) -> None:
    server, watcher = watch(folder)
    path = folder / "greet.yaml"
    edit(path, GREET.format(text="[unclosed"))
    with caplog.at_level(logging.ERROR, logger="mockllm"):
        watcher.reload()
    assert ask(server) == "Hello!"
    assert any(f"{path}:5:" in r.getMessage() and "YAML" in r.getMessage() for r in caplog.records)


def test_a_new_file_in_a_watched_folder_is_picked_up_and_a_removed_one_unloaded(folder: Path, watch: Watch) -> None:
    server, watcher = watch(folder)
    assert ask(server, "Bye") is None
    (folder / "nested").mkdir()
    bye = "version: 1\nscenarios:\n  - id: bye\n    when: {prompt: Bye}\n    reply: {text: See you.}\n"
    edit(folder / "nested" / "bye.yml", bye)
    assert watcher.reload() is True
    assert ask(server, "Bye") == "See you."
    (folder / "nested" / "bye.yml").unlink()
    assert watcher.reload() is True
    assert ask(server, "Bye") is None
    assert ask(server) == "Hello!"


def test_a_new_file_whose_id_clashes_is_refused(folder: Path, watch: Watch, caplog: pytest.LogCaptureFixture) -> None:
    server, watcher = watch(folder)
    path = folder / "other.yaml"
    edit(path, GREET.format(text="Impostor"))
    with caplog.at_level(logging.ERROR, logger="mockllm"):
        assert watcher.reload() is False
    [record] = caplog.records
    expected = f"{path}:3: scenarios[0].id: the id `greet` is already used by the scenario at {folder / 'greet.yaml'}:3"
    assert expected in record.getMessage()
    assert "not loading it" in record.getMessage()
    assert ask(server) == "Hello!"
    assert [s.name for s in server.state.scenarios.all()] == ["counter", "greet"]


def test_a_named_file_that_goes_missing_keeps_its_scenarios(
    folder: Path, watch: Watch, caplog: pytest.LogCaptureFixture
) -> None:
    path = folder / "greet.yaml"
    server, watcher = watch(path)
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="mockllm"):
        assert watcher.reload() is False
    assert "is missing; keeping its last good scenarios" in caplog.text
    assert ask(server) == "Hello!"
    edit(path, GREET.format(text="Back!"))
    assert watcher.reload() is True
    assert ask(server) == "Back!"


def test_runtime_scenarios_and_sequence_positions_survive_a_reload(folder: Path, watch: Watch) -> None:
    server, watcher = watch(folder)
    server.add({"id": "added", "when": {"prompt": "Runtime"}, "reply": {"text": "Still here."}})
    assert ask(server, "Count") == "One."
    edit(folder / "greet.yaml", GREET.format(text="Changed"))
    assert watcher.reload() is True
    assert ask(server, "Runtime") == "Still here."
    assert ask(server, "Count") == "Two."
    assert ask(server) == "Changed"


def test_a_stream_in_flight_is_not_dropped_by_a_reload(folder: Path, watch: Watch) -> None:
    path = folder / "greet.yaml"
    edit(path, SLOW)
    server, watcher = watch(folder, time_scale=1)
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=30)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hello"}], stream=True)
    received: list[str] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
            if len(received) == 2:
                # Mid-stream: the file changes and is swapped in; the old stream goes on untouched.
                edit(path, GREET.format(text="New reply"))
                assert watcher.reload() is True
                assert ask(server) == "New reply"
    assert received == [f"a{i}" for i in range(10)]
    [first, second] = server.state.journal.entries()
    deadline = time.monotonic() + 10
    while first.status is None and time.monotonic() < deadline:  # the client may see [DONE] before the server ends
        time.sleep(0.01)
    assert (first.scenario, first.status, first.chunks) == ("greet", 200, 10)
    assert (second.scenario, second.status, second.stream) == ("greet", 200, False)


def test_the_watcher_thread_applies_a_change_once_it_holds_still(folder: Path, watch: Watch) -> None:
    server, watcher = watch(folder)
    watcher.start()
    edit(folder / "greet.yaml", GREET.format(text="Polled!"))
    deadline = time.monotonic() + 10
    while ask(server) != "Polled!" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ask(server) == "Polled!"
    watcher.stop()
    assert not any(t.name == "mockllm-reload" for t in threading.enumerate())


def test_serve_reload_end_to_end(folder: Path) -> None:
    with ServeProcess(str(folder), "--reload", "--log-format", "json", "--time-scale", "0") as process:
        client = openai.OpenAI(base_url=process.url + "/v1", api_key="sk-test", max_retries=0)

        def answer() -> str | None:
            reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hello"}])
            return reply.choices[0].message.content

        assert answer() == "Hello!"
        edit(folder / "greet.yaml", "version: 1\nscenarios:\n  - id: greet\n    reply: {text: 12\n")
        error = json.loads(process.wait_for(lambda line: '"reload_error"' in line))
        assert error["file"] == str(folder / "greet.yaml")
        assert error["line"] >= 4
        assert answer() == "Hello!"
        edit(folder / "greet.yaml", GREET.format(text="Reloaded!"))
        process.wait_for(lambda line: '"event": "reload"' in line)
        assert answer() == "Reloaded!"
        process.signal()
        assert process.wait() == 0
        process.records()  # every line is JSON
