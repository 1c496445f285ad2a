"""`mockllm serve --workers N`: N processes serving one port, under a supervisor (a worker: workers.py).

The parent process checks the options and the scenario files once (errors and exit codes as with one process),
binds the port, starts N worker processes and supervises them; it serves no request itself.

- **Sockets.** On Linux the parent binds one listening socket per worker, all on the same port with
  SO_REUSEPORT, and hands socket i to worker i: the kernel spreads new connections evenly across the sockets.
  (One socket shared by every worker's event loop gives most connections to whichever worker wakes first.)
  Elsewhere the workers share one socket. The parent keeps its copies open, so that the port stays taken and the
  connections that arrive while a worker restarts wait in its socket's queue instead of being refused. A first
  bind without SO_REUSEPORT fails when anything listens there already, another `--workers` server included,
  which SO_REUSEPORT alone would silently join.
- **Processes.** `multiprocessing` with the `spawn` context: a fresh interpreter per worker (no state or thread
  copied from the parent), which inherits its socket and rebuilds the server from the parsed options. A worker
  tells the parent when uvicorn accepts connections; the start-up line is logged once every worker has.
- **Supervision.** SIGTERM or SIGINT to the parent is passed to every worker as SIGTERM (a second one as SIGINT,
  which makes uvicorn cut the streams at once); each lets its streams finish for up to `--grace`, and the parent
  exits 0 once all have exited. A worker that dies is restarted, at most `RESTART_LIMIT` times in
  `RESTART_WINDOW` seconds; a worker that cannot start at all stops the server with exit code 1. A worker whose
  parent is gone (killed with SIGKILL) stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .workers import worker_main

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from .app import Settings

log = logging.getLogger("mockllm")

RESTART_LIMIT = 5  # restarts of one worker ...
RESTART_WINDOW = 60.0  # ... within this many seconds; one more death and the server gives up
STOP_MARGIN = 5.0  # seconds past --grace that a stopping worker gets before it is killed


# -- the sockets ----------------------------------------------------------------------------------------------


def _reuse_port_supported() -> bool:
    # Only Linux balances connections across SO_REUSEPORT sockets; on macOS and the BSDs the last socket bound
    # would get them all.
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """The listening sockets of `count` workers on one port: one each with SO_REUSEPORT on Linux, else one shared.

    Port 0 picks one free port for all. Raises OSError (PortInUseError) with the message of `bind_socket`.
    """
    from .server import PortInUseError, bind_socket

    if not _reuse_port_supported():
        return [bind_socket(host, port)]
    for attempt in range(3):
        # Without SO_REUSEPORT: refused when anything listens there, as with one process.
        probe = bind_socket(host, port)
        chosen = probe.getsockname()[1]
        probe.close()
        sockets: list[socket.socket] = []
        try:
            for _ in range(count):
                sockets.append(bind_socket(host, chosen, reuse_port=True))
        except PortInUseError:
            for sock in sockets:
                sock.close()
            if port == 0 and attempt < 2:
                continue  # another program took the free port between the probe and the bind: pick another
            raise
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if exc.errno in (errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EINVAL):  # a kernel without it
                return [bind_socket(host, chosen)]
            raise
        return sockets
    raise AssertionError("unreachable")  # pragma: no cover


# -- the supervisor -------------------------------------------------------------------------------------------


def serve_workers(args: argparse.Namespace, settings: Settings, scenarios: int) -> int:
    """`mockllm serve --workers N` once the options and the scenarios are checked; returns the exit code."""
    from .serving import warn_if_exposed

    if sys.platform == "win32":
        log.error(
            "--workers %d needs Linux or macOS; on Windows run one process per port (--workers 1)",
            args.workers,
            extra={"fields": {"event": "exit", "code": 2}},
        )
        return 2
    try:
        sockets = bind_sockets(args.host, args.port, args.workers)
    except OSError as exc:
        log.error("%s", exc.strerror or exc, extra={"fields": {"event": "exit", "code": 1}})
        return 1
    try:
        warn_if_exposed(args, settings)
        cpus = _cpu_count()
        if args.workers > cpus:
            log.warning(
                "--workers %d on %d CPU%s: workers beyond the CPU count share cores, adding memory, not "
                "throughput; try --workers %d",
                args.workers,
                cpus,
                "" if cpus == 1 else "s",
                cpus,
                extra={"fields": {"event": "oversubscribed", "workers": args.workers, "cpus": cpus}},
            )
        log.debug(
            "%d workers share port %d through %s",
            args.workers,
            sockets[0].getsockname()[1],
            "SO_REUSEPORT, one listening socket each" if len(sockets) > 1 else "one shared listening socket",
        )
        supervisor = Supervisor(args, sockets, scenarios)
        code = supervisor.run()
    finally:
        for sock in sockets:
            sock.close()
    if supervisor.announced:  # as with one process: a server that never served does not say it stopped
        log.info("mockllm stopped", extra={"fields": {"event": "stop", "code": code}})
    return code


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on (a container's cpuset)
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def restart_delay(deaths: deque[float], now: float) -> float | None:
    """Note a worker's unexpected end at `now` (monotonic seconds) among its earlier `deaths`; return how long to
    wait before restarting it (at once, then 0.25 s, 0.5 s, 1 s, 2 s when it keeps dying), or None to give up:
    more than RESTART_LIMIT ends within RESTART_WINDOW seconds."""
    deaths.append(now)
    while deaths[0] < now - RESTART_WINDOW:
        deaths.popleft()
    if len(deaths) > RESTART_LIMIT:
        return None
    return 0.0 if len(deaths) == 1 else min(0.25 * 2 ** (len(deaths) - 2), 4.0)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class _Worker:
    """One worker slot: its socket, and the process that serves it now (replaced when it dies)."""

    index: int
    sock: socket.socket
    process: BaseProcess | None = None
    conn: Connection | None = None
    ready: bool = False
    starts: int = 0
    error: str | None = None  # the last error the process reported before it exited
    killed: bool = False  # killed by the supervisor after the stop deadline
    restart_at: float | None = None
    deaths: deque[float] = field(default_factory=deque)  # when it died unexpectedly (monotonic seconds)


class Supervisor:
    """Starts the workers, restarts the ones that die, and stops them all on SIGTERM or SIGINT."""

    def __init__(self, args: argparse.Namespace, sockets: list[socket.socket], scenarios: int) -> None:
        import multiprocessing

        self.args = args
        self.count: int = args.workers
        self.sockets = sockets
        self.scenarios = scenarios
        self.context = multiprocessing.get_context("spawn")
        self.workers = [_Worker(i, sockets[(i - 1) % len(sockets)]) for i in range(1, self.count + 1)]
        self.signals: list[int] = []
        self.stopping = False
        self.announced = False
        self.deadline = 0.0
        self.code = 0

    def run(self) -> int:
        """Serve until a stop signal (exit code 0) or until workers cannot be kept running (1)."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        # A signal writes a byte to the pipe, which wakes the wait below at once.
        previous_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for worker in self.workers:
                if not self.stopping:
                    self._start(worker)
            while not self.stopping or self._live():
                self._step(wake_read)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_read)
            os.close(wake_write)
            for worker in self.workers:  # only after an error of the supervisor itself
                if worker.process is not None and worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join(5)
                if worker.conn is not None:
                    worker.conn.close()
        return self.code

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _live(self) -> list[_Worker]:
        return [w for w in self.workers if w.process is not None]

    def _step(self, wake_read: int) -> None:
        from multiprocessing.connection import wait

        now = time.monotonic()
        due = [w.restart_at for w in self.workers if w.restart_at is not None]
        if self.stopping:
            due.append(self.deadline)
        timeout = max(0.0, min(due) - now) if due else None
        handles: list[Any] = [wake_read]
        for worker in self._live():
            assert worker.process is not None
            handles.append(worker.process.sentinel)
            if worker.conn is not None:
                handles.append(worker.conn)
        ready = wait(handles, timeout)
        if wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 512)
        while self.signals:
            self._stop_signal(self.signals.pop(0))
        for worker in self.workers:
            if worker.conn is not None and worker.conn in ready:
                self._read(worker)
        for worker in self.workers:
            if worker.process is not None and worker.process.sentinel in ready:
                self._reap(worker)
        now = time.monotonic()
        if self.stopping:
            if now >= self.deadline:
                self._kill_stragglers()
            return
        for worker in self.workers:
            if worker.restart_at is not None and now >= worker.restart_at:
                worker.restart_at = None
                self._start(worker)
        if not self.announced and all(w.ready for w in self.workers):
            self._announce()

    def _start(self, worker: _Worker) -> None:
        parent_end, child_end = self.context.Pipe()
        process = self.context.Process(
            target=worker_main,
            args=(self.args, worker.index, self.count, worker.sock, child_end),
            name=f"mockllm-worker-{worker.index}",
            daemon=True,  # killed by multiprocessing's exit handler should the supervisor itself fail
        )
        try:
            process.start()
        except OSError as exc:
            parent_end.close()
            log.error(
                "cannot start worker %d: %s; stopping",
                worker.index,
                exc.strerror or exc,
                extra={"fields": {"event": "worker_failed", "worker": worker.index}},
            )
            self._begin_stop(1)
            return
        finally:
            child_end.close()
        worker.process, worker.conn = process, parent_end
        worker.ready, worker.error, worker.killed = False, None, False
        worker.starts += 1

    def _read(self, worker: _Worker) -> None:
        """Take the worker's messages: `("ready", pid)` once it accepts connections, `("error", text)`."""
        assert worker.conn is not None
        try:
            while worker.conn.poll():
                kind, value = worker.conn.recv()
                if kind == "error":
                    worker.error = str(value)
                elif kind == "ready" and not worker.ready:
                    worker.ready = True
                    if self.announced:
                        log.info(
                            "worker %d is serving again (pid %d)",
                            worker.index,
                            value,
                            extra={"fields": {"event": "worker_ready", "worker": worker.index, "pid": value}},
                        )
        except (EOFError, OSError):  # the worker is gone; its sentinel says so too
            worker.conn.close()
            worker.conn = None

    def _reap(self, worker: _Worker) -> None:
        """A worker process ended: fine while stopping, else restart it (or give up)."""
        process = worker.process
        assert process is not None
        process.join(1)
        if process.exitcode is None:  # its sentinel closed, yet it runs: not a worker we can trust
            process.kill()
            process.join(5)
        code, pid = process.exitcode, process.pid
        process.close()
        if worker.conn is not None:
            self._read(worker)
        if worker.conn is not None:
            worker.conn.close()
            worker.conn = None
        worker.process = None
        was_ready, worker.ready = worker.ready, False
        fields = {"worker": worker.index, "pid": pid, "code": code}
        if self.stopping:
            if code not in (0, -signal.SIGTERM, -signal.SIGINT) and not worker.killed:
                log.warning(
                    "worker %d (pid %s) ended with %s while stopping",
                    worker.index,
                    pid,
                    _exit_reason(code),
                    extra={"fields": {"event": "worker_exit", **fields}},
                )
                self.code = 1
            return
        if not was_ready and worker.starts == 1:
            log.error(
                "worker %d (pid %s) could not start (%s), so the server stops%s",
                worker.index,
                pid,
                _exit_reason(code),
                f": {worker.error}" if worker.error else "",
                extra={"fields": {"event": "worker_failed", **fields}},
            )
            self._begin_stop(1)
            return
        now = time.monotonic()
        delay = restart_delay(worker.deaths, now)
        if delay is None:
            log.error(
                "worker %d (pid %s) ended with %s%s, the %dth time within %.0f s; giving up: stopping the server",
                worker.index,
                pid,
                _exit_reason(code),
                f": {worker.error}" if worker.error else "",
                len(worker.deaths),
                RESTART_WINDOW,
                extra={"fields": {"event": "worker_failed", **fields}},
            )
            self._begin_stop(1)
            return
        log.warning(
            "worker %d (pid %s) ended unexpectedly with %s%s; restarting it%s",
            worker.index,
            pid,
            _exit_reason(code),
            f": {worker.error}" if worker.error else "",
            f" in {delay:g} s" if delay else "",
            extra={"fields": {"event": "worker_exit", **fields, "restart_in": delay}},
        )
        worker.restart_at = now + delay

    def _announce(self) -> None:
        from .serving import announce, warn_if_empty

        self.announced = True
        host, port = self.sockets[0].getsockname()[:2]
        pids = [w.process.pid or 0 for w in self.workers if w.process is not None]
        announce(self.args, self.scenarios, host, port, pids)
        warn_if_empty(self.args, self.scenarios)

    def _stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.stopping:
            log.info(
                "%s: stopping %d workers (streams in flight get up to %gs)",
                name,
                len(self._live()),
                self.args.grace,
                extra={"fields": {"event": "stopping", "signal": name}},
            )
            self._begin_stop(0)
            return
        # A second stop signal cuts the streams at once, as it does with one process (uvicorn: SIGINT twice).
        log.info("%s again: cutting the streams in flight", name, extra={"fields": {"event": "stopping"}})
        self._signal_all(signal.SIGINT)

    def _begin_stop(self, code: int) -> None:
        self.code = max(self.code, code)
        if self.stopping:
            return
        self.stopping = True
        self.deadline = time.monotonic() + self.args.grace + STOP_MARGIN
        for worker in self.workers:
            worker.restart_at = None
        # The workers close their copies as they stop: with these closed too, new connections are refused.
        for sock in self.sockets:
            sock.close()
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for worker in self._live():
            assert worker.process is not None
            assert worker.process.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid, signum)

    def _kill_stragglers(self) -> None:
        for worker in self._live():
            assert worker.process is not None
            log.warning(
                "worker %d (pid %s) did not stop within --grace + %g s; killing it",
                worker.index,
                worker.process.pid,
                STOP_MARGIN,
                extra={"fields": {"event": "worker_killed", "worker": worker.index}},
            )
            worker.killed = True
            worker.process.kill()
        self.code = 1
        self.deadline = time.monotonic() + STOP_MARGIN
