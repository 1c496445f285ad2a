"""Throughput and pacing accuracy of `mockllm serve`, measured from a separate client process.

Usage: python bench/serve_bench.py [--concurrency 10,100,300] [--workers N] [--connections C]

Starts `python -m mockllm serve` on a free port of 127.0.0.1 with a scenario of 100 chunks paced at 100 ms TTFT and
10 ms a chunk, opens N streams at once with httpx, and reports from the server's own journal how late each chunk
left against its deadline (never early: the deadlines are absolute). Then it measures unpaced streamed requests per
second, one connection after another, and over C connections at once from C client processes. Figures depend on
the machine; compare runs on the same one.

With `--workers N` (N > 1) the server runs N processes and its journal is per worker (the admin API refuses it):
the paced table then has wall times only. The throughput over C connections is what grows with the workers (give
C at least N, and leave cores for the client processes).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SCENARIOS = """
version: 1
scenarios:
  - id: paced
    when: {{prompt: paced}}
    reply:
      text: "{text}"
      timing: {{ttft: 100ms, chunk: 10ms}}
  - id: fast
    reply: {{text: "{text}"}}
"""
CHUNKS = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def body(prompt: str) -> dict[str, object]:
    return {"model": "m", "stream": True, "messages": [{"role": "user", "content": prompt}]}


async def paced(url: str, concurrency: int, journal: bool = True) -> tuple[float, list[float]]:
    """Wall time of `concurrency` paced streams at once, and how late each chunk left as the server's journal says
    (none without the `journal`: with several workers it is per worker, and the admin API refuses it)."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *[client.post(url + "/v1/chat/completions", json=body("paced")) for _ in range(concurrency)]
        )
        wall = time.perf_counter() - started
        assert all(r.status_code == 200 for r in responses)
        if not journal:
            return wall, []
        entries = (await client.get(url + "/_mockllm/requests")).json()
        await client.delete(url + "/_mockllm/requests")
    lateness = [sent - (0.1 + 0.01 * k) for entry in entries for k, sent in enumerate(entry["chunk_times"])]
    return wall, sorted(lateness)


def sequential(url: str, count: int) -> float:
    with httpx.Client() as client:
        client.post(url + "/v1/chat/completions", json=body("fast"))
        started = time.perf_counter()
        for _ in range(count):
            client.post(url + "/v1/chat/completions", json=body("fast"))
        return count / (time.perf_counter() - started)


def _requests_for(url: str, seconds: float) -> int:
    """Unpaced streamed requests one after another on one connection for `seconds` (in a client process)."""
    with httpx.Client() as client:
        client.post(url + "/v1/chat/completions", json=body("fast"))
        count, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            client.post(url + "/v1/chat/completions", json=body("fast"))
            count += 1
        return count


def parallel(url: str, connections: int, seconds: float = 3.0) -> float:
    """Unpaced streamed requests per second over `connections` connections, one client process each (one Python
    client process could not keep several workers busy)."""
    with multiprocessing.get_context("spawn").Pool(connections) as pool:
        counts = pool.starmap(_requests_for, [(url, seconds)] * connections)
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="10,100,300", help="comma-separated stream counts")
    parser.add_argument("--workers", type=int, default=1, help="mockllm serve --workers (default 1)")
    parser.add_argument(
        "--connections", type=int, default=None, help="connections of the parallel throughput (default: 2 x workers)"
    )
    args = parser.parse_args()
    connections = args.connections or 2 * args.workers
    journal = args.workers == 1
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(SCENARIOS.format(text=" ".join(["word"] * CHUNKS)))
        command = [sys.executable, "-m", "mockllm", "serve", str(path), "--port", str(port), "--log-level", "warning"]
        server = subprocess.Popen([*command, "--journal-size", "100000", "--workers", str(args.workers)])
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(url + "/_mockllm/health").raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            print(f"paced streams: {CHUNKS} chunks each, due 100 ms + k x 10 ms after arrival (ideal wall 1.09 s)")
            if not journal:
                # Measured in this client, lateness would be the client's: one Python process cannot read 10,000
                # chunks a second as they come.
                print(f"{args.workers} worker processes: no lateness (the journal is per worker; see --workers 1)")
            print("| streams | wall (s) | chunks/s | late median (ms) | late p99 (ms) | late max (ms) |")
            print("|---|---|---|---|---|---|")
            for concurrency in (int(n) for n in args.concurrency.split(",")):
                wall, late = asyncio.run(paced(url, concurrency, journal))
                if not late:
                    print(f"| {concurrency} | {wall:.2f} | {concurrency * CHUNKS / wall:.0f} | - | - | - |")
                    continue
                p99 = late[int(len(late) * 0.99)]
                print(
                    f"| {concurrency} | {wall:.2f} | {len(late) / wall:.0f} | {statistics.median(late) * 1000:.1f} "
                    f"| {p99 * 1000:.1f} | {late[-1] * 1000:.1f} |"
                )
            rate = sequential(url, 500)
            print(f"unpaced streamed requests, one connection, one after another: {rate:.0f}/s ({CHUNKS} chunks each)")
            rate = parallel(url, connections)
            print(f"unpaced streamed requests, {connections} connections from as many client processes: {rate:.0f}/s")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
