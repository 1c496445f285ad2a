"""Load and soak: mixed traffic against `mockllm serve` for a while, watching its memory, descriptors and tasks.

Usage: python bench/soak.py [--duration SECONDS | --quick] [--concurrency N] [--seed N]

Starts `python -m mockllm serve --reload` on 127.0.0.1 (loopback only) with a scenario folder it writes: every API
(chat, completions, responses, messages, embeddings), errors, faults (an error event mid-stream, a dropped
connection). A bounded pool of asyncio clients sends a seeded mix of requests, some malformed, some to unknown
routes, some hanging up mid-stream, while one edits a scenario file every two seconds so that the server reloads.
Every few seconds it samples the server's resident memory (/proc/PID/status), open descriptors (/proc/PID/fd) and
event-loop tasks (`tasks` in /_mockllm/health), and prints a row. At the end, a verdict: memory flat once the
journal (bounded by --journal-size) is full, no descriptor or task leak once the load stops, every request answered.
Exit code 0 when all hold, 1 otherwise. Ten minutes by default; `--quick` is one minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SCENARIOS = """
version: 1
scenarios:
  - id: limited
    when: {prompt: {contains: limit}}
    reply: {error: {status: 429}}
  - id: overloaded
    when: {prompt: {contains: overload}}
    reply: {error: {status: 529}}
  - id: broken
    when: {prompt: {contains: break}}
    reply: {text: "half an answer and then an error event", fault: {kind: error_event, after: 3}}
  - id: dropped
    when: {prompt: {contains: drop}}
    reply: {text: "half an answer and then the connection drops", fault: {kind: disconnect, after: 3}}
  - id: chat
    when: {api: chat, prompt: {contains: hello}}
    reply: {text: "Hello there, this is a short answer in a few chunks.", timing: {ttft: 5ms, chunk: 1ms}}
  - id: completions
    when: {api: completions}
    reply: {text: "A completion of modest length.", timing: {ttft: 2ms, chunk: 1ms}}
  - id: responses
    when: {api: responses}
    reply: {text: "An answer from the Responses API.", timing: {ttft: 2ms, chunk: 1ms}}
  - id: messages
    when: {api: messages}
    reply: {text: "An answer from Anthropic's Messages API.", timing: {ttft: 2ms, chunk: 1ms}}
"""
EDITED = """
version: 1
scenarios:
  - id: edited
    when: {{prompt: {{contains: edited}}}}
    reply: {{text: "edit number {number}"}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Tally:
    """What the clients saw: outcomes by kind, and the requests that got no answer at all."""

    outcomes: Counter[str] = field(default_factory=Counter)
    unanswered: list[str] = field(default_factory=list)
    sent: int = 0


def chat(prompt: str, stream: bool) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": stream}


# (name, method, path, body (dict, or bytes sent as they are), what reading it means)
REQUESTS: list[tuple[str, str, str, dict[str, Any] | bytes, str]] = [
    ("chat-stream", "POST", "/v1/chat/completions", chat("hello", True), "read"),
    ("chat", "POST", "/v1/chat/completions", chat("hello", False), "read"),
    ("completions", "POST", "/v1/completions", {"model": "m", "prompt": "p", "stream": True}, "read"),
    ("responses", "POST", "/v1/responses", {"model": "gpt-4o", "input": "hi", "stream": True}, "read"),
    ("messages", "POST", "/v1/messages",
     {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
      "stream": True}, "read"),
    ("embeddings", "POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]}, "read"),
    ("error-429", "POST", "/v1/chat/completions", chat("limit", False), "read"),
    ("error-529", "POST", "/v1/messages",
     {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "overload"}]}, "read"),
    ("fault-event", "POST", "/v1/chat/completions", chat("break", True), "read"),
    ("fault-drop", "POST", "/v1/chat/completions", chat("drop", True), "dropped"),
    ("hang-up", "POST", "/v1/chat/completions", chat("hello", True), "hang-up"),
    ("bad-json", "POST", "/v1/chat/completions", b'{"model": ', "read"),
    ("miss", "POST", "/v1/chat/completions", chat("nothing matches this", False), "read"),
    ("unknown-route", "GET", "/v2/nothing", b"", "read"),
    ("edited", "POST", "/v1/chat/completions", chat("edited", False), "read"),
]  # fmt: skip


async def one_request(client: httpx.AsyncClient, rng: random.Random, tally: Tally) -> None:
    name, method, path, body, how = rng.choice(REQUESTS)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    tally.sent += 1
    try:
        async with client.stream(method, path, content=content) as response:
            if how == "hang-up":
                async for _ in response.aiter_raw():
                    break  # the first chunk, then close the connection mid-stream
            else:
                await response.aread()
            tally.outcomes[f"{name} {response.status_code}"] += 1
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        if how == "dropped":
            tally.outcomes[f"{name} dropped as scripted"] += 1
        else:
            tally.unanswered.append(f"{name}: {type(exc).__name__}: {exc}")
    except httpx.HTTPError as exc:
        tally.unanswered.append(f"{name}: {type(exc).__name__}: {exc}")


async def worker(url: str, seed: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            await one_request(client, rng, tally)


async def editor(folder: Path, deadline: float) -> int:
    """Rewrite one scenario file every two seconds (the server reloads it); returns the number of edits."""
    number = 0
    while time.monotonic() < deadline:
        number += 1
        (folder / "edited.yaml").write_text(EDITED.format(number=number))
        await asyncio.sleep(2)
    return number


def sample(pid: int, url: str) -> dict[str, int]:
    """The server's resident memory (kB), open descriptors and event-loop tasks."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    tasks = int(httpx.get(url + "/_mockllm/health", timeout=10).json()["tasks"])
    return {"rss_kb": rss, "fds": fds, "tasks": tasks}


class Server:
    """`python -m mockllm serve` on 127.0.0.1 in a child process; its output read by a thread."""

    def __init__(self, folder: Path, journal_size: int) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "mockllm", "serve", str(folder), "--host", "127.0.0.1", "--port", str(port),
                "--reload", "--journal-size", str(journal_size), "--log-level", "warning"]  # fmt: skip
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 30
        while True:  # --log-level warning keeps the request log quiet, and the start-up line too: poll health
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = "\n".join(self.lines.get() for _ in range(self.lines.qsize()))
                raise SystemExit(f"mockllm serve did not start:\n{output}")
            try:
                httpx.get(self.url + "/_mockllm/health", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(30)


def row(elapsed: float, figures: dict[str, int], done: int) -> str:
    return f"{elapsed:7.0f} {figures['rss_kb'] / 1024:9.1f} {figures['fds']:5d} {figures['tasks']:6d} {done:10d}"


async def soak(duration: float, concurrency: int, seed: int, journal_size: int) -> int:
    with tempfile.TemporaryDirectory(prefix="mockllm-soak-") as temporary:
        folder = Path(temporary)
        (folder / "scenarios.yaml").write_text(SCENARIOS)
        (folder / "edited.yaml").write_text(EDITED.format(number=0))
        server = Server(folder, journal_size)
        try:
            return await _drive(server, folder, duration, concurrency, seed)
        finally:
            code = server.stop()
            if code != 0:
                print(f"mockllm serve exited with {code}")


async def _drive(server: Server, folder: Path, duration: float, concurrency: int, seed: int) -> int:
    pid = server.process.pid
    before = sample(pid, server.url)
    print(f"soak: {duration:.0f} s, {concurrency} clients, seed {seed}, server pid {pid} at {server.url}")
    print(f"{'seconds':>7} {'RSS (MB)':>9} {'fds':>5} {'tasks':>6} {'requests':>10}")
    print(row(0, before, 0))
    started = time.monotonic()
    deadline = started + duration
    tally = Tally()
    load = [asyncio.create_task(worker(server.url, seed * 1000 + n, deadline, tally)) for n in range(concurrency)]
    edits = asyncio.create_task(editor(folder, deadline))
    interval = min(30.0, max(1.0, duration / 20))
    samples: list[tuple[float, dict[str, int]]] = []
    while time.monotonic() < deadline:
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        figures = await asyncio.to_thread(sample, pid, server.url)
        samples.append((time.monotonic() - started, figures))
        print(row(samples[-1][0], figures, tally.sent))
    await asyncio.gather(*load)
    edit_count = await edits
    await asyncio.sleep(1)  # let the server close what the last clients left
    after = await asyncio.to_thread(sample, pid, server.url)
    print(row(time.monotonic() - started, after, tally.sent) + "  (load stopped)")
    return verdict(before, samples, after, tally, edit_count, duration)


def verdict(
    before: dict[str, int],
    samples: list[tuple[float, dict[str, int]]],
    after: dict[str, int],
    tally: Tally,
    edits: int,
    duration: float,
) -> int:
    """Print the outcomes and the verdict; 0 when every check holds."""
    answered = sum(tally.outcomes.values())
    print(f"\n{tally.sent} requests, {answered} answered, {len(tally.unanswered)} unanswered, {edits} scenario edits")
    for outcome, count in sorted(tally.outcomes.items()):
        print(f"  {count:8d}  {outcome}")
    for problem in tally.unanswered[:10]:
        print(f"  unanswered: {problem}")
    # The journal fills in the first seconds; memory is compared from the first quarter of the run to the end.
    warm = [figures for at, figures in samples if at >= duration / 4] or [after]
    growth_mb = (max(f["rss_kb"] for f in warm[len(warm) // 2 :]) - warm[0]["rss_kb"]) / 1024
    checks = {
        f"memory flat after the journal filled (+{growth_mb:.1f} MB from {duration / 4:.0f} s on; limit 10 MB)": (
            growth_mb <= 10
        ),
        f"no descriptor leak ({before['fds']} before the load, {after['fds']} after; limit +4)": (
            after["fds"] <= before["fds"] + 4
        ),
        f"no task leak ({before['tasks']} before the load, {after['tasks']} after; limit +2)": (
            after["tasks"] <= before["tasks"] + 2
        ),
        f"every request answered ({answered} of {tally.sent})": answered == tally.sent and not tally.unanswered,
    }
    for text, held in checks.items():
        print(f"{'ok  ' if held else 'FAIL'} {text}")
    passed = all(checks.values())
    print(f"verdict: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default: 600)")
    parser.add_argument("--quick", action="store_true", help="one minute (the CI smoke variant)")
    parser.add_argument("--concurrency", type=int, default=20, help="clients at once (default: 20)")
    parser.add_argument("--seed", type=int, default=16, help="seed of the request mix (default: 16)")
    parser.add_argument("--journal-size", type=int, default=1000, help="the server's journal bound (default: 1000)")
    args = parser.parse_args(argv)
    duration = 60.0 if args.quick else args.duration
    return asyncio.run(soak(duration, args.concurrency, args.seed, args.journal_size))


if __name__ == "__main__":
    sys.exit(main())
