"""Every `serve` option also from MOCKLLM_<OPTION>: the flag wins, a bad value exits 2, README documents them all."""

from __future__ import annotations

import argparse
import re
from typing import Any

import pytest
from conftest import ROOT

from mockllm.cli import build_parser, env_variable, main, parse_args

# A valid environment value for every serve option, and what it parses to.
EXAMPLES: dict[str, tuple[str, Any]] = {
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9000", 9000),
    "workers": ("4", 4),
    "dialect": ("vllm", "vllm"),
    "model": ("org/model-a, model-b", ["org/model-a", "model-b"]),
    "time-scale": ("0.5", 0.5),
    "seed": ("7", 7),
    "journal-size": ("5", 5),
    "fallback": ("echo", "echo"),
    "log-level": ("debug", "debug"),
    "log-format": ("json", "json"),
    "reload": ("yes", True),
    "grace": ("250ms", 0.25),
    "record": ("missing", "missing"),
    "upstream": ("chat=http://127.0.0.1:9", "chat=http://127.0.0.1:9"),
    "out": ("recordings", "recordings"),
    "redact": ("acct-[0-9]+\nsecret-\\w+", ["acct-[0-9]+", "secret-\\w+"]),
    "upstream-timeout": ("2s", 2.0),
    "validate": ("warn", "warn"),
    "max-body": ("512KiB", 512 * 1024),
    "request-timeout": ("5s", 5.0),
    "api-key": ("mock-key-Zq81", "mock-key-Zq81"),
    "admin-token": ("admin-Zq81", "admin-Zq81"),
}


def serve_options() -> list[str]:
    """The long option names of `mockllm serve`, as its parser knows them."""
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serve = commands.choices["serve"]
    return [s[2:] for a in serve._actions for s in a.option_strings if s.startswith("--") and s != "--help"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in serve_options():
        monkeypatch.delenv(env_variable(name), raising=False)


def test_every_serve_option_has_an_environment_example() -> None:
    assert sorted(serve_options()) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_option_is_read_from_its_environment_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, expected = EXAMPLES[name]
    monkeypatch.setenv(env_variable(name), raw)
    args = parse_args(["serve"])
    assert getattr(args, name.replace("-", "_")) == expected


def test_defaults_without_environment() -> None:
    args = parse_args(["serve"])
    assert (args.host, args.port, args.dialect, args.model, args.time_scale, args.seed) == (
        "127.0.0.1",
        8000,
        "openai",
        [],
        1.0,
        0,
    )
    assert (args.journal_size, args.fallback, args.log_level, args.log_format, args.reload, args.grace) == (
        1000,
        "error",
        "info",
        "plain",
        False,
        10.0,
    )


def test_the_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCKLLM_LOG_LEVEL", "WARNING")
    assert parse_args(["serve"]).log_level == "warning"
    assert parse_args(["serve", "--log-level", "DEBUG"]).log_level == "debug"


def test_a_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCKLLM_PORT", "9000")
    monkeypatch.setenv("MOCKLLM_MODEL", "from-env")
    monkeypatch.setenv("MOCKLLM_GRACE", "1s")
    args = parse_args(["serve", "--port", "9001", "--model", "a", "--model", "b", "--grace", "2s"])
    assert (args.port, args.model, args.grace) == (9001, ["a", "b"], 2.0)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MOCKLLM_PORT", "eighty", "MOCKLLM_PORT='eighty': 'eighty' is not a port number; give 0-65535"),
        ("MOCKLLM_PORT", "70000", "MOCKLLM_PORT='70000': 70000 is not a port number; give 0-65535"),
        ("MOCKLLM_TIME_SCALE", "-1", "MOCKLLM_TIME_SCALE='-1': '-1' is negative; give 0 or more"),
        (
            "MOCKLLM_DIALECT",
            "ollama",
            "MOCKLLM_DIALECT='ollama' is not one of openai, vllm, vllm-0.10, azure, gemini-openai; set one of them",
        ),
        ("MOCKLLM_LOG_FORMAT", "xml", "MOCKLLM_LOG_FORMAT='xml' is not one of plain, json"),
        ("MOCKLLM_GRACE", "soon", "MOCKLLM_GRACE='soon': 'soon' is not a duration"),
        ("MOCKLLM_RELOAD", "maybe", "MOCKLLM_RELOAD='maybe': 'maybe' is not a boolean; write 1, true, yes or on"),
        ("MOCKLLM_JOURNAL_SIZE", "0", "MOCKLLM_JOURNAL_SIZE='0': 0 is too small; give 1 or more"),
        (
            "MOCKLLM_WORKERS",
            "auto",
            "MOCKLLM_WORKERS='auto': 'auto' is not a number of worker processes; give 1 (the default) to 256",
        ),
        ("MOCKLLM_WORKERS", "0", "MOCKLLM_WORKERS='0': 0 is not a number of worker processes; give 1 (the default)"),
    ],
)
def test_a_bad_environment_value_exits_2_naming_the_variable(
    variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_environment_value_is_ignored_by_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOCKLLM_PORT", "eighty")
    assert main(["check", str(ROOT / "scenarios")]) == 0
    assert "ok:" in capsys.readouterr().out


def test_the_readme_table_lists_every_serve_option_with_its_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Options from the environment", 1)[1].split("\n###", 1)[0]
    rows = re.findall(r"^\| `--([a-z-]+)` \| `(MOCKLLM_[A-Z_]+)` \|", section, flags=re.MULTILINE)
    assert sorted(rows) == sorted((name, env_variable(name)) for name in serve_options())
