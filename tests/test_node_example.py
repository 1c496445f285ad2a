"""examples/node: the official `openai` npm package against the mock (run when node and npm are installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, StartServer

EXAMPLE = ROOT / "examples" / "node"
NODE = shutil.which("node")
NPM = shutil.which("npm")

# npm's error codes for a registry it cannot reach.
OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH")

pytestmark = pytest.mark.skipif(NODE is None or NPM is None, reason="node and npm are not installed")


def _npm(args: list[str], cwd: Path) -> None:
    assert NPM is not None
    done = subprocess.run(
        [NPM, *args, "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 and any(code in done.stderr for code in OFFLINE):
        # No registry to install the openai package from: the example cannot run here (not a failure of mockllm).
        pytest.skip(f"npm could not reach the npm registry: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, f"npm {args[0]} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(params=["locked", "openai@6"])
def example(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A copy of the example with its dependencies installed (npm's cache makes this quick after once).

    `locked` is the example as shipped (the current major, openai 7, which asks for Node 22); `openai@6` is what
    the README tells users of Node 18 and 20 to install instead. The script is the same for both.
    """
    copy = tmp_path / "node"
    copy.mkdir()
    for name in ("package.json", "package-lock.json", "chat.mjs"):
        shutil.copy2(EXAMPLE / name, copy / name)
    if request.param == "locked":
        _npm(["ci"], copy)
    else:
        _npm(["install", "--no-save", request.param], copy)
    return copy


def test_the_node_example_streams_and_handles_a_429(example: Path, start_server: StartServer) -> None:
    assert NODE is not None
    server = start_server(ROOT / "scenarios")
    env = {**os.environ, "OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": "sk-test"}
    done = subprocess.run(
        [NODE, "chat.mjs"], cwd=example, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "streamed 10 chunks: Hello there! How can I help you today?",
        "attempt 1: 429 rate limited (rate_limit_exceeded); retrying after 1 ms",  # 1s at --time-scale 0
        "attempt 2: 503 server error; retrying",
        "attempt 3: Finally!",
    ]
    journal = [(e.scenario, e.stream, e.status) for e in server.state.journal.entries()]
    assert journal == [("greet", True, 200), ("flaky", False, 429), ("flaky", False, 503), ("flaky", False, 200)]
