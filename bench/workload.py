"""The streams every server under test answers, and the files that teach them to mockllm and aimock.

A stream is chosen by its prompt: one role chunk, `chunks` content chunks (`t00 `, `t01 `, ...), a finish chunk and
`data: [DONE]`, so `chunks + 3` SSE events. A paced stream's first content chunk is due `ttft` after the request
arrives and each next one `gap` later; the role chunk goes out with the first content chunk and the finish chunk
and `[DONE]` with the last, as mockllm schedules them (`mockllm/pacing.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MODEL = "gpt-4o-mini"
HEAD_EVENTS = 1  # the role chunk
TAIL_EVENTS = 2  # the finish chunk and `data: [DONE]`


@dataclass(frozen=True, slots=True)
class Stream:
    """One kind of chat stream: the prompt that selects it, its content chunk count and its schedule (seconds)."""

    prompt: str
    chunks: int
    ttft: float = 0.0
    gap: float = 0.0

    @property
    def paced(self) -> bool:
        return self.ttft > 0 or self.gap > 0

    @property
    def events(self) -> int:
        return HEAD_EVENTS + self.chunks + TAIL_EVENTS

    @property
    def last(self) -> float:
        """When the last content chunk is due."""
        return self.ttft + (self.chunks - 1) * self.gap

    def texts(self) -> list[str]:
        """The content chunks, all of one width (`t00 `, `t01 `, ...) so that aimock splits them the same."""
        digits = len(str(self.chunks - 1))
        return [f"t{index:0{digits}d} " for index in range(self.chunks)]


FAST = Stream("fast stream", 50)
PACED = Stream("paced stream", 50, ttft=0.1, gap=0.02)


def slow_stream(chunks: int, gap: float) -> Stream:
    """The long-lived stream of the memory section: one chunk every `gap` seconds, the first after `gap`."""
    return Stream("slow stream", chunks, ttft=gap, gap=gap)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


def mockllm_scenarios(streams: list[Stream]) -> str:
    """A mockllm scenario file answering each stream's prompt with its chunks and timing."""
    lines = ["version: 1", "scenarios:"]
    for index, stream in enumerate(streams):
        lines += [
            f"  - id: bench-{index}",
            f"    when: {{prompt: {json.dumps(stream.prompt)}}}",
            "    reply:",
            f"      chunks: {json.dumps(stream.texts())}",
        ]
        if stream.paced:
            lines.append(f"      timing: {{ttft: {_ms(stream.ttft)}, chunk: {_ms(stream.gap)}}}")
    return "\n".join(lines) + "\n"


def aimock_fixtures(streams: list[Stream]) -> str:
    """An aimock fixture file for the same streams.

    aimock splits `content` into `chunkSize` characters, so the chunks are the same. Its `streamingProfile` delays
    the role chunk by `ttft` and every later chunk (the finish chunk too) by `1000 / tps` ms after the one before
    (relative timers, `dist/sse-writer.js`): a `ttft` of our ttft minus one gap puts the first content chunk on
    our schedule; its finish chunk then comes one gap after the last content chunk.
    """
    fixtures = []
    for stream in streams:
        texts = stream.texts()
        fixture: dict[str, object] = {
            "match": {"userMessage": stream.prompt},
            "response": {"content": "".join(texts)},
            "chunkSize": len(texts[0]),
        }
        if stream.paced:
            fixture["streamingProfile"] = {"ttft": max(0.0, stream.ttft - stream.gap) * 1000, "tps": 1 / stream.gap}
        fixtures.append(fixture)
    return json.dumps({"fixtures": fixtures}, indent=1)


def request_body(prompt: str, model: str = MODEL, stream: bool = True) -> bytes:
    """The chat request the load generator sends."""
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    return json.dumps(body, separators=(",", ":")).encode()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path
