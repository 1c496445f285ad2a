"""Starting, pinning, watching and stopping the processes of a benchmark: the servers under test and the generator.

Every process is started in a session of its own, recorded in `Processes`, and killed (its process group) when the
run ends, however it ends. The server goes to one core and the load generator to another, so that neither steals
the other's time; on a machine with one core nothing is pinned.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
AIMOCK_PACKAGE = "@copilotkit/aimock"
AIMOCK_VERSION = "1.43.0"


class BenchError(RuntimeError):
    """A server or the load generator did not do what the benchmark needs."""


def cores() -> list[int]:
    """The cores this process may run on (none known off Linux: then nothing is pinned)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


@dataclass(frozen=True, slots=True)
class Pinning:
    """The core of the server and the core of the load generator (None: not pinned)."""

    server: int | None
    generator: int | None

    @staticmethod
    def choose() -> Pinning:
        available = cores()
        if len(available) < 2:
            return Pinning(None, None)
        return Pinning(available[0], available[1])


def _preexec(core: int | None) -> Callable[[], None]:
    def setup() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    return setup


def environment() -> dict[str, str]:
    """This checkout's `mockllm` before any installed copy, and bench's modules importable."""
    env = dict(os.environ)
    paths = [str(ROOT), str(BENCH), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """Every child process of the run; `stop_all` ends those still running (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], core: int | None, **options: Any) -> subprocess.Popen[bytes]:
        options.setdefault("env", environment())
        process: subprocess.Popen[bytes] = subprocess.Popen(
            command, preexec_fn=_preexec(core), start_new_session=True, **options
        )
        self.children.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        if process.poll() is None:
            # The child leads its own process group (start_new_session): signal the group, so that npm's or a
            # shell's children go too.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(grace)
        if process in self.children:
            self.children.remove(process)

    def stop_all(self) -> None:
        for process in list(self.children):
            self.stop(process, grace=3.0)


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS in /proc/{pid}/status; is the process still running?")


def wait_healthy(process: subprocess.Popen[bytes], port: int, path: str, timeout: float = 30.0) -> float:
    """Poll GET `path` until it answers 200; the seconds it took. Fails when the process exits first."""
    started = time.perf_counter()
    deadline = started + timeout
    while True:
        if process.poll() is not None:
            raise BenchError(f"the server exited with code {process.returncode} before it answered")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() > deadline:
            raise BenchError(f"no 200 from http://127.0.0.1:{port}{path} after {timeout:.0f} s")
        time.sleep(0.01)


@dataclass
class Server:
    """One server under test, running."""

    name: str
    process: subprocess.Popen[bytes]
    port: int


@dataclass(frozen=True, slots=True)
class ServerKind:
    """How to start one kind of server: its command for a port, and its health path."""

    name: str
    command: Callable[[int], list[str]]
    health: str


def mockllm_kind(scenario_file: Path, extra: list[str]) -> ServerKind:
    def command(port: int) -> list[str]:
        serve = [sys.executable, "-m", "mockllm", "serve", str(scenario_file), "--port", str(port)]
        return [*serve, "--log-level", "warning", *extra]

    return ServerKind("mockllm", command, "/_mockllm/health")


def baseline_kind(streams_json: str, variant: str = "baseline") -> ServerKind:
    """The raw baseline, or its variant `coalesced` or `starlette` (bench/baseline.py)."""

    def command(port: int) -> list[str]:
        flags = {"baseline": [], "coalesced": ["--coalesce"], "starlette": ["--starlette"]}[variant]
        return [sys.executable, str(BENCH / "baseline.py"), "--port", str(port), "--streams", streams_json, *flags]

    return ServerKind(variant, command, "/health")


def aimock_kind(cli: Path, fixture_file: Path) -> ServerKind:
    def command(port: int) -> list[str]:
        node = shutil.which("node") or "node"
        return [node, str(cli), "--port", str(port), "--fixtures", str(fixture_file), "--log-level", "silent"]

    return ServerKind("aimock", command, "/health")


def start_server(processes: Processes, kind: ServerKind, core: int | None, log: Path) -> Server:
    """Start the server on a free port and wait until it is healthy; its output goes to `log`."""
    port = free_port()
    with log.open("ab") as sink:
        process = processes.start(kind.command(port), core, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_healthy(process, port, kind.health)
    except BenchError as exc:
        processes.stop(process)
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{kind.name}: {exc}\n{tail}") from None
    return Server(kind.name, process, port)


@contextmanager
def serving(processes: Processes, kind: ServerKind, core: int | None, log: Path) -> Iterator[Server]:
    """A healthy server for the block, stopped at its end."""
    server = start_server(processes, kind, core, log)
    try:
        yield server
    finally:
        processes.stop(server.process)


def run_generator(
    processes: Processes,
    core: int | None,
    arguments: list[str],
    timeout: float,
    sample: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run bench/loadgen.py on the generator's core; its JSON result. `sample` is called every 0.1 s meanwhile."""
    command = [sys.executable, str(BENCH / "loadgen.py"), *arguments]
    process = processes.start(command, core, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.perf_counter() + timeout
    try:
        while process.poll() is None:
            if time.perf_counter() > deadline:
                raise BenchError(f"the load generator did not finish in {timeout:.0f} s: {' '.join(arguments)}")
            if sample is not None:
                sample()
            time.sleep(0.1)
        out, err = process.communicate()
    finally:
        processes.stop(process)
    if process.returncode != 0:
        raise BenchError(f"the load generator failed ({process.returncode}): {err.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def aimock_cli(cache: Path, version: str = AIMOCK_VERSION) -> tuple[Path | None, str]:
    """aimock's server script, installed once with npm into `cache`; or None and why not."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None, "npm or node is not on PATH"
    folder = cache / f"aimock-{version}"
    cli = folder / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
    if cli.exists():
        return cli, ""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "mockllm-bench-aimock", "private": true}\n')
    command = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"{AIMOCK_PACKAGE}@{version}"]
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "npm install took over 300 s"
    if done.returncode != 0 or not cli.exists():
        # npm's last line is where its log is; the lines before say what went wrong.
        lines = [line for line in done.stderr.splitlines() if line.strip() and "complete log" not in line]
        return None, f"npm install {AIMOCK_PACKAGE}@{version} failed: {' / '.join(lines[:2]) or 'no output'}"
    return cli, ""
