"""Running `mockllm serve`: check the options and scenarios, bind, announce, serve until a stop signal.

One process by default; with `--workers N` a supervisor (supervisor.py) starts N processes that each run
`serve_socket` on the same port.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .recording import recordings_in

if TYPE_CHECKING:
    import socket

    import uvicorn

    from .app import MockState, Settings
    from .scenarios import Scenario

log = logging.getLogger("mockllm")


def serve(args: argparse.Namespace) -> int:
    """`mockllm serve` with its options parsed (logging set up): serve until a stop signal; the exit code."""
    from .app import MockState
    from .loading import settle_heap
    from .logs import log_request
    from .server import bind_socket

    prepared = prepare_serve(args)
    if isinstance(prepared, int):
        return prepared
    settings, scenarios = prepared
    if args.workers > 1:
        from .supervisor import serve_workers

        return serve_workers(args, settings, len(scenarios))
    settle_heap()
    try:
        state = MockState(scenarios, settings)
    except ValueError as exc:  # an --out folder that cannot be written
        log.error("%s", _as_flags(str(exc)), extra={"fields": {"event": "exit", "code": 1}})
        return 1
    state.listeners.append(log_request)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        log.error("%s", exc.strerror or exc, extra={"fields": {"event": "exit", "code": 1}})
        return 1
    host, port = sock.getsockname()[:2]
    warn_if_exposed(args, settings)
    announce(args, len(scenarios), host, port)
    if state.proxy is not None:
        recorder = state.proxy.recorder
        log.info(
            "recording (--record %s) into %s from %s",
            args.record,
            args.out,
            ", ".join(sorted(set(recorder.upstreams.values()))),
            extra={"fields": {"event": "record", "mode": args.record, "out": args.out}},
        )
    else:
        warn_if_empty(args, len(scenarios))
    serve_socket(args, state, sock)
    log.info("mockllm stopped", extra={"fields": {"event": "stop"}})
    return 0


def prepare_serve(args: argparse.Namespace) -> tuple[Settings, list[Scenario]] | int:
    """The settings and the scenarios of `serve`, checked; an exit code (errors logged) when they are not fit."""
    from .app import Settings
    from .guard import secrets_of
    from .loading import ScenarioError, load_scenarios
    from .logs import redact_logs

    try:
        settings = Settings(
            dialect=args.dialect,
            models=list(args.model or []),
            time_scale=args.time_scale,
            seed=args.seed,
            journal_size=args.journal_size,
            fallback=args.fallback,
            record=args.record,
            upstream=args.upstream,
            out=args.out,
            redact=list(args.redact or []),
            upstream_timeout=args.upstream_timeout,
            validate=args.validate,
            max_body=args.max_body,
            request_timeout=args.request_timeout,
            api_key=args.api_key,
            admin_token=args.admin_token,
        )
    except ValueError as exc:
        log.error("%s", _as_flags(str(exc)), extra={"fields": {"event": "exit", "code": 2}})
        return 2
    if args.workers > 1 and settings.record != "none":
        log.error(
            "--record %s with --workers %d: each worker would record on its own, sending a request upstream once "
            "per worker that meets it and serving only its own recordings; record with --workers 1 (the default), "
            "then replay the --out folder with --workers %d",
            settings.record,
            args.workers,
            args.workers,
            extra={"fields": {"event": "exit", "code": 2}},
        )
        return 2
    # The configured key and token are scrubbed from every log line too, whatever they look like.
    redact_logs(settings.redact, secrets_of(settings))
    try:
        scenarios = load_scenarios([*args.paths, *recordings_in(args.out)])
    except ScenarioError as exc:
        for problem in exc.problems:
            log.error(
                "%s", problem, extra={"fields": {"event": "load_error", "file": problem.source, "line": problem.line}}
            )
        count = len(exc.problems)
        log.error(
            "not serving: %d problem%s in the scenario files; fix %s, then check with `mockllm check %s`",
            count,
            "" if count == 1 else "s",
            "it" if count == 1 else "them",
            " ".join(args.paths),
            extra={"fields": {"event": "exit", "code": 1}},
        )
        return 1
    return settings, scenarios


def warn_if_exposed(args: argparse.Namespace, settings: Settings) -> None:
    """The warning of a server that listens beyond this machine without an API key (guard.py)."""
    from .guard import exposure_warning, in_container

    exposed = exposure_warning(args.host, settings.api_key, in_container())
    if exposed is not None:
        log.warning("%s", exposed, extra={"fields": {"event": "exposed", "host": args.host}})


def announce(args: argparse.Namespace, scenarios: int, host: str, port: int, pids: Sequence[int] = ()) -> None:
    """The start-up line: the URL, the scenarios, and with `--workers` how many processes serve it."""
    shown = f"[{host}]" if ":" in host else host
    workers = f" with {len(pids)} worker processes" if len(pids) > 1 else ""
    log.info(
        "mockllm %s serving %d scenario%s from %s on http://%s:%d (OpenAI base URL http://%s:%d/v1)%s",
        __version__,
        scenarios,
        "" if scenarios == 1 else "s",
        ", ".join(args.paths) or "no files",
        shown,
        port,
        shown,
        port,
        workers,
        extra={
            "fields": {
                "event": "start",
                "version": __version__,
                "url": f"http://{shown}:{port}",
                "scenarios": scenarios,
                "paths": list(args.paths),
                **({"workers": len(pids), "pids": list(pids)} if len(pids) > 1 else {}),
            }
        },
    )
    if args.reload and not args.paths:
        log.warning("--reload has no scenario files to watch; give PATH arguments")


def warn_if_empty(args: argparse.Namespace, scenarios: int) -> None:
    """Say so when nothing was loaded: every request will be a miss."""
    if not args.paths and not scenarios:
        log.warning(
            "no scenario files given: every request is a miss (404)%s. Load scenarios with `mockllm serve PATH...` "
            "(files or folders), or POST a scenario document to /_mockllm/scenarios",
            "" if args.fallback == "error" else f", answered by --fallback {args.fallback}",
            extra={"fields": {"event": "no_scenarios"}},
        )


def serve_socket(
    args: argparse.Namespace,
    state: MockState,
    sock: socket.socket,
    on_server: Callable[[uvicorn.Server], None] | None = None,
) -> None:
    """Serve `state` on the listening `sock` until SIGTERM or SIGINT (streams in flight get `--grace`), watching the
    scenario files with `--reload`; `on_server` sees the uvicorn server before it starts (workers.py)."""
    import signal

    import uvicorn

    from .app import MockApp
    from .reload import ScenarioWatcher
    from .server import uvicorn_config

    host, port = sock.getsockname()[:2]
    config = uvicorn_config(
        MockApp(state).build(),
        log_level=args.log_level,
        host=host,
        port=port,
        # On SIGTERM uvicorn stops accepting, lets responses in progress end, and cancels them after this long.
        timeout_graceful_shutdown=args.grace,
        lifespan=state.proxy is not None,
        request_timeout=state.settings.request_timeout,
    )
    server = uvicorn.Server(config)
    raise_open_files()
    if on_server is not None:
        on_server(server)
    watcher = ScenarioWatcher(args.paths, state.scenarios) if args.reload else None
    if watcher is not None:
        watcher.start()
    # uvicorn handles SIGTERM and SIGINT while it serves, then re-raises the signal it caught against the handler
    # that was there before it: a no-op here, so that a requested stop ends the process with exit code 0.
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def raise_open_files() -> None:
    """Lift the soft limit on open files to the hard one: every open stream is a socket, and a load test of
    10,000 streams needs more than the usual soft limit of 1,024. Where the limit cannot be read or raised
    (Windows, a container that forbids it), nothing changes."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, OSError, ValueError):
        pass


def _as_flags(message: str) -> str:
    """A settings error in the words of the command line: `record='all' needs out=DIR` -> `--record all ...`."""
    return re.sub(
        r"\b(record|out|upstream_timeout|redact)=", lambda m: "--" + m.group(1).replace("_", "-") + " ", message
    )


def _ignore_signal(signum: int, frame: Any) -> None:
    """Stand-in handler that uvicorn's re-raised stop signal lands on once the server has shut down."""
