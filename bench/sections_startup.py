"""Sections (d) and (e): what the pytest plugin costs a test session, and what 10,000 scenarios cost."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matchtime
import plugin_bench
from report import Table, number
from sections_streams import Context, flags
from servers import BENCH, BenchError, ServerKind, environment, free_port, mockllm_kind, serving, wait_healthy

CHECK_TIMEOUT = 30.0  # well past the 2 s target: a check that takes longer is reported as timed out


def _popen(context: Context) -> dict[str, Any]:
    """Options of a measuring subprocess: this checkout's mockllm, on the server's core."""
    core = context.pinning.server

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    return {"env": environment(), "preexec_fn": pin}


def _figure(value: float | None, scale: float, unit: str, digits: int) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f} {unit}"


def pytest_costs(context: Context) -> Table:
    """(d) Session server start and per-test reset, as a fresh pytest run measures them."""
    tests = 3 if context.quick else 300
    runs = 20
    # A quick run only proves the measurement works: the pytest run, not the two extra interpreters.
    first, warm = (None, []) if context.quick else plugin_bench.server_start_times(runs, **_popen(context))
    reset = None if context.quick else plugin_bench.reset_time(1000, **_popen(context))
    with tempfile.TemporaryDirectory(dir=context.work) as folder:
        costs = plugin_bench.fixture_costs(Path(folder), tests, **_popen(context))
    context.facts["d/session_ms"] = costs["session"] * 1000
    context.facts["d/reset_us"] = costs["fixture"] * 1e6
    table = Table(
        f"(d) pytest plugin: session start and per-test reset ({tests} tests of each kind)",
        ["measure", "figure", "target"],
    )
    table.rows += [
        [
            "session server start, as the first test with the fixture pays it",
            f"{costs['session'] * 1000:.1f} ms",
            "≤ 300 ms",
        ],
        [
            "per-test cost of the `mockllm` fixture (setup + teardown, median)",
            f"{costs['fixture'] * 1e6:.0f} µs",
            "≤ 500 µs",
        ],
        ["per-test cost with a `@pytest.mark.mockllm(file)` marker (median)", f"{costs['marker'] * 1e6:.0f} µs", ""],
        ["`MockServer.reset()` after a test added a scenario (median)", _figure(reset, 1e6, "µs", 0), ""],
        ["`MockServer` start, first in a fresh process (imports included)", _figure(first, 1000, "ms", 0), ""],
        [
            f"`MockServer` start, warm (median of {runs})",
            _figure(statistics.median(warm) if warm else None, 1000, "ms", 1),
            "",
        ],
        ["setup + teardown of a test without the fixture (median)", f"{costs['base'] * 1e6:.0f} µs", ""],
    ]
    table.notes.append(
        "Each figure comes from a fresh `python -m pytest` (or `python -c`) in a temporary folder, pinned to the "
        "server's core; per-test costs are pytest's own setup and teardown durations minus those of a plain test."
    )
    return table


def _start_to_health(context: Context, kind: ServerKind) -> float:
    """Seconds from starting `mockllm serve` to its first healthy answer."""
    port = free_port()
    log = (context.work / "scale-serve.log").open("ab")
    started = time.perf_counter()
    process = context.processes.start(kind.command(port), context.pinning.server, stdout=log, stderr=log)
    try:
        wait_healthy(process, port, kind.health, timeout=120)
        return time.perf_counter() - started
    finally:
        context.processes.stop(process)
        log.close()


def _check_time(context: Context, path: Path, timeout: float) -> float:
    """Seconds `mockllm check` takes; infinity when it takes longer than `timeout`."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mockllm", "check", str(path)],
            capture_output=True,
            timeout=timeout,
            **_popen(context),
        )
    except subprocess.TimeoutExpired:
        return math.inf
    if done.returncode != 0:
        raise BenchError(f"mockllm check {path} failed: {done.stdout.decode()[-1000:]}{done.stderr.decode()[-1000:]}")
    return time.perf_counter() - started


def _latency(context: Context, kind: ServerKind, count: int, seconds: float) -> float:
    """Median latency (ms) of a streamed request for the last scenario, one connection, back to back."""
    last = count - 1
    with serving(context.processes, kind, context.pinning.server, context.work / "scale-serve.log") as server:
        arguments = flags(
            prompt=matchtime.prompt_of(last),
            model=matchtime.model_of(last),
            connections=1,
            duration=seconds,
            warmup=0.2,
        )
        result = context.generate(server, arguments, timeout=seconds + 60)
    if result["errors"] or not result["latency_ms"]:
        raise BenchError(f"requests for the last of {count} scenarios failed: {result['errors']}")
    p50: float = result["latency_ms"]["p50"]
    return p50


def many_scenarios(context: Context) -> Table:
    """(e) Load, check and match with 10,000 scenarios, against a file of the one scenario that is asked for."""
    count = 200 if context.quick else 10000
    seconds = 3.0
    big = context.work / f"scenarios-{count}.yaml"
    big.write_text(matchtime.scenario_file(count))
    one = context.work / "scenarios-1.yaml"
    one.write_text(matchtime.scenario_file(1, start=count - 1))
    # A quick run measures the big file only, and no end-to-end latency (two more server starts).
    files = {count: big} if context.quick else {1: one, count: big}
    figures: dict[int, dict[str, float | None]] = {1: {}}
    notes = []
    for size, path in files.items():
        kind = mockllm_kind(path, context.mockllm_args)
        inproc = subprocess.run(
            [sys.executable, str(BENCH / "matchtime.py"), str(path), str(count)],
            capture_output=True,
            text=True,
            timeout=300,
            **_popen(context),
        )
        if inproc.returncode != 0:
            raise BenchError(f"bench/matchtime.py {path.name} failed: {inproc.stderr[-2000:]}")
        measured = json.loads(inproc.stdout)
        figures[size] = {
            "serve_s": _start_to_health(context, kind),
            "check_s": _check_time(context, path, timeout=CHECK_TIMEOUT),
            "load_s": measured["load_s"],
            "match_us": measured["match_us"],
            "latency_ms": None if context.quick else _latency(context, kind, count, seconds),
        }
        if figures[size]["check_s"] == math.inf:
            notes.append(f"`mockllm check` of {size:,} scenarios did not finish within {CHECK_TIMEOUT:.0f} s.")
    for key, value in figures[count].items():
        context.facts[f"e/{count}/{key}"] = value
    table = Table(
        f"(e) {count:,} scenarios, each with its own exact prompt and one of {len(matchtime.MODELS)} models; the "
        "request matches only the last",
        ["measure", "1 scenario", f"{count:,} scenarios", "difference", "target (10,000)"],
    )

    def cell(value: float | None, unit: str) -> str:
        if value is None:
            return "-"
        return f"over {CHECK_TIMEOUT:.0f} s" if math.isinf(value) else f"{number(value, 2)} {unit}"

    def row(label: str, key: str, unit: str, target: str) -> None:
        small, large = figures[1].get(key), figures[count].get(key)
        difference = "-" if small is None or large is None or math.isinf(large) else cell(large - small, unit)
        table.rows.append([label, cell(small, unit), cell(large, unit), difference, target])

    row("`mockllm serve` start to first healthy answer", "serve_s", "s", "≤ 2 s")
    row("`mockllm check FILE` wall time", "check_s", "s", "≤ 2 s")
    row("`load_scenarios` in-process", "load_s", "s", "")
    row("`Scenarios.select` in-process, per request", "match_us", "µs", "≤ 20 µs")
    row("end-to-end latency of a streamed request, p50", "latency_ms", "ms", "")
    table.notes += notes
    table.notes.append(
        "Start and check times include the Python interpreter's start and imports; the in-process match is an "
        "average over at least 0.5 s of calls; the end-to-end latency is one connection, requests back to back."
    )
    return table
