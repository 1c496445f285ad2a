"""The admin API under /_mockllm/: health, scenarios, the journal, reset."""

from __future__ import annotations

import json
import os
import re

import httpx
import openai
import pytest
from conftest import StartServer
from sse_utils import openai_client

from mockllm import MockServer, workers

GOOD_YAML = """
version: 1
scenarios:
  - id: added
    when: {prompt: Say hello}
    reply: {text: Runtime hello.}
"""


def ask(server: MockServer, prompt: str = "Say hello") -> str | None:
    client: openai.OpenAI = openai_client(server)
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
    return completion.choices[0].message.content


def test_health(examples: MockServer) -> None:
    body = httpx.get(examples.url + "/_mockllm/health").json()
    assert body["status"] == "ok"
    assert body["scenarios"] == 13


def test_scenarios_listed_in_match_order(examples: MockServer) -> None:
    listed = httpx.get(examples.url + "/_mockllm/scenarios").json()
    assert listed[0]["id"] == "greet"
    assert listed[0]["source"].endswith("basics.yaml:4")
    assert listed[0]["when"] == {"prompt": {"exact": "Say hello"}}
    assert listed[0]["runtime"] is False


def test_post_yaml_scenarios_match_first_and_delete_restores(examples: MockServer) -> None:
    assert ask(examples) == "Hello there! How can I help you today?"
    response = httpx.post(
        examples.url + "/_mockllm/scenarios", content=GOOD_YAML, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 201
    assert response.json() == {"added": ["added"]}
    assert ask(examples) == "Runtime hello."
    listed = httpx.get(examples.url + "/_mockllm/scenarios").json()
    assert listed[0]["id"] == "added"
    assert listed[0]["runtime"] is True
    assert httpx.delete(examples.url + "/_mockllm/scenarios").status_code == 200
    assert ask(examples) == "Hello there! How can I help you today?"


def test_post_json_scenario_document(examples: MockServer) -> None:
    document = {"version": 1, "scenarios": [{"when": {"prompt": "json"}, "reply": {"text": "From JSON."}}]}
    response = httpx.post(examples.url + "/_mockllm/scenarios", json=document)
    assert response.status_code == 201
    assert ask(examples, "json") == "From JSON."


def test_post_invalid_document_adds_nothing_and_explains(examples: MockServer) -> None:
    bad = GOOD_YAML + "  - id: broken\n    repy: {text: x}\n"
    response = httpx.post(examples.url + "/_mockllm/scenarios", content=bad)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "<admin>:8: scenarios[1].repy: unknown key `repy`; did you mean `reply`?" in message
    ids = [s["id"] for s in httpx.get(examples.url + "/_mockllm/scenarios").json()]
    assert "added" not in ids  # all or nothing


def test_post_clashing_with_a_file_id_is_refused(examples: MockServer) -> None:
    clash = "version: 1\nscenarios:\n  - id: greet\n    reply: {text: x}\n"
    response = httpx.post(examples.url + "/_mockllm/scenarios", content=clash)
    assert response.status_code == 409
    assert "greet" in response.json()["error"]["message"]


def test_journal_records_requests_and_clears(examples: MockServer) -> None:
    ask(examples)
    entries = httpx.get(examples.url + "/_mockllm/requests").json()
    assert len(entries) == 1
    entry = entries[0]
    assert set(entry) == {
        "id", "time", "method", "path", "api", "model", "stream", "body", "scenario", "miss", "warning", "status",
        "error", "fault", "violation", "outcome", "chunks", "chunk_times", "duration",
    }  # fmt: skip
    assert entry["method"] == "POST"
    assert entry["path"] == "/v1/chat/completions"
    assert entry["api"] == "chat"
    assert entry["model"] == "m"
    assert entry["body"]["messages"] == [{"role": "user", "content": "Say hello"}]
    assert entry["scenario"] == "greet"
    assert entry["status"] == 200
    assert entry["duration"] >= 0
    assert httpx.delete(examples.url + "/_mockllm/requests").status_code == 204
    assert httpx.get(examples.url + "/_mockllm/requests").json() == []


def test_journal_is_bounded(start_server: object) -> None:
    server = start_server(scenarios_yaml=GOOD_YAML, journal_size=3)  # type: ignore[operator]
    for _ in range(5):
        ask(server)
    entries = httpx.get(server.url + "/_mockllm/requests").json()
    assert [e["id"] for e in entries] == [3, 4, 5]


def test_streamed_request_journal_counts_chunks(examples: MockServer) -> None:
    client: openai.OpenAI = openai_client(examples)
    list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hello"}], stream=True))
    (entry,) = httpx.get(examples.url + "/_mockllm/requests").json()
    assert entry["stream"] is True
    assert entry["chunks"] == 10
    assert len(entry["chunk_times"]) == 10
    assert entry["chunk_times"] == sorted(entry["chunk_times"])


def test_reset_clears_journal_runtime_scenarios_and_positions(examples: MockServer) -> None:
    httpx.post(examples.url + "/_mockllm/scenarios", content=GOOD_YAML)
    assert ask(examples, "Count") == "One."
    assert httpx.post(examples.url + "/_mockllm/reset").json() == {"reset": True}
    assert httpx.get(examples.url + "/_mockllm/requests").json() == []
    assert ask(examples) == "Hello there! How can I help you today?"
    assert ask(examples, "Count") == "One."


def test_single_scenario_mapping_is_accepted(examples: MockServer) -> None:
    response = httpx.post(
        examples.url + "/_mockllm/scenarios", content=json.dumps({"when": {"prompt": "x"}, "reply": {"text": "y"}})
    )
    assert response.status_code == 201
    (added,) = response.json()["added"]
    assert added.startswith("runtime-")
    assert ask(examples, "x") == "y"


def test_posted_scenarios_keep_their_written_order(examples: MockServer) -> None:
    document = """
version: 1
scenarios:
  - id: first
    when: {prompt: {contains: order}}
    reply: {text: First.}
  - id: second
    when: {prompt: {contains: order}}
    reply: {text: Second.}
"""
    assert httpx.post(examples.url + "/_mockllm/scenarios", content=document).status_code == 201
    assert ask(examples, "order please") == "First."
    ids = [s["id"] for s in httpx.get(examples.url + "/_mockllm/scenarios").json()]
    assert ids[:2] == ["first", "second"]


def test_json_documents_with_escaped_emoji_load_as_one_character(examples: MockServer) -> None:
    # json.dumps escapes 😀 as the pair \ud83d\ude00, which YAML alone would read as two lone surrogates.
    document = json.dumps({"version": 1, "scenarios": [{"when": {"prompt": "emoji"}, "reply": {"text": "Hi 😀"}}]})
    assert "\\ud83d\\ude00" in document
    assert httpx.post(examples.url + "/_mockllm/scenarios", content=document).status_code == 201
    assert ask(examples, "emoji") == "Hi 😀"
    lone = document.replace("\\ude00", "")
    response = httpx.post(examples.url + "/_mockllm/scenarios", content=lone)
    assert response.status_code == 400
    assert "lone UTF-16 surrogate" in response.json()["error"]["message"]


def test_a_bare_list_of_scenarios_reports_problems_at_their_lines(examples: MockServer) -> None:
    bare = "- when: {prompt: one}\n  reply: {text: One.}\n- when: {prompt: two}\n  repy: {text: Two.}\n"
    response = httpx.post(examples.url + "/_mockllm/scenarios", content=bare)
    assert response.status_code == 400
    assert (
        "<admin>:4: scenarios[1].repy: unknown key `repy`; did you mean `reply`?" in response.json()["error"]["message"]
    )
    fixed = bare.replace("repy", "reply")
    assert httpx.post(examples.url + "/_mockllm/scenarios", content=fixed).status_code == 201
    assert ask(examples, "two") == "Two."


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"dialect": "vlm"},
            "dialect='vlm' is not a dialect; use one of openai, vllm, vllm-0.10, azure, gemini-openai",
        ),
        ({"fallback": "silence"}, "fallback='silence' is not a fallback; use one of error, echo, lorem"),
        ({"time_scale": -1}, "time_scale=-1 is negative"),
        ({"journal_size": 0}, "journal_size=0 is too small"),
    ],
)
def test_mock_server_refuses_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MockServer(**options)  # type: ignore[arg-type]


def test_mock_server_refuses_unknown_options() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        MockServer(time_scal=0)


def test_health_says_which_process_answered(examples: MockServer) -> None:
    body = httpx.get(examples.url + "/_mockllm/health").json()
    assert (body["pid"], body["worker"], body["workers"]) == (os.getpid(), 1, 1)


@pytest.fixture
def third_of_three_workers(monkeypatch: pytest.MonkeyPatch, start_server: StartServer) -> MockServer:
    """A server that takes itself for worker 3 of `mockllm serve --workers 3` (workers.py sets this in a worker)."""
    monkeypatch.setattr(workers, "_identity", workers.WorkerIdentity(index=3, count=3))
    return start_server(scenarios_yaml=GOOD_YAML)


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        (
            "GET",
            "/_mockllm/requests",
            "The journal is per worker process, and this server runs 3 of them (--workers 3): worker 3 (pid {pid}) "
            "would answer with only the requests the kernel happened to give it. Run mockllm with --workers 1 (the "
            "default) to read the journal (or count requests on the client side).",
        ),
        ("DELETE", "/_mockllm/requests", "would clear only its own. Run mockllm with --workers 1 (the default) to "),
        ("POST", "/_mockllm/scenarios", "Runtime scenarios are per worker process"),
        ("DELETE", "/_mockllm/scenarios", "would change only its own scenarios, and the other workers would answer"),
        ("POST", "/_mockllm/reset", "would reset only its own, and the other workers would go on where they were"),
    ],
)
def test_with_several_workers_per_worker_state_is_refused_with_409(
    third_of_three_workers: MockServer, method: str, path: str, message: str
) -> None:
    response = httpx.request(method, third_of_three_workers.url + path, content=GOOD_YAML.encode())
    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "per_worker_state")
    assert message.format(pid=os.getpid()) in error["message"]
    assert [s["id"] for s in httpx.get(third_of_three_workers.url + "/_mockllm/scenarios").json()] == ["added"]


def test_with_several_workers_health_and_the_scenario_list_still_answer(third_of_three_workers: MockServer) -> None:
    health = httpx.get(third_of_three_workers.url + "/_mockllm/health").json()
    assert (health["status"], health["worker"], health["workers"]) == ("ok", 3, 3)
    assert httpx.get(third_of_three_workers.url + "/_mockllm/scenarios").status_code == 200
    assert ask(third_of_three_workers) == "Runtime hello."  # the API itself is unchanged


def test_the_admin_token_is_checked_before_the_worker_refusal(
    monkeypatch: pytest.MonkeyPatch, start_server: StartServer
) -> None:
    monkeypatch.setattr(workers, "_identity", workers.WorkerIdentity(index=1, count=2))
    server = start_server(admin_token="admin-Zq81")
    assert httpx.get(server.url + "/_mockllm/requests").status_code == 401
    authorized = {"Authorization": "Bearer admin-Zq81"}
    assert httpx.get(server.url + "/_mockllm/requests", headers=authorized).status_code == 409
