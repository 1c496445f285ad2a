"""The command line: `mockllm serve`, `mockllm check`, `mockllm schema`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._version import __version__
from .scenarios import DIALECTS, collect, json_schema

log = logging.getLogger("mockllm")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; use 0 or more")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535; 0 picks a free port)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


# option name -> (type, default, help); every one is also read from MOCKLLM_<NAME> (dashes as underscores).
SERVE_OPTIONS: dict[str, tuple[Callable[[str], Any], Any, str, Sequence[str] | None]] = {
    "host": (str, "127.0.0.1", "address to listen on (0.0.0.0 for every interface)", None),
    "port": (_port, 8000, "port to listen on; 0 picks a free one", None),
    "dialect": (str, "openai", "default wire dialect for OpenAI-style APIs", DIALECTS),
    "time-scale": (_non_negative_float, 1.0, "multiply every delay (0 makes all instant)", None),
    "seed": (_int, 0, "seed of the generator behind jitter and probabilities", None),
    "journal-size": (_positive_int, 1000, "how many requests the journal keeps", None),
    "fallback": (str, "error", "what to answer when no scenario matches", ("error", "echo", "lorem")),
    "log-level": (str, "info", "log level", ("debug", "info", "warning", "error")),
}


def _env_default(name: str, kind: Callable[[str], Any], default: Any, choices: Sequence[str] | None) -> Any:
    variable = "MOCKLLM_" + name.upper().replace("-", "_")
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(_usage_error(f"{variable}={raw!r}: {exc}")) from None
    if choices is not None and value not in choices:
        raise SystemExit(_usage_error(f"{variable}={raw!r}: choose from {', '.join(choices)}"))
    return value


def _usage_error(message: str) -> int:
    print(f"mockllm: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockllm",
        description="A mock and replay server for testing LLM clients (OpenAI, Anthropic, vLLM).",
    )
    parser.add_argument("--version", action="version", version=f"mockllm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{serve,check,schema}")
    commands.required = True

    serve = commands.add_parser(
        "serve",
        help="serve scenario files over HTTP",
        description="Serve scenario files over HTTP. Every option is also read from an "
        "environment variable MOCKLLM_<OPTION> (e.g. MOCKLLM_PORT); a flag "
        "overrides it.",
    )
    serve.add_argument("paths", nargs="*", metavar="PATH", help="scenario files or folders, loaded in order")
    for name, (kind, default, text, choices) in SERVE_OPTIONS.items():
        serve.add_argument(
            f"--{name}",
            type=kind,
            default=_env_default(name, kind, default, choices),
            choices=choices,
            help=f"{text} (default: %(default)s)",
        )
    serve.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="an extra model id for /v1/models (repeatable; MOCKLLM_MODEL takes a comma list)",
    )

    check = commands.add_parser("check", help="validate scenario files and report every problem")
    check.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or folders")

    commands.add_parser("schema", help="print the JSON Schema of the scenario format")
    return parser


def run_check(paths: Sequence[str]) -> int:
    """`mockllm check`: every problem with file:line, shadowing warnings; exit 1 on errors."""
    from .matching import shadowing_warnings

    scenarios, problems = collect(paths)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    warnings = 0
    for earlier, later in shadowing_warnings(scenarios):
        warnings += 1
        print(
            f"warning: {later.location}: scenario `{later.name}` can never match: `{earlier.name}` "
            f"({earlier.location}) comes first and matches every request it would; move `{later.name}` above it "
            f"or narrow `{earlier.name}`'s conditions",
            file=sys.stderr,
        )
    if problems:
        count = len(problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 1
    files = len({s.location.rsplit(":", 1)[0] for s in scenarios})
    suffix = f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
    print(
        f"ok: {len(scenarios)} scenario{'s' if len(scenarios) != 1 else ''} in {files} file"
        f"{'s' if files != 1 else ''}{suffix}"
    )
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """`mockllm serve`: load the scenarios, bind, serve until interrupted."""
    import uvicorn

    from .app import MockApp, MockState, Settings
    from .scenarios import ScenarioError, load_scenarios
    from .server import bind_socket, uvicorn_config

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    models = args.model
    if models is None:
        models = [m for m in os.environ.get("MOCKLLM_MODEL", "").split(",") if m]
    try:
        scenarios = load_scenarios(args.paths)
    except ScenarioError as exc:
        print(f"mockllm: {exc}", file=sys.stderr)
        return 1
    settings = Settings(
        dialect=args.dialect,
        models=models,
        time_scale=args.time_scale,
        seed=args.seed,
        journal_size=args.journal_size,
        fallback=args.fallback,
    )
    state = MockState(scenarios, settings)
    state.listeners.append(_log_entry)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"mockllm: {exc.strerror or exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "mockllm %s serving %d scenario%s from %s on http://%s:%d (OpenAI base URL http://%s:%d/v1)",
        __version__,
        len(scenarios),
        "" if len(scenarios) == 1 else "s",
        ", ".join(args.paths) or "no files",
        shown,
        port,
        shown,
        port,
    )
    server = uvicorn.Server(uvicorn_config(MockApp(state).build(), log_level=args.log_level))
    server.run(sockets=[sock])
    return 0


def _log_entry(entry: Any) -> None:
    outcome = entry.scenario or ("miss" if entry.miss else "-")
    fault = f" fault={entry.fault}" if entry.fault else ""
    log.info("%s %s %s %s %.3fs%s", entry.method, entry.path, outcome, entry.status, entry.duration or 0.0, fault)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mockllm` command; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.command == "check":
        return run_check(args.paths)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"mockllm: no such file or folder: {', '.join(missing)}; check the path", file=sys.stderr)
        return 1
    return run_serve(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
