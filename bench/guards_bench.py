"""Figures for the README's "Guarantees": how fast the guards answer bad input, slow clients and hostile documents.

    python bench/guards_bench.py

Runs a `MockServer` on a free port of 127.0.0.1 (`--request-timeout 1`, `--fallback lorem`) and times, from the
client: a 413 for an 11 MiB body and for a 100 MiB chunked upload, the close of an unfinished request, a lorem reply
to `max_tokens: 1e9`, catastrophic regex searches, and the refusal of a "billion laughs" document.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import httpx

from mockllm import MockServer, regex_guard
from mockllm.loading import ScenarioError, load_text


def _chunks(total: int, size: int = 65536) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


def _timed(label: str, started: float, detail: object = "") -> None:
    print(f"{label:<48} {time.perf_counter() - started:8.3f}s  {detail}")


def main() -> None:
    with MockServer(time_scale=0, request_timeout=1.0, fallback="lorem") as server:
        url = server.openai_base_url + "/chat/completions"
        started = time.perf_counter()
        response = httpx.post(url, content=b" " * (11 * 2**20), timeout=60)
        _timed("413 for an 11 MiB body (content-length)", started, response.status_code)
        started = time.perf_counter()
        response = httpx.post(url, content=_chunks(100 * 2**20), timeout=60)
        _timed("413 for a 100 MiB chunked upload", started, response.status_code)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            started = time.perf_counter()
            head = sock.recv(100).split(b"\r\n", 1)[0].decode()
            _timed("unfinished request closed (--request-timeout 1)", started, head)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9}
        started = time.perf_counter()
        usage = httpx.post(url, json=body, timeout=60).json()["usage"]
        _timed("lorem reply to max_tokens=1e9", started, f"{usage['completion_tokens']} tokens")
    for pattern, text in (("(a|aa)+$", "a" * 60 + "b"), (".*a.*b.*x", "ab" * 20_000)):
        started = time.perf_counter()
        found = regex_guard.search(re.compile(pattern), text)
        _timed(f"regex {pattern} on {len(text)} characters", started, f"matched={found}")
    for label in ("a search through the helper (a new helper)", "a search through the helper (warm)"):
        started = time.perf_counter()
        regex_guard.search(re.compile("a.*b|c"), "xx ab")
        _timed(label, started)
    lines = ['  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    started = time.perf_counter()
    try:
        load_text("version: 1\nscenarios: []\nx:\n" + "\n".join(lines) + "\n", "laughs.yaml")
    except ScenarioError:
        _timed("billion laughs (9 levels of 9) refused", started)


if __name__ == "__main__":
    main()
