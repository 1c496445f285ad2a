"""Many scenarios: a file of N distinct ones, and the in-process cost of loading it and of matching its last one.

    python bench/matchtime.py FILE COUNT

prints one JSON object: `load_s` (`load_scenarios`), `parse_us` (parsing the chat request) and `match_us`
(`Scenarios.select` of a request only the last scenario matches, averaged over many calls, so every scenario
before it is tried and refused).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o3-mini", "claude-sonnet-4-5", "llama-3.1-8b"]


def model_of(index: int) -> str:
    return MODELS[index % len(MODELS)]


def prompt_of(index: int) -> str:
    return f"Question number {index}: what is the answer?"


def scenario_file(count: int, start: int = 0) -> str:
    """`count` scenarios, each with its own exact prompt and one of a few models, numbered from `start`."""
    lines = ["version: 1", "scenarios:"]
    for index in range(start, start + count):
        lines += [
            f"  - id: scenario-{index}",
            f"    when: {{model: {model_of(index)}, prompt: {json.dumps(prompt_of(index))}}}",
            f"    reply: {{text: {json.dumps(f'Answer number {index}.')}}}",
        ]
    return "\n".join(lines) + "\n"


def measure(path: Path, count: int) -> dict[str, float]:
    from mockllm.loading import load_scenarios
    from mockllm.matching import Scenarios
    from mockllm.protocols import openai_chat

    started = time.perf_counter()
    scenarios = Scenarios(load_scenarios([path]))
    load = time.perf_counter() - started
    last = count - 1
    body = {"model": model_of(last), "stream": True, "messages": [{"role": "user", "content": prompt_of(last)}]}
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    for _ in range(1000):
        request = openai_chat.parse(body, headers)
    parse = (time.perf_counter() - started) / 1000
    selection = scenarios.select(request)
    if selection is None or selection.scenario.name != f"scenario-{last}":
        raise SystemExit(f"the request for the last scenario matched {selection and selection.scenario.name}")
    calls = 0
    started = time.perf_counter()
    while calls < 5 or time.perf_counter() - started < 0.5:
        scenarios.select(request)
        calls += 1
    match = (time.perf_counter() - started) / calls
    return {"load_s": load, "parse_us": parse * 1e6, "match_us": match * 1e6, "calls": calls}


def main() -> None:
    path, count = Path(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(measure(path, count)))


if __name__ == "__main__":
    main()
