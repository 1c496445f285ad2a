"""The pytest plugin records each test's exchanges into its own cassette, then replays them offline."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fake_upstream import FakeUpstream

pytest_plugins = ["pytester"]

TEST = """
import openai, pytest

@pytest.mark.parametrize("who", ["Ada", "Bob/Eve"])
def test_greet(mockllm, who):
    with openai.OpenAI(max_retries=0) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"Hi {PROMPT}"}])
    assert reply.choices[0].message.content.startswith("Echo: Hi")

def test_stream(mockllm):
    with openai.OpenAI(max_retries=0) as client:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Stream please"}], stream=True) if c.choices)
    assert text.startswith("Echo: Stream please")
"""


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def write(pytester: pytest.Pytester, prompt: str = "{who}") -> Path:
    pytester.makefile(
        ".ini",
        pytest="[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\n"
        "mockllm_time_scale = 0\n",
    )
    path = pytester.path / "tests" / "test_agent.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(TEST).replace("{PROMPT}", prompt))
    return path


def test_record_missing_then_replay_offline_then_drift(pytester: pytest.Pytester, upstream: FakeUpstream) -> None:
    write(pytester)
    recorded = pytester.runpytest("--mockllm-record", "missing", "--mockllm-upstream", upstream.url)
    recorded.assert_outcomes(passed=3)
    cassettes = pytester.path / "tests" / "cassettes" / "test_agent"
    names = sorted(p.name for p in cassettes.iterdir())
    assert names == ["test_greet-Ada.yaml", "test_greet-Bob_Eve.yaml", "test_stream.yaml"]
    document = yaml.safe_load((cassettes / "test_stream.yaml").read_text())
    assert document["scenarios"][0]["reply"]["raw"]["events"]
    assert len(upstream.requests) == 3
    # Replay: no upstream, no flags; the cassettes answer.
    upstream.stop()
    replayed = pytester.runpytest()
    replayed.assert_outcomes(passed=3)
    # The code's request changed: the test fails naming the field, and says how to re-record.
    write(pytester, prompt="there {who}")
    drifted = pytester.runpytest("-k", "Ada")
    drifted.assert_outcomes(failed=1)
    text = "\n".join(drifted.outlines)
    assert 'messages[0].content: recorded "Hi Ada", got "Hi there Ada"' in text
    assert "pytest --mockllm-record missing" in text


def test_a_test_without_a_cassette_fails_saying_how_to_record(pytester: pytest.Pytester) -> None:
    write(pytester)
    result = pytester.runpytest("-k", "stream")
    result.assert_outcomes(failed=1)
    text = "\n".join(result.outlines)
    assert "tests/cassettes/test_agent/test_stream.yaml does not exist yet" in text
    assert "pytest --mockllm-record missing [--mockllm-upstream URL]" in text


def test_record_all_rewrites_a_cassette_whole(pytester: pytest.Pytester, upstream: FakeUpstream) -> None:
    write(pytester)
    pytester.runpytest("--mockllm-record", "missing", "--mockllm-upstream", upstream.url).assert_outcomes(passed=3)
    cassette = pytester.path / "tests" / "cassettes" / "test_agent" / "test_stream.yaml"
    stale = yaml.safe_load(cassette.read_text())
    stale["scenarios"].append({**stale["scenarios"][0], "id": "stale-exchange"})
    stale["scenarios"][-1]["when"] = {"api": "chat", "request": {"model": "old"}}
    cassette.write_text(yaml.safe_dump(stale, sort_keys=False))
    result = pytester.runpytest("-k", "stream", "--mockllm-record", "all", "--mockllm-upstream", upstream.url)
    result.assert_outcomes(passed=1)
    ids = [s["id"] for s in yaml.safe_load(cassette.read_text())["scenarios"]]
    assert ids == [stale["scenarios"][0]["id"]]  # the stale exchange is gone


def test_ini_options_and_a_bad_value(pytester: pytest.Pytester, upstream: FakeUpstream) -> None:
    write(pytester)
    pytester.makefile(
        ".ini",
        pytest=f"[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\n"
        f"mockllm_time_scale = 0\nmockllm_record = missing\nmockllm_upstream = {upstream.url}\n",
    )
    pytester.runpytest("-k", "stream").assert_outcomes(passed=1)
    assert (pytester.path / "tests" / "cassettes" / "test_agent" / "test_stream.yaml").is_file()
    bad = pytester.runpytest("--mockllm-record", "sometimes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "invalid choice: 'sometimes'" in "\n".join(bad.errlines)
