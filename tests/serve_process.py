"""`mockllm serve` in a child process, for the tests of the command line: logs, reload, signals, the wheel."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

_URL = re.compile(r"on (http://\S+:\d+) ")


class ServeProcess:
    """A running `mockllm serve`; its stderr lines are collected as they come. A context manager.

    `command` defaults to `python -m mockllm serve --port 0`; `url` is read from the start-up line.
    """

    def __init__(
        self,
        *args: str,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        argv = [*(command or [sys.executable, "-m", "mockllm", "serve", "--port", "0"]), *args]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MOCKLLM_")}
        environment.update(env or {})
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, cwd=cwd
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()
        try:
            line = self.wait_for(lambda line: _URL.search(line) is not None, timeout)
        except BaseException:
            self.close()
            raise
        match = _URL.search(line)
        assert match is not None
        self.url = match.group(1).replace("://0.0.0.0:", "://127.0.0.1:")

    def _read(self, stream: Any) -> None:
        for raw in stream:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(text)
            self._new.put(text)
        self._new.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        """The first line (already seen or coming) that satisfies `predicate`; fails after `timeout` seconds."""
        for line in list(self.lines):
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        ended = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                new = self._new.get(timeout=remaining)
            except queue.Empty:
                break
            if new is None:
                ended += 1
                if ended == len(self._readers):
                    break
                continue
            if predicate(new):
                return new
        raise AssertionError("mockllm serve never logged the expected line; its output:\n" + "\n".join(self.lines))

    def records(self) -> list[dict[str, Any]]:
        """The output lines parsed as JSON objects (for `--log-format json`); fails on a line that is not one."""
        parsed: list[dict[str, Any]] = []
        for line in self.lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"a log line is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            parsed.append(record)
        return parsed

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit and for its output to be read; return the exit code."""
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def refuses_connections(url: str, within: float) -> bool:
    """Whether the server at `url` stops accepting connections within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/_mockllm/health", timeout=1)
        except httpx.ConnectError:
            return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False
