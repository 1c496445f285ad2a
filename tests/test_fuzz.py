"""Never a 500, never a traceback: seeded random request bodies and scenario documents against the real server."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import pytest

from mockllm import MockServer

VALUES: list[Any] = [
    None, True, 0, -1, 1.5, 10**30, "x", "", "\u0000", "\U0001f600", "\ud83d", [], {}, [1], ["a"], [None],
    [[1, 2]], [{}],
    {"a": 1}, {"include_usage": "yes"}, [{"role": "user"}], [{"type": "text", "text": 1}],
    [{"type": "function", "function": "x"}], [{"type": "function", "function": {"name": 1}}],
    [{"role": "assistant", "tool_calls": [{"id": 1, "function": {"name": "f", "arguments": 5}}]}],
]  # fmt: skip
PARAMETERS = [
    "model", "messages", "prompt", "input", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens",
    "stop", "tools", "logprobs", "top_logprobs", "echo", "temperature", "top_p", "dimensions", "encoding_format",
    "seed", "logit_bias", "user", "suffix", "best_of", "tool_choice", "response_format",
]  # fmt: skip
ROLES = ["user", "tool", "assistant", "system", "developer", "robot"]


def random_body(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": "hi",
        "input": "hi",
    }
    for key in rng.sample(PARAMETERS, rng.randint(1, 4)):
        body[key] = rng.choice(VALUES)
    if rng.random() < 0.3:
        message = {key: rng.choice(VALUES) for key in ("content", "tool_calls", "tool_call_id", "name")}
        body["messages"] = [{"role": rng.choice(ROLES), **message}]
    return body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"])
def test_malformed_bodies_get_a_4xx_never_a_500(start_server: Any, path: str) -> None:
    server: MockServer = start_server(fallback="echo")
    rng = random.Random(path)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(300):
            body = random_body(rng)
            response = client.post(path, content=json.dumps(body))
            assert response.status_code < 500, (body, response.text)
            assert "Traceback" not in response.text
            if response.status_code >= 400:
                assert response.json()["error"]["message"]


SCENARIO_KEYS = {
    "when": ["api", "model", "stream", "prompt", "system", "messages", "tools", "after_tool", "headers", "body",
             "turn"],
    "reply": ["text", "chunks", "reasoning", "refusal", "tool_calls", "finish_reason", "usage", "model", "headers",
              "choices", "vectors", "timing", "error", "fault"],
}  # fmt: skip
SCENARIO_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, "x", "", [], {}, [1], ["a"], {"contains": 1}, {"regex": "("}, {"glob": "*"}, "1s", "-1s",
    {"kind": "end"}, {"status": 429}, [{"name": "f"}], [{"text": "a"}], [[0.5, 0.5]],
]  # fmt: skip


def test_random_scenario_documents_are_accepted_or_explained(start_server: Any) -> None:
    server: MockServer = start_server()
    rng = random.Random(7)
    accepted = 0
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for _ in range(600):
            scenario: dict[str, Any] = {}
            for key in rng.sample(["id", "when", "reply", "replies", "then", "dialect"], rng.randint(1, 4)):
                keys = SCENARIO_KEYS.get(key)
                if keys is None:
                    scenario[key] = rng.choice(SCENARIO_VALUES)
                else:
                    scenario[key] = {k: rng.choice(SCENARIO_VALUES) for k in rng.sample(keys, rng.randint(0, 3))}
            response = client.post("/_mockllm/scenarios", content=json.dumps({"version": 1, "scenarios": [scenario]}))
            assert response.status_code in (201, 400, 409), response.text
            if response.status_code != 201:
                assert "Traceback" not in response.text
                continue
            accepted += 1
            for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
                body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "prompt": "x", "input": "x"}
                answer = client.post(path, json=body)
                assert answer.status_code < 500 or scenario.get("reply", {}).get("error") is not None, answer.text
            client.delete("/_mockllm/scenarios")
    assert accepted > 5  # some documents are valid, so replies get rendered too


def test_documents_and_bodies_nested_too_deeply_are_refused_clearly(start_server: Any) -> None:
    server: MockServer = start_server()
    deep = "[" * 1500 + "]" * 1500  # past the interpreter's recursion limit (1000)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post("/_mockllm/scenarios", content=f"version: 1\nscenarios: {deep}")
        assert response.status_code == 400
        assert "nests too deeply" in response.json()["error"]["message"]
        response = client.post("/v1/chat/completions", content='{"model": "m", "messages": ' + deep + "}")
        assert response.status_code == 400
        assert "could not parse the JSON body" in response.json()["error"]["message"]
        assert client.get("/_mockllm/requests").status_code == 200
