"""Rendering of chat streams: every frame is exactly what `compact` JSON of its payload would be."""

from __future__ import annotations

import json

import pytest

from mockllm.loading import load_text
from mockllm.protocols import openai_chat
from mockllm.protocols.base import compact, plan_reply

TRICKY = [
    "plain",
    ' "quoted"',
    "back\\slash",
    "new\nline",
    "tab\t",
    "\u0000\u001f",
    "é ü 日本",
    "\U0001f600",
    "</script>",
]


@pytest.mark.parametrize("dialect", ["openai", "vllm"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_spliced_frames_equal_compact_json(dialect: str, include_usage: bool) -> None:
    document = {
        "version": 1,
        "scenarios": [
            {"reply": {"choices": [{"chunks": TRICKY}, {"refusal": "No \"thanks\" é"}, {"text": "Hi", "tool_calls": [
                {"name": "f", "arguments": {"q": "ü\n"}}]}]}},
        ],
    }  # fmt: skip
    (scenario,) = load_text(json.dumps(document))
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True, "n": 3}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    request = openai_chat.parse(body, {})
    frames = openai_chat.render_stream(plan_reply(scenario.sequence[0], request), request, dialect)
    for frame in frames[:-1]:
        assert frame.data.startswith(b"data: ")
        assert frame.data.endswith(b"\n\n")
        payload = json.loads(frame.data[len(b"data: ") : -2])
        assert frame.data == b"data: " + compact(payload) + b"\n\n"
    texts = [
        chunk["choices"][0]["delta"].get("content")
        for chunk in (json.loads(f.data[6:-2]) for f in frames[:-1])
        if chunk["choices"] and chunk["choices"][0]["index"] == 0
    ]
    assert "".join(t for t in texts if t) == "".join(TRICKY)
