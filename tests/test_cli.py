"""The command line: `mockllm check`, `mockllm schema`, usage errors, `--version`, and `serve` as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from conftest import EXAMPLES, ROOT

from mockllm import __version__
from mockllm.cli import main
from mockllm.loading import json_schema, load_scenarios

GOOD = """
version: 1
scenarios:
  - id: greet
    when: {prompt: Say hello}
    reply: {text: Hello!}
  - id: weather
    when: {prompt: {contains: weather}, tools: [get_weather]}
    reply:
      tool_calls: [{name: get_weather, arguments: {city: Oslo}}]
"""
BAD = """
version: 1
scenarios:
  - id: greet
    repy: {text: Hello!}
  - id: slow
    reply:
      text: Hi
      timing: {ttft: soon}
"""
ALSO_BAD = """
version: 1
scenarios:
  - id: greet
    when: {api: chats}
    reply: {text: Hello!}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    """The environment for a child `mockllm`, without MOCKLLM_* settings that would change its behaviour."""
    return {key: value for key, value in os.environ.items() if not key.startswith("MOCKLLM_")}


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m mockllm ARGS` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "mockllm", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=timeout,
    )


# ---------------------------------------------------------------------------------------------------------------
# check


def test_check_good_files_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(load_scenarios([EXAMPLES]))
    assert main(["check", str(EXAMPLES)]) == 0
    out, err = capsys.readouterr()
    assert out == f"ok: {count} scenarios in 3 files\n"
    assert err == ""


def test_check_one_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "good.yaml", GOOD)
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr() == ("ok: 2 scenarios in 1 file\n", "")


def test_check_bad_files_reports_every_problem_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)
    also_bad = write(tmp_path, "also-bad.yaml", ALSO_BAD)
    assert main(["check", str(bad), str(also_bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {bad}:4: scenarios[0].repy: unknown key `repy`; did you mean `reply`?",
        f"error: {bad}:8: scenarios[1].reply.timing.ttft: 'soon' is not a duration; write it as 250ms, 1.5s, 2m or a "
        f"number of seconds",
        f"error: {also_bad}:4: scenarios[0].when.api: 'chats' is not a valid `api` (one of chat, completions, "
        f"responses, messages, embeddings, models); did you mean `chat`?",
        "3 problems found",
    ]


def test_check_reports_duplicate_ids_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", "version: 1\nscenarios:\n  - id: greet\n    reply: {text: Hi}\n")
    assert main(["check", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {second}:3: scenarios[0].id: the id `greet` is already used by the scenario at {first}:3; rename "
        f"one (ids must be unique)",
        "1 problem found",
    ]


def test_check_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", GOOD)
    missing = tmp_path / "nope.yaml"
    assert main(["check", str(good), str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"error: {missing}: no such file or folder; check the path", "1 problem found"]


def test_check_empty_folder_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: {tmp_path}: the folder holds no .yaml, .yml or .json scenario files; add one or pass another path",
        "1 problem found",
    ]


SHADOWED = """
version: 1
scenarios:
  - id: hello-anything
    when: {prompt: {contains: hello}}
    reply: {text: Hi!}
  - id: say-hello
    when: {prompt: Say hello, model: gpt-4o}
    reply: {text: Hello there!}
  - id: goodbye
    when: {prompt: Goodbye}
    reply: {text: Bye!}
  - id: catch-all
    reply: {text: Whatever.}
  - id: never
    when: {prompt: Goodbye again}
    reply: {text: Never sent.}
"""


def test_check_warns_about_shadowed_scenarios_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "shadow.yaml", SHADOWED)
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 5 scenarios in 1 file, 2 warnings\n"
    assert err.splitlines() == [
        f"warning: {path}:6: scenario `say-hello` can never match: `hello-anything` ({path}:3) comes first and "
        f"matches every request it would; move `say-hello` above it or narrow `hello-anything`'s conditions",
        f"warning: {path}:14: scenario `never` can never match: `catch-all` ({path}:12) comes first and matches "
        f"every request it would; move `never` above it or narrow `catch-all`'s conditions",
    ]


def test_check_does_not_warn_after_a_fall_through_sequence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """
    version: 1
    scenarios:
      - id: first-two
        replies: [{text: one}, {text: two}]
        then: fall-through
      - id: afterwards
        reply: {text: three}
    """
    path = write(tmp_path, "sequence.yaml", text)
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr() == ("ok: 2 scenarios in 1 file\n", "")


def test_check_in_a_child_process(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)
    result = run("check", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"error: {bad}:4: scenarios[0].repy: unknown key `repy`; did you mean `reply`?\n" in result.stderr
    assert result.stderr.endswith("2 problems found\n")

    good = run("check", "scenarios")
    assert (good.returncode, good.stderr) == (0, "")
    assert good.stdout.startswith("ok: ")


# ---------------------------------------------------------------------------------------------------------------
# schema, usage errors, --version


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == json_schema()
    assert err == ""


def test_schema_into_a_reader_that_stops_early_is_not_an_error() -> None:
    # `mockllm schema | head -c 5`: the reader closes the pipe after a few bytes.
    process = subprocess.Popen(
        [sys.executable, "-m", "mockllm", "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.read(5)
    process.stdout.close()
    assert process.wait(timeout=30) == 0
    assert process.stderr.read() == b""
    process.stderr.close()


def _properties(schema: dict[str, object]) -> Iterator[tuple[str, dict[str, object]]]:
    definitions = [("ScenarioFile", schema), *dict(schema.get("$defs", {})).items()]  # type: ignore[call-overload]
    for name, definition in definitions:
        for key, prop in dict(definition.get("properties", {})).items():
            yield f"{name}.{key}", prop


def test_every_key_of_the_schema_has_a_description() -> None:
    missing = [name for name, prop in _properties(json_schema()) if not prop.get("description")]
    assert missing == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--bogus", "scenarios"], "mockllm: error: unknown option --bogus; see `mockllm --help`"),
        (["serve", "--no-such-flag"], "mockllm: error: unknown option --no-such-flag; see `mockllm --help`"),
        (["serve", "--tim-scale", "0"], "mockllm: error: unknown option --tim-scale; did you mean --time-scale?"),
        (["serve", "--realod"], "mockllm: error: unknown option --realod; did you mean --reload?"),
        (["serve", "--dialekt=vllm"], "mockllm: error: unknown option --dialekt; did you mean --dialect?"),
        (["schema", "extra"], "mockllm: error: unrecognized arguments: extra"),
        (["check"], "mockllm check: error: the following arguments are required: PATH"),
        ([], "mockllm: error: the following arguments are required: {serve,check,schema,distill}"),
        (["explode"], "mockllm: error: argument {serve,check,schema,distill}: invalid choice: 'explode'"),
        (["serve", "--port", "eighty"], "mockllm serve: error: argument --port: 'eighty' is not a port number"),
        (["serve", "--dialect", "ollama"], "mockllm serve: error: argument --dialect: invalid choice: 'ollama'"),
    ],
    ids=[
        "check-flag",
        "serve-flag",
        "suggest-time-scale",
        "suggest-reload",
        "suggest-dialect",
        "schema-argument",
        "check-no-path",
        "no-command",
        "unknown-command",
        "port",
        "dialect",
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: mockllm")
    assert message in err


def test_unknown_flag_in_a_child_process_exits_2() -> None:
    result = run("check", "--bogus", "scenarios")
    assert result.returncode == 2
    assert "mockllm: error: unknown option --bogus" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"mockllm {__version__}\n", "")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("mockllm")
    if not script.exists():
        pytest.skip("the `mockllm` console script is not installed next to this Python")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, env=environment(), timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"mockllm {__version__}\n")


# ---------------------------------------------------------------------------------------------------------------
# serve, as a real process


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; it stays free unless something grabs it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def listener() -> Iterator[int]:
    """A port with a listening socket on it, for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"mockllm serve exited early with code {process.returncode}"
        try:
            response = httpx.get(f"{url}/_mockllm/health", timeout=2)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            return
        assert time.monotonic() < deadline, f"mockllm serve did not answer /_mockllm/health within {timeout} s"
        time.sleep(0.05)


def test_serve_answers_a_streamed_chat_request(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "mockllm", "serve", "scenarios/", "--port", str(port)],
        cwd=ROOT,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process)
        with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0) as client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], stream=True
            )
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "Hello there! How can I help you today?"
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        log.seek(0)
        output = log.read().decode()
        log.close()
    assert code == 0, output
    assert f"on http://127.0.0.1:{port} (OpenAI base URL http://127.0.0.1:{port}/v1)" in output
    assert "POST /v1/chat/completions greet 200" in output


def test_serve_on_a_port_in_use_says_so_and_exits_1(listener: int) -> None:
    result = run("serve", "scenarios/", "--port", str(listener))
    assert result.returncode == 1
    assert (
        f"port {listener} on 127.0.0.1 is already in use; stop what listens there or pick another port with --port "
        f"(0 picks a free one)"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_scenario_file_exits_1(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD)
    result = run("serve", str(bad), "--port", "0")
    assert result.returncode == 1
    assert f"{bad}:4: scenarios[0].repy: unknown key `repy`; did you mean `reply`?" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert main(["serve", str(missing), "--port", "0"]) == 1
    assert capsys.readouterr().err == f"mockllm: no such file or folder: {missing}; check the path\n"
