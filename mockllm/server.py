"""`MockServer`: uvicorn on a socket we bind ourselves, in a daemon thread, for tests and scripts."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from .app import MockApp, MockState, Settings
from .guard import exposure_warning, in_container
from .loading import load_scenarios, load_text
from .recording import recordings_in
from .scenarios import Scenario
from .transport import fast_loop, http_protocol


class PortInUseError(OSError):
    """The address to listen on is taken."""


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one); a clear error when the port is taken.

    `reuse_port` sets SO_REUSEPORT, so that several such sockets listen on one port (`--workers`, workers.py).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it Nagle holds
    # back the second small write of a response until the client's delayed ACK, 40 ms later.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except (AttributeError, OSError):
            sock.close()
            raise
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                exc.errno,
                f"port {port} on {host} is already in use; stop what listens there or pick another "
                f"port with --port (0 picks a free one)",
            ) from None
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}; check --host and --port") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def uvicorn_config(
    app: Any,
    log_level: str = "warning",
    lifespan: bool = False,
    request_timeout: float = 30.0,
    http: str = "auto",
    **extra: Any,
) -> uvicorn.Config:
    """The uvicorn configuration mockllm runs with: httptools (h11 without it) with connection tracking and the
    request-read timeout, uvloop when installed, no access log of its own, no proxy-header rewriting, and the app's
    lifespan only when it has something to close (the proxy's upstream connections). A request head over 16 KiB is
    refused."""
    extra.setdefault("loop", fast_loop())
    return uvicorn.Config(
        app,
        http=http_protocol(request_timeout, http),
        lifespan="on" if lifespan else "off",
        access_log=False,
        log_level=log_level,
        log_config=None,
        timeout_keep_alive=30,
        proxy_headers=False,
        **extra,
    )


class MockServer:
    """The mock server in a background thread; a context manager.

    `MockServer(paths=["scenarios/"], time_scale=0)` accepts the `serve` options in snake case (`dialect`,
    `models`, `time_scale`, `seed`, `journal_size`, `fallback`, and for record and replay `upstream`, `record`,
    `out`, `redact`, `upstream_timeout`; `validate`: strict, warn or off; and the guards `max_body` (bytes),
    `request_timeout` (seconds), `api_key`, `admin_token`). `http` picks the HTTP protocol: `auto` (httptools when
    installed, else h11), `httptools` or `h11`. `url` is `http://127.0.0.1:<port>`.
    """

    def __init__(
        self,
        paths: Sequence[str | Path] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scenarios: Sequence[Scenario] = (),
        http: str = "auto",
        **options: Any,
    ) -> None:
        unknown = set(options) - set(Settings.__dataclass_fields__)
        if unknown:
            valid = ", ".join(sorted(Settings.__dataclass_fields__))
            raise TypeError(f"MockServer got unknown option(s) {', '.join(sorted(unknown))}; valid options: {valid}")
        self.paths = [Path(p) for p in paths]
        self.host = host
        self.port = port
        self.http = http  # the HTTP protocol: auto (httptools when installed), httptools or h11
        self.settings = Settings(**options)
        # --out is replayed as well as written: what it already holds answers at once.
        files = [*self.paths, *recordings_in(self.settings.out)]
        self.state = MockState([*load_scenarios(files), *scenarios] if files else list(scenarios), self.settings)
        self.app = MockApp(self.state).build()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL, without `/v1`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self, timeout: float = 10.0) -> MockServer:
        """Start serving; returns once the server accepts connections (or raises its start-up error)."""
        if self._thread is not None:
            return self
        exposed = exposure_warning(self.host, self.settings.api_key, in_container())
        if exposed is not None:
            logging.getLogger("mockllm").warning("%s", exposed)
        config = uvicorn_config(
            self.app,
            lifespan=self.state.proxy is not None,
            request_timeout=self.settings.request_timeout,
            http=self.http,
            loop="asyncio",  # the thread runs its own asyncio.run
        )
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # re-raised in start() or stop()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"mockllm:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or self._error is not None:
                self._thread.join(timeout)
                self._thread = self._server = None
                error, self._error = self._error, None
                raise RuntimeError(f"the mockllm server failed to start: {error!r}") from error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"the mockllm server did not start within {timeout} s; the machine may be overloaded: "
                    f"pass a longer timeout to start()"
                )
            time.sleep(0.001)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread to end; raises the error the server thread died of, if any."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._thread = None
        self._server = None
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError(f"the mockllm server thread failed: {error!r}") from error

    def add(self, text_or_scenario: str | Mapping[str, Any], *, source: str = "<runtime>") -> list[str]:
        """Add scenarios at runtime (a YAML scenario document, or one scenario as a mapping); returns their ids.

        They match before every scenario added earlier and before the files' scenarios, in their own order.
        """
        if isinstance(text_or_scenario, Mapping):
            import json

            text = json.dumps({"version": 1, "scenarios": [dict(text_or_scenario)]})
        else:
            text = text_or_scenario
        return self.add_scenarios(load_text(text, source))

    def add_scenarios(self, scenarios: Sequence[Scenario]) -> list[str]:
        """Add loaded scenarios at runtime, keeping their order; an id used by a file's scenario is a ValueError."""
        self.state.scenarios.add(scenarios)
        return [s.name for s in scenarios]

    def reset(self) -> None:
        """Journal, sequences and runtime scenarios back to the start."""
        self.state.reset()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
