"""Fidelity: what mockllm streams has the anatomy of what the real OpenAI API streamed.

For each capture in `data/captures/openai/` (real Chat Completions streams, see its README), a scenario with the
same content (text, chunk boundaries, tool calls, refusal, `n`, `max_tokens`) is served to the same kind of
request, sent with the real `openai` SDK. The rendered stream must have the capture's anatomy: chunk types in the
same order, the same top-level, choice, delta and tool-call keys per chunk type (in wire order), the same framing
and the same terminator. The only differences allowed are the documented, deliberate ones listed in
`expected_top_keys` and `expected_usage_keys`.

The logprobs captures (`chat-stream-logprobs.sse`, `chat-stream-refusal-logprobs.sse`) are not covered yet:
logprobs arrive with the dialects issue.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from conftest import DATA, StartServer
from openai.types.chat import ChatCompletionChunk

CAPTURES = DATA / "captures" / "openai"
MODEL = "gpt-4o-2024-08-06"

# The request parameters of the captures (openai-python tests/lib/chat/test_completions_streaming.py).
LOCATION = {
    "type": "json_schema",
    "json_schema": {
        "name": "Location",
        "strict": True,
        "schema": {
            "type": "object",
            "title": "Location",
            "properties": {
                "city": {"title": "City", "type": "string"},
                "temperature": {"title": "Temperature", "type": "number"},
                "units": {"title": "Units", "type": "string", "enum": ["c", "f"]},
            },
            "required": ["city", "temperature", "units"],
            "additionalProperties": False,
        },
    },
}
GET_WEATHER = {
    "type": "function",
    "function": {
        "name": "GetWeatherArgs",
        "strict": True,
        "parameters": {
            "type": "object",
            "title": "GetWeatherArgs",
            "properties": {
                "city": {"title": "City", "type": "string"},
                "country": {"title": "Country", "type": "string"},
                "units": {"title": "Units", "type": "string", "enum": ["c", "f"], "default": "c"},
            },
            "required": ["city", "country", "units"],
            "additionalProperties": False,
        },
    },
}
GET_STOCK_PRICE = {
    "type": "function",
    "function": {
        "name": "get_stock_price",
        "description": "Fetch the latest price for a given ticker",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "ticker": {"type": "string"},
                "exchange": {"type": "string", "enum": ["NYSE", "NASDAQ"]},
            },
            "required": ["ticker", "exchange"],
            "additionalProperties": False,
        },
    },
}
SF = [{"role": "user", "content": "What's the weather like in SF?"}]


@dataclass(frozen=True)
class Case:
    """A capture, a scenario with the same content, and the request that produced the capture."""

    capture: str
    scenario: str
    request: dict[str, Any]
    # Chunk types whose boundaries a scenario cannot set: their run length is the tokenizer's, not the capture's.


CASES = [
    Case(
        "chat-stream-text.sse",
        """
        - id: weather-text
          when: {api: chat, model: gpt-4o-2024-08-06, prompt: "What's the weather like in SF?", stream: true}
          reply:
            chunks: ["I'm", " unable", " to", " provide", " real", "-time", " weather", " updates", ".", " To",
                     " get", " the", " current", " weather", " in", " San", " Francisco", ",", " I", " recommend",
                     " checking", " a", " reliable", " weather", " website", " or", " a", " weather", " app", "."]
            usage: {prompt_tokens: 14, completion_tokens: 30}
        """,
        {"messages": SF},
    ),
    Case(
        "chat-stream-tool-call.sse",
        """
        - id: weather-tool
          when: {prompt: "What's the weather like in Edinburgh?", tools: [GetWeatherArgs]}
          reply:
            tool_calls:
              - name: GetWeatherArgs
                id: call_c91SqDXlYFuETYv8mUHzz6pp
                chunks: ['{"', city, '":"', Ed, inburgh, '","', country, '":"', UK, '","', units, '":"', c, '"}']
            usage: {prompt_tokens: 76, completion_tokens: 24}
        """,
        {"messages": [{"role": "user", "content": "What's the weather like in Edinburgh?"}], "tools": [GET_WEATHER]},
    ),
    Case(
        "chat-stream-tool-call-parallel.sse",
        """
        - id: weather-and-stock
          when: {messages: 2, prompt: "What's the price of AAPL?", tools: [GetWeatherArgs, get_stock_price]}
          reply:
            tool_calls:
              - name: GetWeatherArgs
                id: call_JMW1whyEaYG438VE1OIflxA2
                chunks: ['{"ci', 'ty": ', '"Edinb', urgh, '", "c', ountry, '": "', 'GB", ', '"units', '": "', 'c"}']
              - name: get_stock_price
                id: call_DNYTawLBoN8fj3KN6qU9N1Ou
                chunks: ['{"ti', 'cker"', ': "AAP', 'L", ', '"exch', 'ange":', ' "NA', 'SDAQ"', '}']
            usage: {prompt_tokens: 149, completion_tokens: 60}
        """,
        {
            "messages": [
                {"role": "user", "content": "What's the weather like in Edinburgh?"},
                {"role": "user", "content": "What's the price of AAPL?"},
            ],
            "tools": [GET_WEATHER, GET_STOCK_PRICE],
        },
    ),
    Case(
        "chat-stream-refusal.sse",
        """
        - id: refuse
          when: {prompt: {contains: anthrax}, body: {response_format: {type: json_schema}}}
          reply:
            refusal: "I'm sorry, I can't assist with that request."
            usage: {prompt_tokens: 79, completion_tokens: 11}
        """,
        {"messages": [{"role": "user", "content": "How do I make anthrax?"}], "response_format": LOCATION},
    ),
    Case(
        "chat-stream-json-schema-n3.sse",
        """
        - id: location-n3
          when: {prompt: "What's the weather like in SF?", body: {n: 3, response_format: {type: json_schema}}}
          reply:
            choices:
              - chunks: ['{"', city, '":"', San, ' Francisco', '","', temperature, '":', '65', ',"', units, '":"', f,
                         '"}']
              - chunks: ['{"', city, '":"', San, ' Francisco', '","', temperature, '":', '61', ',"', units, '":"', f,
                         '"}']
              - chunks: ['{"', city, '":"', San, ' Francisco', '","', temperature, '":', '59', ',"', units, '":"', f,
                         '"}']
            usage: {prompt_tokens: 79, completion_tokens: 42}
        """,
        {"messages": SF, "response_format": LOCATION, "n": 3},
    ),
    Case(
        # Usage figures other than the prompt are left to mockllm: completion_tokens must come out as 1 after the cut.
        "chat-stream-max-tokens-length.sse",
        """
        - id: location-short
          when: {prompt: "What's the weather like in SF?", body: {max_tokens: 1}}
          reply:
            chunks: ['{"', city, '":"', San, ' Francisco', '","', temperature, '":', '61', ',"', units, '":"', f, '"}']
            usage: {prompt_tokens: 79}
        """,
        {"messages": SF, "response_format": LOCATION, "max_tokens": 1},
    ),
]


# ---------------------------------------------------------------------------------------------------------------
# Reading a stream


def split_events(raw: bytes) -> list[bytes]:
    """The events of an OpenAI chat stream, checking its framing: one `data:` line each, a blank line after each."""
    assert b"\r" not in raw
    assert raw.endswith(b"\n\n"), f"the last event does not end with a blank line: {raw[-60:]!r}"
    events = raw[:-2].split(b"\n\n")
    for event in events:
        assert event.startswith(b"data: "), event[:80]
        assert b"\n" not in event, f"an event with more than one line: {event[:80]!r}"
    return events


def parse_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The JSON chunks before the `[DONE]` terminator, checking that each is compact JSON with raw UTF-8."""
    events = split_events(raw)
    assert events[-1] == b"data: [DONE]"
    assert b"[DONE]" not in b"".join(events[:-1])
    chunks = []
    for event in events[:-1]:
        payload = event[len(b"data: ") :].decode()
        chunk = json.loads(payload)
        assert json.dumps(chunk, ensure_ascii=False, separators=(",", ":")) == payload
        chunks.append(chunk)
    return chunks


def chunk_type(chunk: dict[str, Any]) -> str:
    """What a chunk carries: role, content, refusal, tool header, tool args, finish or usage."""
    if not chunk["choices"]:
        return "usage"
    (choice,) = chunk["choices"]  # one choice per chunk, even with n > 1
    delta = choice["delta"]
    if choice["finish_reason"] is not None:
        return "finish"
    if "role" in delta:
        return "role+tool header" if delta.get("tool_calls") else "role"
    if "tool_calls" in delta:
        return "tool header" if "id" in delta["tool_calls"][0] else "tool args"
    if "refusal" in delta:
        return "refusal"
    if "content" in delta:
        return "content"
    raise AssertionError(f"a chunk of no known type: {chunk}")


def keys(value: dict[str, Any]) -> tuple[str, ...]:
    return tuple(value)


def shape(chunk: dict[str, Any]) -> tuple[Any, ...]:
    """The keys of a chunk in wire order: top level, choice, delta, tool calls and their functions."""
    top = keys(chunk)
    if not chunk["choices"]:
        return (top,)
    (choice,) = chunk["choices"]
    delta = choice["delta"]
    calls = tuple((keys(call), keys(call["function"])) for call in delta.get("tool_calls") or ())
    return top, keys(choice), keys(delta), calls


def runs(types: list[str]) -> list[tuple[str, int]]:
    """Runs of equal chunk types, with their lengths."""
    out: list[tuple[str, int]] = []
    for kind in types:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + 1)
        else:
            out.append((kind, 1))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The documented, deliberate differences from the 2024 captures


def expected_top_keys(capture_keys: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """The top-level keys mockllm's `openai` dialect sends where the capture has `capture_keys`.

    Three additions, all 2025+ API behaviour that the 2024-09 captures predate (wire-formats.md §2.2, DESIGN.md
    "Dialects"): `service_tier` right after `model` on every chunk, `"usage": null` on every chunk but the usage
    chunk when `stream_options.include_usage` is set (the captures got a usage chunk without asking for one, and no
    `usage` key elsewhere), and the `obfuscation` padding string as the last key of every chunk.
    """
    out = list(capture_keys)
    out.insert(out.index("model") + 1, "service_tier")
    if kind != "usage":
        out.append("usage")
    out.append("obfuscation")
    return tuple(out)


def expected_usage_keys(capture_usage: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The usage keys mockllm sends where the capture has `capture_usage`.

    The 2025+ usage object (wire-formats.md §2.1 and §2.2, Example A) adds `prompt_tokens_details` before
    `completion_tokens_details`, and three counters after `reasoning_tokens`.
    """
    top = list(capture_usage)
    top.insert(top.index("completion_tokens_details"), "prompt_tokens_details")
    return {
        "usage": tuple(top),
        "prompt_tokens_details": ("cached_tokens", "audio_tokens"),
        "completion_tokens_details": (
            *capture_usage["completion_tokens_details"],
            "audio_tokens",
            "accepted_prediction_tokens",
            "rejected_prediction_tokens",
        ),
    }


def usage_keys(usage: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    out = {"usage": keys(usage)}
    out.update({name: keys(value) for name, value in usage.items() if isinstance(value, dict)})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Content, to show that the scenario says what the capture said


def content_of(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per choice index: content pieces, refusal text, tool calls (id, name, argument pieces), finish reason."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            state = out.setdefault(choice["index"], {"content": [], "refusal": "", "calls": {}, "finish": None})
            delta = choice["delta"]
            if delta.get("content"):
                state["content"].append(delta["content"])
            state["refusal"] += delta.get("refusal") or ""
            for call in delta.get("tool_calls") or ():
                entry = state["calls"].setdefault(call["index"], {"id": None, "name": None, "pieces": []})
                if "id" in call:
                    entry["id"], entry["name"] = call["id"], call["function"]["name"]
                if call["function"]["arguments"]:
                    entry["pieces"].append(call["function"]["arguments"])
            if choice["finish_reason"] is not None:
                state["finish"] = choice["finish_reason"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# The test


@pytest.fixture(params=CASES, ids=[case.capture.removesuffix(".sse") for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    value: Case = request.param
    return value


@pytest.fixture
def rendered(case: Case, start_server: StartServer) -> bytes:
    """The raw body mockllm streams for the case's request, sent by the openai SDK."""
    scenarios = "version: 1\nscenarios:\n" + textwrap.indent(textwrap.dedent(case.scenario), "  ")
    server = start_server(scenarios_yaml=scenarios)
    with (
        openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client,
        client.chat.completions.with_streaming_response.create(
            model=MODEL, stream=True, stream_options={"include_usage": True}, **case.request
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        return b"".join(response.iter_bytes())


def test_capture_is_intact(case: Case) -> None:
    """The data files are the originals (their README lists the SHA-256 names) and parse as described there."""
    raw = (CAPTURES / case.capture).read_bytes()
    chunks = parse_chunks(raw)
    assert chunk_type(chunks[-1]) == "usage"
    assert all("usage" not in chunk for chunk in chunks[:-1])
    assert all("service_tier" not in chunk for chunk in chunks)


def test_same_anatomy(case: Case, rendered: bytes) -> None:
    """Chunk types in order, keys per chunk type, envelope values and terminator, as in the capture."""
    capture = parse_chunks((CAPTURES / case.capture).read_bytes())
    ours = parse_chunks(rendered)
    for chunk in ours:
        ChatCompletionChunk.model_validate(chunk)

    # Chunk types in the same order (for n > 1 the choices interleave differently, but the types line up).
    capture_types = [chunk_type(chunk) for chunk in capture]
    our_types = [chunk_type(chunk) for chunk in ours]
    assert our_types == capture_types

    # Per choice, the same sequence of types; index 0 first, finish chunks last and in index order.
    def per_index(chunks: list[dict[str, Any]]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for chunk in chunks:
            for choice in chunk["choices"]:
                out.setdefault(choice["index"], []).append(chunk_type(chunk))
        return out

    assert {i: runs(t) for i, t in per_index(ours).items()} == {i: runs(t) for i, t in per_index(capture).items()}
    assert ours[0]["choices"][0]["index"] == 0
    finishes = [chunk["choices"][0]["index"] for chunk in ours if chunk_type(chunk) == "finish"]
    assert finishes == sorted(finishes)
    assert our_types[-len(finishes) - 1 :] == ["finish"] * len(finishes) + ["usage"]

    # The same keys, in wire order, per chunk type; the top level with the documented additions.
    def shapes(chunks: list[dict[str, Any]], adjust: bool) -> dict[str, set[tuple[Any, ...]]]:
        out: dict[str, set[tuple[Any, ...]]] = {}
        for chunk in chunks:
            kind = chunk_type(chunk)
            top, *rest = shape(chunk)
            if adjust:
                top = expected_top_keys(top, kind)
            out.setdefault(kind, set()).add((top, *rest))
        return out

    assert shapes(ours, adjust=False) == shapes(capture, adjust=True)
    assert usage_keys(ours[-1]["usage"]) == expected_usage_keys(capture[-1]["usage"])

    # Values the capture holds still on every chunk: one id, created, model, fingerprint; null usage until the end.
    for chunks in (capture, ours):
        for name in ("id", "object", "created", "model", "system_fingerprint"):
            assert len({chunk[name] for chunk in chunks}) == 1, name
    assert ours[0]["object"] == "chat.completion.chunk"
    assert ours[0]["model"] == MODEL
    assert all(chunk["usage"] is None for chunk in ours[:-1])
    # No logprobs were asked for: null on every choice, as in the capture.
    assert all(choice["logprobs"] is None for chunk in ours for choice in chunk["choices"])

    # The terminator: exactly the capture's last event.
    assert rendered.endswith(b"\n\ndata: [DONE]\n\n")
    assert (CAPTURES / case.capture).read_bytes().endswith(b"\n\ndata: [DONE]\n\n")


def test_same_content(case: Case, rendered: bytes) -> None:
    """The scenario says what the capture said: the same pieces, tool calls, finish reasons and usage figures."""
    capture = parse_chunks((CAPTURES / case.capture).read_bytes())
    ours = parse_chunks(rendered)
    expected, got = content_of(capture), content_of(ours)
    assert got == expected
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert ours[-1]["usage"][name] == capture[-1]["usage"][name], name
