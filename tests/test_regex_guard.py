"""`regex` conditions cannot hang the server (mockllm/regex_guard.py): refused at load, bounded at match time."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from conftest import StartServer

from mockllm import regex_guard
from mockllm.loading import ScenarioError, load_text


@pytest.mark.parametrize("pattern", ["(a+)+$", r"(\w+\s?)*$", "((a*))+b", "(x*y?){2,}"])
def test_exponential_shapes_are_refused_at_load_with_file_and_line(pattern: str) -> None:
    text = "version: 1\nscenarios:\n  - id: bad\n    when:\n"
    text += f"      prompt: {{regex: '{pattern}'}}\n    reply: {{text: ok}}\n"
    started = time.monotonic()
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "bad.yaml")
    assert time.monotonic() - started < 2
    [problem] = caught.value.problems
    assert problem.source == "bad.yaml"
    assert problem.line == 5
    assert "repeats a group made only of repeats" in problem.message
    assert "Rewrite it" in problem.message


@pytest.mark.parametrize("pattern", ["^gpt-4o", "hello.*world", "(ab)+", "[a-z]+(-[a-z]+)*", r"\d{3}-\d{4}", "(a|b)*c"])
def test_ordinary_patterns_load(pattern: str) -> None:
    regex_guard.check_pattern(pattern)


def test_the_classic_catastrophe_is_refused_by_the_admin_api_fast(start_server: StartServer) -> None:
    server = start_server()
    document = "when: {prompt: {regex: '(a+)+$'}}\nreply: {text: never}\n"
    started = time.monotonic()
    response = httpx.post(server.url + "/_mockllm/scenarios", content=document)
    assert time.monotonic() - started < 2
    assert response.status_code == 400
    assert "(a+)+$" in response.json()["error"]["message"]


def test_a_search_over_budget_gives_up_and_reports(start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # `(a|aa)+$` passes the load check (alternation, not a nested repeat) but is exponential on "aaa...b".
    monkeypatch.setattr(regex_guard, "BUDGET", 0.2)
    server = start_server(
        scenarios_yaml=(
            "version: 1\nscenarios:\n"
            "  - id: trap\n    when: {prompt: {regex: '(a|aa)+$'}}\n    reply: {text: trapped}\n"
            "  - id: plain\n    when: {prompt: {regex: '^hello'}}\n    reply: {text: plain}\n"
        )
    )
    url = server.openai_base_url + "/chat/completions"
    started = time.monotonic()
    response = httpx.post(url, json={"model": "m", "messages": [{"role": "user", "content": "a" * 60 + "b"}]})
    took = time.monotonic() - started
    assert took < 10, "a catastrophic regex held the server"
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "gave up after 0.2s on a 61-character text" in message
    # The server still answers, and the pattern still matches where it can.
    answer = httpx.post(url, json={"model": "m", "messages": [{"role": "user", "content": "aaaa"}]})
    assert answer.json()["choices"][0]["message"]["content"] == "trapped"
    plain = httpx.post(url, json={"model": "m", "messages": [{"role": "user", "content": "hello there"}]})
    assert plain.json()["choices"][0]["message"]["content"] == "plain"


def test_polynomial_patterns_on_long_texts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regex_guard, "BUDGET", 0.2)
    started = time.monotonic()
    assert regex_guard.search(re.compile(".*a.*b.*x"), "ab" * 20_000) is False  # O(n^3): minutes in-process
    assert time.monotonic() - started < 5
    assert regex_guard.search(re.compile(".*a.*b.*x"), "ab" * 20 + "x") is True


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^gpt-4o", "gpt-4o-mini", True),
        ("^gpt-4o", "gpt-4", False),
        ("(?i)HELLO", "hello", True),
        ("a.*b", "x" * 20_000 + "ab", True),  # a long text goes to the helper, same answer
        ("a.*b|c", "ccc", True),
    ],
)
def test_search_agrees_with_re(pattern: str, text: str, expected: Any) -> None:
    assert regex_guard.search(re.compile(pattern), text) is expected
    assert (re.search(pattern, text) is not None) is expected


def test_the_helper_comes_back_after_it_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regex_guard, "BUDGET", 0.1)
    assert regex_guard.search(re.compile("(a|aa)+$"), "a" * 60 + "b") is False
    assert regex_guard.search(re.compile("(a|aa)+$"), "aaa") is True
