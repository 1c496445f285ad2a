"""The built wheel in a fresh virtual environment, run with the Docker image's own command line.

CI cannot always build images; this catches a broken entry point, a missing dependency or a file left out of the
wheel anyway. It builds the wheel with `pip wheel`, installs it (dependencies from the package index, through
pip's cache) into a new virtual environment, then runs the Dockerfile's ENTRYPOINT and CMD with its ENV against
the example scenarios, checks its HEALTHCHECK command, one streamed chat completion, and SIGTERM.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import openai
import pytest
from conftest import ROOT
from serve_process import ServeProcess

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> str:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _dockerfile() -> tuple[list[str], dict[str, str], list[str]]:
    """The image's command (ENTRYPOINT + CMD), its ENV, and its HEALTHCHECK command, from the Dockerfile."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    # Join continuation lines, drop comments.
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    instructions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    final_stage = instructions[max(i for i, line in enumerate(instructions) if line.startswith("FROM ")) :]
    command: list[str] = []
    env: dict[str, str] = {}
    health: list[str] = []
    for line in final_stage:
        keyword, _, rest = line.partition(" ")
        if keyword in ("ENTRYPOINT", "CMD"):
            command += json.loads(rest)  # exec form only: the image's signals reach mockllm itself
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif keyword == "HEALTHCHECK":
            health = json.loads(rest[rest.index("CMD ") + 4 :])
    return command, env, health


def test_the_wheel_serves_the_examples_with_the_image_command_line(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(ROOT)]
    if importlib.util.find_spec("hatchling") is not None:
        build.insert(4, "--no-build-isolation")  # the build backend is here already: no need to fetch it
    _run(build, tmp_path)
    [wheel] = dist.glob("mockllm_server-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mockllm/__main__.py" in names
    assert not any(name.startswith(("tests/", "scenarios/")) for name in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", str(wheel)], tmp_path)
    where = _run([str(python), "-c", "import mockllm; print(mockllm.__file__)"], tmp_path)
    assert Path(where.strip()).is_relative_to(venv)

    command, image_env, health = _dockerfile()
    assert command == ["mockllm", "serve", "/scenarios"]
    assert image_env["MOCKLLM_HOST"] == "0.0.0.0"
    argv = [str(bin_dir / command[0]), *(str(ROOT / "scenarios") if a == "/scenarios" else a for a in command[1:])]
    # The image's environment, but on loopback and a free port here.
    env = {**image_env, "MOCKLLM_HOST": "127.0.0.1", "MOCKLLM_PORT": "0", "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}
    with ServeProcess(command=argv, env=env, cwd=tmp_path, timeout=60) as server:
        port = server.url.rsplit(":", 1)[1]
        assert health[0] == "python"
        checked = subprocess.run(
            [str(python), *health[1:]], env={**env, "MOCKLLM_PORT": port}, cwd=tmp_path, timeout=30, check=False
        )
        assert checked.returncode == 0, "the image's HEALTHCHECK command failed against the server"

        _say_hello_then_stop(server)
    assert any(" POST /v1/chat/completions greet 200 " in line for line in server.lines)

    # MOCKLLM_WORKERS=2: each spawned worker imports the installed `mockllm` script again as its main module.
    assert image_env["MOCKLLM_WORKERS"] == "1"
    with ServeProcess(command=argv, env={**env, "MOCKLLM_WORKERS": "2"}, cwd=tmp_path, timeout=60) as server:
        assert httpx.get(server.url + "/_mockllm/health").json()["workers"] == 2
        _say_hello_then_stop(server)
    assert any("with 2 worker processes" in line for line in server.lines)


def _say_hello_then_stop(server: ServeProcess) -> None:
    """A streamed chat answered as the example scenarios say, then SIGTERM and exit code 0."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0, timeout=30)
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}], stream=True
    ) as stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello there! How can I help you today?"
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
