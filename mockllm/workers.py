"""A worker process of `mockllm serve --workers N` (its supervisor: supervisor.py).

Each worker is a fresh interpreter started by the supervisor (`multiprocessing`'s spawn): it rebuilds the server
from the parsed options, serves the listening socket it inherited until SIGTERM, and tells the supervisor through
a pipe when it accepts connections. State is per process: each worker keeps its own sequence positions, journal,
runtime scenarios and Responses conversations, and the admin API refuses what only one worker would answer
(admin.py, through `current_worker`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import uvicorn

log = logging.getLogger("mockllm")


@dataclass(frozen=True)
class WorkerIdentity:
    """This process's place among the workers of `mockllm serve --workers N`."""

    index: int  # 1 to count
    count: int


_identity: WorkerIdentity | None = None


def current_worker() -> WorkerIdentity | None:
    """The worker this process is, or None when it is no worker of a `--workers` server (one process serves)."""
    return _identity


class _WorkerTag(logging.Filter):
    """Marks each log line with the worker that wrote it: `[worker 2] ...` in plain text, `"worker": 2` in JSON."""

    def __init__(self, index: int, plain: bool) -> None:
        super().__init__()
        self.index = index
        self.plain = plain

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        record.fields = {**(fields if isinstance(fields, dict) else {}), "worker": self.index}
        if self.plain:
            record.msg, record.args = f"[worker {self.index}] {record.getMessage()}", None
        return True


class _LastError(logging.Handler):
    """Keeps the last error logged, for the supervisor's report of a worker that could not start."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


def worker_main(
    args: argparse.Namespace, index: int, count: int, sock: socket.socket, conn: Connection
) -> None:  # pragma: no cover - runs in the worker processes (tests/test_workers.py)
    """A worker process: serve the scenarios on `sock` until SIGTERM, telling the supervisor when it serves."""
    # The supervisor stops workers with SIGTERM; the SIGINT of a Ctrl-C reaches them too, which uvicorn handles
    # once it serves, but before that it would end a starting worker with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _identity
    _identity = WorkerIdentity(index, count)
    from .logs import configure_logging

    errors = _LastError()  # first, so that it sees each message before the tag below is added to it
    logging.getLogger().addHandler(errors)
    configure_logging(args.log_format, args.log_level)
    tag = _WorkerTag(index, plain=args.log_format == "plain")
    for handler in logging.getLogger().handlers:
        if handler is not errors:
            handler.addFilter(tag)
    try:
        code = _serve_worker(args, sock, conn)
    except Exception as exc:
        log.exception("worker %d failed: %s", index, exc)
        code = 1
    if code != 0:
        with contextlib.suppress(OSError):
            conn.send(("error", errors.message or f"exit code {code}"))
    conn.close()
    sys.exit(code)


def _serve_worker(
    args: argparse.Namespace, sock: socket.socket, conn: Connection
) -> int:  # pragma: no cover - runs in the worker processes
    from .app import MockState
    from .loading import settle_heap
    from .logs import log_request
    from .serving import prepare_serve, serve_socket

    prepared = prepare_serve(args)
    if isinstance(prepared, int):
        return prepared
    settings, scenarios = prepared
    settle_heap()
    state = MockState(scenarios, settings)
    state.listeners.append(log_request)
    serve_socket(args, state, sock, on_server=lambda server: _watch_supervisor(server, conn))
    return 0


def _watch_supervisor(
    server: uvicorn.Server, conn: Connection
) -> None:  # pragma: no cover - runs in the worker processes
    """Tell the supervisor once uvicorn accepts connections; then stop this worker should the supervisor vanish."""

    def watch() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.005)
        try:
            conn.send(("ready", os.getpid()))
            conn.recv()  # the supervisor sends nothing: this returns (raises) when it is gone
        except (EOFError, OSError):
            pass
        if not server.should_exit:
            log.warning(
                "the supervisor process is gone; stopping (streams in flight get up to --grace)",
                extra={"fields": {"event": "orphaned"}},
            )
            server.should_exit = True

    threading.Thread(target=watch, name="mockllm-supervisor-watch", daemon=True).start()
