"""How mockllm scales in scenarios: load, select, explain a miss, `mockllm check` and server start at 10,000.

    python bench/scale_bench.py [--count 10000] [--repeat 3] [--keep DIR] [--skip-processes]

Writes a folder of scenarios shaped like a real project's after months of recording. Hand-written files: most
scenarios with an exact prompt and an exact model, some with `api`, some `contains`, `regex` or `glob` conditions,
some with no prompt condition, sequences, tool calls and their `after_tool` answers. A `recordings/` folder: one
recorded exchange a file, as `mockllm serve --record missing --out DIR` writes them; a sixth of the scenarios. The
recordings sort after the hand-written files, so the last scenario loaded is a recording.

Then it times, in this process: loading the folder, building the index, selecting for a request that only the last
scenario answers (a recording, and the last hand-written one), a miss and its explanation; and, as child processes,
`mockllm check DIR` and `mockllm serve DIR --port 0` until `/_mockllm/health` answers (as is, and with
`loading.settle_heap()` after loading). Loads and child processes run `--repeat` times: the best wall-clock time is
shown, and the best CPU time, a steadier figure when other work shares the machine. Selections are medians. Figures
depend on the machine; compare runs on the same one. The script runs against older versions of mockllm too (without
`settle_heap`), for before-and-after figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from mockllm import loading
from mockllm.loading import load_scenarios
from mockllm.matching import Scenarios
from mockllm.protocols import openai_chat
from mockllm.protocols.base import ParsedRequest

FILE_SIZE = 500  # hand-written scenarios a file
RECORDED_SHARE = 6  # one scenario in this many is a recording


def hand_written(index: int) -> dict[str, Any]:
    """The index-th hand-written scenario: a realistic mix of conditions, mostly exact."""
    kind = index % 20
    model = f"model-{index % 7}"
    prompt = f"question number {index}"
    when: dict[str, Any]
    scenario: dict[str, Any] = {"id": f"hand-{index}", "reply": {"text": f"Answer {index}."}}
    if kind <= 12:
        when = {"model": model, "prompt": prompt}
        if kind % 3 == 0:
            when = {"api": "chat", **when}
    elif kind == 13:
        when = {"prompt": {"contains": f"topic {index} please"}}
    elif kind == 14:
        when = {"model": model, "prompt": {"regex": f"^ask {index}:"}}
    elif kind == 15:
        when = {"model": model, "system": f"You are assistant {index}."}
    elif kind == 16:
        when = {"prompt": prompt}
        scenario["replies"] = [{"error": {"status": 429}}, {"text": f"Answer {index}."}]
        scenario["then"] = ("repeat-last", "cycle", "fall-through")[index % 3]
        del scenario["reply"]
    elif kind == 17:
        when = {"api": "messages", "model": "claude-x", "prompt": prompt}
    elif kind == 18:
        when = {"model": {"glob": "gpt-4o*"}, "prompt": prompt, "stream": True}
    elif index // 20 % 2:
        when = {"after_tool": f"get_weather_{index + 20}"}  # the answer to the next tool call, placed above it
        scenario["reply"] = {"text": "It is 12 degrees."}
    else:
        when = {"prompt": {"contains": f"weather {index}"}, "tools": [f"get_weather_{index}"]}
        scenario["reply"] = {"tool_calls": [{"name": f"get_weather_{index}", "arguments": {"city": "Oslo"}}]}
    scenario["when"] = when
    return scenario


def recorded_body(index: int) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": f"recorded question {index}"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
    }


def recording(index: int) -> dict[str, Any]:
    """A recording file as the recorder writes it: one scenario, the normalised request, the raw stream."""
    events = [
        {"data": json.dumps({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": f"word{n} "}}]}),
         "at": round(0.2 + n * 0.02, 3)}
        for n in range(8)
    ] + [{"data": "[DONE]", "at": 0.4}]  # fmt: skip
    return {
        "version": 1,
        "recorded": {"upstream": "https://api.openai.com", "date": "2025-01-01T00:00:00Z", "redact": []},
        "scenarios": [
            {
                "id": f"chat-{index:012x}",
                "when": {"api": "chat", "request": recorded_body(index)},
                "reply": {
                    "raw": {
                        "status": 200,
                        "headers": {"content-type": "text/event-stream; charset=utf-8", "x-request-id": f"req_{index}"},
                        "events": events,
                    }
                },
            }
        ],
    }


def write_folder(folder: Path, count: int) -> tuple[int, int]:
    """Write `count` scenarios; return the index of the last hand-written one and of the last recording."""
    recorded = count // RECORDED_SHARE
    written = count - recorded
    for start in range(0, written, FILE_SIZE):
        document = {"version": 1, "scenarios": [hand_written(i) for i in range(start, min(start + FILE_SIZE, written))]}
        (folder / f"hand-{start // FILE_SIZE:03d}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    (folder / "recordings").mkdir()
    for index in range(recorded):
        text = yaml.safe_dump(recording(index), sort_keys=False, allow_unicode=True, width=1 << 16)
        (folder / "recordings" / f"chat-{index:012x}.yaml").write_text(text)
    last_hand = max(i for i in range(written) if i % 20 <= 12)
    return last_hand, recorded - 1


def chat(body: dict[str, Any]) -> ParsedRequest:
    return openai_chat.parse(body, {})


def per_call(make: Callable[[], ParsedRequest], call: Callable[[ParsedRequest], object], rounds: int) -> float:
    """The median seconds of `call` on a freshly parsed request (a server parses every request anew; parsing is not
    timed)."""
    times = []
    for _ in range(rounds):
        request = make()
        started = time.perf_counter()
        call(request)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def show(label: str, seconds: float, detail: str = "") -> None:
    figure = f"{seconds * 1e6:10.1f} µs" if seconds < 0.01 else f"{seconds:10.3f} s "
    print(f"{label:<44} {figure}  {detail}", flush=True)


def show_timed(label: str, timings: list[tuple[float, float]]) -> None:
    """The best wall-clock time of several runs, and the best CPU time (a steadier figure on a busy machine)."""
    show(label, min(wall for wall, _ in timings), f"(CPU {min(cpu for _, cpu in timings):.3f} s)")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_check(folder: Path, timeout: float) -> tuple[float, float]:
    cpu = children_cpu()
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mockllm", "check", str(folder)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return float("inf"), float("inf")
    if done.returncode != 0:
        raise SystemExit(f"mockllm check failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started, children_cpu() - cpu


# `mockllm serve` with `loading.settle_heap()` called right after the files are loaded, as proposed for the serve path.
SETTLED = (
    "import sys, mockllm.loading as loading, mockllm.cli as cli\n"
    "load = loading.load_scenarios\n"
    "def settled(paths):\n"
    "    scenarios = load(paths)\n"
    "    loading.settle_heap()\n"
    "    return scenarios\n"
    "loading.load_scenarios = settled\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def time_serve(folder: Path, settled: bool) -> tuple[float, float]:
    """From starting `mockllm serve` to the first answer of `/_mockllm/health` (its CPU time counts until it exits:
    it is stopped at once)."""
    cpu = children_cpu()
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKLLM_")}
    command = [sys.executable, "-c", SETTLED] if settled else [sys.executable, "-m", "mockllm"]
    process = subprocess.Popen(
        [*command, "serve", str(folder), "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            found = re.search(r"on (http://\S+:\d+) ", line)
            if found:
                url = found.group(1)
                break
        if url is None:
            raise SystemExit(f"the server did not start (exit {process.wait()})")
        while True:
            try:
                httpx.get(url + "/_mockllm/health", timeout=5).raise_for_status()
                wall = time.perf_counter() - started
                break
            except httpx.TransportError:
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return wall, children_cpu() - cpu


def time_load(folder: Path) -> tuple[float, float]:
    gc.collect()
    cpu, started = time.process_time(), time.perf_counter()
    load_scenarios([folder])
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000, help="scenarios to generate (default 10000)")
    parser.add_argument("--keep", metavar="DIR", help="write the scenarios to DIR (kept) instead of a temporary folder")
    parser.add_argument("--rounds", type=int, default=1000, help="requests per timing (median reported)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of load, check and serve (the best is reported)")
    parser.add_argument("--check-timeout", type=float, default=600, help="give up on `mockllm check` after this long")
    parser.add_argument("--skip-processes", action="store_true", help="time neither `check` nor `serve`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            raise SystemExit(f"{folder} is not empty; give an empty or new folder to --keep")
        last_hand, last_recording = write_folder(folder, args.count)

        show_timed("load_scenarios", [time_load(folder) for _ in range(args.repeat)])
        loaded = load_scenarios([folder])
        settle = getattr(loading, "settle_heap", gc.freeze)  # what a server does before serving
        settle()
        started = time.perf_counter()
        scenarios = Scenarios(loaded)
        show("Scenarios(...): index built", time.perf_counter() - started, f"{len(loaded)} scenarios")

        def recorded_hit() -> ParsedRequest:
            return chat(recorded_body(last_recording))

        def hand_hit() -> ParsedRequest:
            prompt = f"question number {last_hand}"
            return chat({"model": f"model-{last_hand % 7}", "messages": [{"role": "user", "content": prompt}]})

        def miss() -> ParsedRequest:
            return chat({"model": "model-0", "messages": [{"role": "user", "content": "nobody asked this"}]})

        for make, wanted in ((recorded_hit, loaded[-1].name), (hand_hit, f"hand-{last_hand}")):
            selection = scenarios.select(make())
            name = selection.scenario.name if selection is not None else None
            if name != wanted:
                raise SystemExit(f"select picked {name}, not {wanted}")
        assert scenarios.select(miss()) is None
        rounds = args.rounds
        show("select: hit the last scenario (recording)", per_call(recorded_hit, scenarios.select, rounds), "median")
        show("select: hit the last hand-written one", per_call(hand_hit, scenarios.select, rounds), "median")
        show("select: miss", per_call(miss, scenarios.select, rounds), "median")
        show("explain_miss", per_call(miss, scenarios.explain_miss, max(3, rounds // 100)), "median")

        if not args.skip_processes:
            runs = range(args.repeat)
            show_timed("mockllm check DIR (child process)", [time_check(folder, args.check_timeout) for _ in runs])
            show_timed("mockllm serve DIR: start to first /health", [time_serve(folder, False) for _ in runs])
            if hasattr(loading, "settle_heap"):
                show_timed("  the same, with settle_heap() after loading", [time_serve(folder, True) for _ in runs])


if __name__ == "__main__":
    main()
