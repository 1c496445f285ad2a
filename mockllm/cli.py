"""The command line: `mockllm serve`, `mockllm check`, `mockllm schema`, `mockllm distill`."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._version import __version__
from .loading import collect, gc_paused, json_schema
from .logs import LOG_FORMATS, LOG_LEVELS
from .recording import MODES, UpstreamError, parse_upstream
from .scenarios import DIALECTS
from .timing import DurationError, parse_duration

log = logging.getLogger("mockllm")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give 0 or more, like 0.5") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; give 0 or more")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; give 0-65535 (0 picks a free port)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number; give 0-65535 (0 picks a free port)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small; give 1 or more")
    return value


MAX_WORKERS = 256


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of worker processes; give 1 (the default) to {MAX_WORKERS}, like 4"
        ) from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{value} is not a number of worker processes; give 1 (the default) to {MAX_WORKERS}, usually the "
            f"number of CPU cores"
        )
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give a whole number like 42") from None


def _upstream(text: str) -> str:
    try:
        parse_upstream(text)
    except UpstreamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def _size(text: str) -> int:
    """A size in bytes: `10485760`, `10MB`, `512KiB` (KB and MB are powers of 1000, KiB and MiB of 1024)."""
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; give bytes like 10485760, or 10MB, 512KiB")
    return int(match.group(1)) * _SIZE_UNITS[unit]


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _flag(text: str) -> bool:
    """A boolean option's environment variable: 1/true/yes/on or 0/false/no/off."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean; write 1, true, yes or on (0, false, no or off)")


# option name -> (type, default, help, choices). Each is also read from the environment variable MOCKLLM_<NAME>
# (upper case, dashes as underscores) when the flag is not given; the flag wins.
SERVE_OPTIONS: dict[str, tuple[Callable[[str], Any], Any, str, Sequence[str] | None]] = {
    "host": (str, "127.0.0.1", "address to listen on (0.0.0.0 for every interface)", None),
    "port": (_port, 8000, "port to listen on; 0 picks a free one", None),
    "workers": (
        _workers,
        1,
        "processes serving the port, for load tests on several cores; sequences, the journal and runtime "
        "scenarios are then per worker (the admin API refuses them)",
        None,
    ),
    "dialect": (str, "openai", "default wire dialect for OpenAI-style APIs", DIALECTS),
    "time-scale": (_non_negative_float, 1.0, "multiply every delay (0 makes all instant)", None),
    "seed": (_int, 0, "seed of the generator behind jitter and probabilities", None),
    "journal-size": (_positive_int, 1000, "how many requests the journal keeps", None),
    "fallback": (str, "error", "what to answer when no scenario matches", ("error", "echo", "lorem")),
    "log-level": (str.lower, "info", "log level", LOG_LEVELS),
    "log-format": (str, "plain", "log lines as plain text or one JSON object each", LOG_FORMATS),
    "grace": (_duration, "10s", "on SIGTERM, how long streams in flight may take to finish (10s, 500ms)", None),
    "record": (str, "none", "record mode: none (replay only), missing (record what nothing answers), all", MODES),
    "upstream": (
        _upstream,
        None,
        "the real API to record from: one base URL, or API=URL pairs (chat=URL,messages=URL); "
        "OpenAI's and Anthropic's public APIs by default",
        None,
    ),
    "out": (str, None, "folder where recordings are written (one file per distinct request), and replayed from", None),
    "upstream-timeout": (_duration, "600s", "how long to wait for the upstream's answer before a 504", None),
    "validate": (
        str,
        "strict",
        "requests the real API would refuse: strict (its 400), warn (answer, log and journal the violation), off",
        ("strict", "warn", "off"),
    ),
    "max-body": (_size, "10MB", "the largest request body accepted (bytes, or 10MB, 512KiB); larger gets a 413", None),
    "request-timeout": (
        _duration,
        "30s",
        "close a connection whose request does not arrive in full this long after its first byte (not scaled)",
        None,
    ),
    "api-key": (str, None, "demand this API key on API requests (Authorization: Bearer, x-api-key, api-key)", None),
    "admin-token": (str, None, "demand this token on the admin API (Bearer or x-mockllm-admin-token)", None),
}
# Boolean switches: `--NAME` turns it on; MOCKLLM_<NAME>=1/true/yes/on (or 0/false/no/off) sets the default.
SERVE_SWITCHES: dict[str, str] = {
    "reload": "reload scenario files when they change on disk (a broken edit keeps the last good version)",
}


def env_variable(name: str) -> str:
    """The environment variable of a `serve` option: `time-scale` -> `MOCKLLM_TIME_SCALE`."""
    return "MOCKLLM_" + name.upper().replace("-", "_")


def _env_default(name: str, kind: Callable[[str], Any], default: Any, choices: Sequence[str] | None) -> Any:
    variable = env_variable(name)
    raw = os.environ.get(variable)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(_usage_error(f"{variable}={raw!r}: {exc}")) from None
    if choices is not None and value not in choices:
        raise SystemExit(_usage_error(f"{variable}={raw!r} is not one of {', '.join(choices)}; set one of them"))
    return value


def _fill_from_environment(args: argparse.Namespace) -> None:
    """Every `serve` option left off the command line takes its MOCKLLM_<OPTION> variable, else its default."""
    for name, (kind, default, _, choices) in SERVE_OPTIONS.items():
        attribute = name.replace("-", "_")
        if getattr(args, attribute) is None:
            setattr(
                args,
                attribute,
                _env_default(name, kind, kind(default) if isinstance(default, str) else default, choices),
            )
    for name in SERVE_SWITCHES:
        attribute = name.replace("-", "_")
        if getattr(args, attribute) is None:
            setattr(args, attribute, _env_default(name, _flag, False, None))
    if args.model is None:
        args.model = [m.strip() for m in os.environ.get(env_variable("model"), "").split(",") if m.strip()]
    if args.redact is None:
        # Patterns may hold commas: the variable takes one pattern a line.
        args.redact = [p for p in os.environ.get(env_variable("redact"), "").splitlines() if p.strip()]


def _usage_error(message: str) -> int:
    print(f"mockllm: error: {message}", file=sys.stderr)
    return 2


class _Parser(argparse.ArgumentParser):
    """argparse, with a "did you mean" for a mistyped option."""

    def error(self, message: str) -> NoReturn:
        match = re.match(r"unrecognized arguments: (-\S+)", message)
        if match:
            given = match.group(1).split("=", 1)[0]
            # Compared without the dashes, which every option shares and which would make any two look alike.
            names = {option.lstrip("-"): option for option in _option_strings(self)}
            close = difflib.get_close_matches(given.lstrip("-"), list(names), n=1, cutoff=0.7)
            hint = f"; did you mean {names[close[0]]}?" if close else f"; see `{self.prog} --help` for the options"
            message = f"unknown option {given}{hint}"
        super().error(message)


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of a parser and of its subcommands."""
    found: list[str] = []
    for action in parser._actions:
        found.extend(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_option_strings(sub))
    return sorted(set(found))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mockllm",
        description="A mock and replay server for testing LLM clients (OpenAI, Anthropic, vLLM).",
    )
    parser.add_argument("--version", action="version", version=f"mockllm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{serve,check,schema,distill}")
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
            default=None,  # None: not given; `parse_args` fills it from the environment or the default
            choices=choices,
            help=f"{text} (default: {default}; env {env_variable(name)})",
        )
    for name, text in SERVE_SWITCHES.items():
        serve.add_argument(f"--{name}", action="store_true", default=None, help=f"{text} (env {env_variable(name)})")
    serve.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="an extra model id for /v1/models (repeatable; env MOCKLLM_MODEL, a comma-separated list)",
    )

    serve.add_argument(
        "--redact",
        action="append",
        default=None,
        metavar="REGEX",
        help="also scrub this pattern from recordings and from requests before they are matched (repeatable; "
        "env MOCKLLM_REDACT, one pattern a line); API keys and bearer tokens are always scrubbed",
    )

    check = commands.add_parser("check", help="validate scenario files and report every problem")
    check.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or folders")
    check.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=os.environ.get(env_variable("dialect"), "openai"),
        help="the dialect `serve` will use, to warn about replies it cannot show (default: openai; env "
        "MOCKLLM_DIALECT)",
    )

    commands.add_parser("schema", help="print the JSON Schema of the scenario format")

    distill = commands.add_parser("distill", help="turn recordings into provider-neutral scenarios")
    distill.add_argument("paths", nargs="+", metavar="PATH", help="recording files or folders")
    distill.add_argument("-o", "--output", metavar="FILE", help="write the scenarios to FILE (default: stdout)")
    return parser


def run_check(paths: Sequence[str], dialect: str = "openai") -> int:
    """`mockllm check`: every problem with file:line, shadowing and dialect warnings; exit 1 on errors."""
    # What is loaded lives until the check ends: the cyclic collector would only walk it again and again.
    with gc_paused():
        return _check(paths, dialect)


def _check(paths: Sequence[str], dialect: str) -> int:
    from .dialect_check import dialect_warnings
    from .matching import shadowing_warnings
    from .toolloop import called_tools, tool_loop_warnings

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
    # Only a scenario that calls a tool can trap a later `after_tool` one: the others are left out of the pairing.
    tools = [s for s in scenarios if s.when.after_tool is not None or any(map(called_tools, s.sequence))]
    for loop in tool_loop_warnings(tools):
        warnings += 1
        print(f"warning: {loop.message()}", file=sys.stderr)
    for line in dialect_warnings(scenarios, dialect):
        warnings += 1
        print(f"warning: {line}", file=sys.stderr)
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
    """`mockllm serve`: load the scenarios, bind, serve until SIGTERM or Ctrl-C (then exit 0)."""
    from .logs import configure_logging, reset_logging
    from .serving import serve

    configure_logging(args.log_format, args.log_level)
    try:
        return serve(args)
    finally:
        reset_logging()


def _print_schema() -> int:
    """Print the JSON Schema; a reader that stops early (`mockllm schema | head`) is not an error."""
    try:
        print(json.dumps(json_schema(), indent=2), flush=True)
    except BrokenPipeError:
        # Python would report the broken pipe again when it flushes stdout at exit: point stdout at devnull first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; `serve` options left off it come from MOCKLLM_<OPTION> (exit 2 on a bad value)."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        _fill_from_environment(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mockllm` command; returns the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.command == "check":
        if args.dialect not in DIALECTS:  # from MOCKLLM_DIALECT: argparse checks only the flag
            return _usage_error(
                f"MOCKLLM_DIALECT={args.dialect!r} is not one of {', '.join(DIALECTS)}; set one of them"
            )
        return run_check(args.paths, args.dialect)
    if args.command == "schema":
        return _print_schema()
    if args.command == "distill":
        from .distill import run_distill

        return run_distill(args.paths, args.output)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"mockllm: no such file or folder: {', '.join(missing)}; check the path", file=sys.stderr)
        return 1
    return run_serve(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
