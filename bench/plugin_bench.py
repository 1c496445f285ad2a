"""Figures for the pytest plugin: session server start time, per-test fixture cost, and the wall time of a run of
N trivial tests that each make one streamed request.

    python bench/plugin_bench.py [--tests 500] [--workers 2]

Each run is a fresh `python -m pytest` in a temporary directory, so the figures include what a user pays.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

SCENARIOS = """\
version: 1
scenarios:
  - id: greet
    when: {prompt: hi}
    reply: {text: "Hello there! How can I help you today?"}
"""

# Sums the setup and teardown time pytest measures for each test into a JSON file.
CONFTEST = """\
import json, pathlib, pytest

totals = {}

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        totals[report.nodeid] = totals.get(report.nodeid, 0.0) + report.duration

def pytest_sessionfinish(session):
    out = pathlib.Path(__file__).parent / "phases.json"
    out.write_text(json.dumps(totals))
"""

TESTS = """\
import pytest

N = range({n})

@pytest.mark.parametrize("i", N)
def test_plain(i):
    pass

@pytest.mark.parametrize("i", N)
def test_fixture_only(mockllm, i):
    pass

@pytest.mark.mockllm("scenarios.yaml")
@pytest.mark.parametrize("i", N)
def test_marker_only(mockllm, i):
    pass
"""

STREAM_TESTS = """\
import openai, pytest

@pytest.mark.mockllm("scenarios.yaml")
@pytest.mark.parametrize("i", range({n}))
def test_stream(mockllm, i):
    with openai.OpenAI() as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}], stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello there! How can I help you today?"
"""

SHARED_CLIENT_TESTS = """\
import openai, pytest

client = None

@pytest.mark.mockllm("scenarios.yaml")
@pytest.mark.parametrize("i", range({n}))
def test_stream_shared_client(mockllm, i):
    global client
    client = client or openai.OpenAI()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}], stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello there! How can I help you today?"
"""


def server_start_times(runs: int, **popen: Any) -> tuple[float, list[float]]:
    """The first start in a fresh process (imports included), then warm starts; seconds."""
    code = textwrap.dedent(
        f"""
        import json, time
        started = time.perf_counter()
        from mockllm import MockServer
        server = MockServer(time_scale=0).start()
        first = time.perf_counter() - started
        server.stop()
        warm = []
        for _ in range({runs}):
            started = time.perf_counter()
            server = MockServer(time_scale=0).start()
            warm.append(time.perf_counter() - started)
            server.stop()
        print(json.dumps([first, warm]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, **popen).stdout
    first, warm = json.loads(out)
    return first, warm


def reset_time(runs: int, **popen: Any) -> float:
    """Seconds `MockServer.reset()` takes after a test added a scenario, measured in a fresh process (median)."""
    code = textwrap.dedent(
        f"""
        import json, statistics, time
        from mockllm import MockServer
        server = MockServer(time_scale=0).start()
        times = []
        for i in range({runs}):
            server.add({{"id": f"s{{i}}", "when": {{"prompt": "hi"}}, "reply": {{"text": "Hello!"}}}})
            started = time.perf_counter()
            server.reset()
            times.append(time.perf_counter() - started)
        server.stop()
        print(json.dumps(statistics.median(times)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, **popen).stdout
    median: float = json.loads(out)
    return median


def run_pytest(folder: Path, *args: str, **popen: Any) -> float:
    """Wall time of a fresh `python -m pytest` in `folder`; a RuntimeError with its output when it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mockllm-time-scale=0", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        **popen,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"pytest failed in {folder}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def fixture_costs(folder: Path, tests: int, **popen: Any) -> dict[str, float]:
    """Seconds a test pays for the plugin, from pytest's own setup and teardown durations of `tests` tests each:
    `base` (a test without the fixture), `session` (the first test with it, which starts the session server, minus
    base), `fixture` and `marker` (the median extra of a test with the fixture, or with a marker too).

    Only the mockllm plugin is loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD), so that other installed plugins' hooks
    neither slow the run down nor blur the figures."""
    (folder / "scenarios.yaml").write_text(SCENARIOS)
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_phases.py").write_text(TESTS.format(n=tests))
    env = {**(popen.pop("env", None) or os.environ), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    try:
        run_pytest(folder, "-p", "mockllm.pytest_plugin", "test_phases.py", env=env, **popen)
    finally:
        (folder / "test_phases.py").unlink()
    phases: dict[str, float] = json.loads((folder / "phases.json").read_text())
    kinds: dict[str, list[float]] = {}
    for nodeid, seconds in phases.items():
        kinds.setdefault(nodeid.split("::")[-1].split("[")[0], []).append(seconds)
    base = statistics.median(kinds["test_plain"])
    return {
        "base": base,
        "session": phases["test_phases.py::test_fixture_only[0]"] - base,
        # The median leaves out the one test that starts the session server (measured above).
        "fixture": statistics.median(kinds["test_fixture_only"]) - base,
        "marker": statistics.median(kinds["test_marker_only"]) - base,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=500, help="how many tests per run (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers for the parallel run")
    options = parser.parse_args()
    n = options.tests

    first, warm = server_start_times(20)
    print(f"server start, first in a fresh process (imports included): {first * 1000:.1f} ms")
    print(f"server start, warm: median {statistics.median(warm) * 1000:.2f} ms, max {max(warm) * 1000:.2f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            costs = fixture_costs(folder, n)
            print(f"setup + teardown of a test without the fixture: median {costs['base'] * 1e6:.0f} µs")
            print(f"session server start, as the first test with the fixture pays it: {costs['session'] * 1000:.1f} ms")
            for kind in ("fixture", "marker"):
                print(f"per-test cost of the {kind} (setup + teardown): median {costs[kind] * 1e6:.0f} µs")

            (folder / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
            (folder / "test_stream.py").write_text(STREAM_TESTS.format(n=n))
            (folder / "test_shared.py").write_text(SHARED_CLIENT_TESTS.format(n=n))
            empty = folder / "test_empty.py"
            empty.write_text(
                f"import pytest\n\n@pytest.mark.parametrize('i', range({n}))\ndef test_empty(i):\n    pass\n"
            )
            baseline = run_pytest(folder, "test_empty.py")
            print(f"{n} empty tests without the fixture (pytest start-up and collection): {baseline:.2f} s")
            wall = run_pytest(folder, "test_stream.py")
            print(f"{n} tests, one streamed request each, a new openai.OpenAI() per test: {wall:.2f} s")
            wall = run_pytest(folder, "test_shared.py")
            print(f"{n} tests, one streamed request each, one shared client: {wall:.2f} s")
            wall = run_pytest(folder, "test_stream.py", "-n", str(options.workers))
            print(f"{n} tests, one streamed request each, new client per test, -n {options.workers}: {wall:.2f} s")
        except RuntimeError as exc:
            sys.exit(str(exc))


if __name__ == "__main__":
    main()
