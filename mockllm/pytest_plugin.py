"""The pytest plugin: one mock server per session, the per-test `mockllm` fixture, the marker and the options.

Registered through the `pytest11` entry point, so pytest loads this module in every run where mockllm is installed:
it imports nothing heavy (starlette, uvicorn, pydantic) until a test asks for a fixture.

Per-test isolation on the shared server: the marker's scenarios are installed as the server's *file* scenarios for
the duration of the test (so `MockState.reset()` keeps them), and everything a test adds goes in as *runtime*
scenarios, which the reset at the start and end of every test removes together with the journal and the sequence
positions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .reports import describe_problems

if TYPE_CHECKING:
    from .journal import Entry
    from .scenarios import Scenario
    from .server import MockServer

__all__ = ["MockLLM"]

MARKER_KEYWORDS = ("time_scale", "seed", "strict")
DUMMY_KEYS = {"OPENAI_API_KEY": "sk-mockllm-dummy-key", "ANTHROPIC_API_KEY": "sk-ant-mockllm-dummy-key"}
# How long `requests` waits for responses still being sent: the client can see the end of a body a moment before
# the server thread marks the journal entry complete.
SETTLE_SECONDS = 1.0


# -- options -----------------------------------------------------------------------------------------------------


def _time_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a factor such as 0 or 0.1") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite factor >= 0; give a factor such as 0 or 0.1")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give a seed such as 0 or 42") from None


RECORD_MODES = ("none", "missing", "all")


def _record(text: str) -> str:
    if text not in RECORD_MODES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a record mode; use one of {', '.join(RECORD_MODES)}")
    return text


def _upstream(text: str) -> str:
    from .recording import UpstreamError, parse_upstream

    try:
        parse_upstream(text)
    except UpstreamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockllm", "mockllm (mock LLM server)")
    group.addoption(
        "--mockllm-time-scale",
        dest="mockllm_time_scale",
        type=_time_scale,
        default=None,
        metavar="FACTOR",
        help="multiply every delay the mock server waits (0 makes every reply instant). Default: 1, or the "
        "mockllm_time_scale ini option.",
    )
    group.addoption(
        "--mockllm-seed",
        dest="mockllm_seed",
        type=_seed,
        default=None,
        metavar="N",
        help="seed of the generator behind jitter and fault probabilities, re-seeded for every test. Default: 0, "
        "or the mockllm_seed ini option.",
    )
    group.addoption(
        "--mockllm-record",
        dest="mockllm_record",
        choices=RECORD_MODES,
        default=None,
        help="none (default): replay each test's cassette and never touch the network; missing: record the "
        "exchanges a cassette lacks from the upstream; all: re-record every cassette whole. Default: the "
        "mockllm_record ini option, else none.",
    )
    group.addoption(
        "--mockllm-upstream",
        dest="mockllm_upstream",
        default=None,
        metavar="URL",
        help="the real API to record from: one base URL, or API=URL pairs (chat=URL,messages=URL). Default: the "
        "mockllm_upstream ini option, else OpenAI's and Anthropic's public APIs.",
    )
    parser.addini("mockllm_time_scale", "default of --mockllm-time-scale", default="")
    parser.addini("mockllm_seed", "default of --mockllm-seed", default="")
    parser.addini("mockllm_record", "default of --mockllm-record", default="")
    parser.addini("mockllm_upstream", "default of --mockllm-upstream", default="")


@dataclass(frozen=True)
class _Options:
    """The session's settings from the command line, or else the ini file; None when neither gives one."""

    time_scale: float | None
    seed: int | None
    record: str = "none"
    upstream: str | None = None


_OPTIONS = pytest.StashKey[_Options]()
_HANDLE = pytest.StashKey["MockLLM"]()
_CACHE = pytest.StashKey[dict[Any, "list[Scenario]"]]()


def _from_ini(config: pytest.Config, name: str, parse: Callable[[str], Any]) -> Any:
    text = str(config.getini(name)).strip()
    if not text:
        return None
    try:
        return parse(text)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"the ini option {name} = {text}: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mockllm(*paths, time_scale=None, seed=None, strict=True): serve these scenario files or folders "
        "(relative to the test file) to the test, through the mockllm fixture.",
    )
    time_scale = config.getoption("mockllm_time_scale")
    seed = config.getoption("mockllm_seed")
    record = config.getoption("mockllm_record") or _from_ini(config, "mockllm_record", _record) or "none"
    upstream = config.getoption("mockllm_upstream") or _from_ini(config, "mockllm_upstream", _upstream)
    config.stash[_OPTIONS] = _Options(
        time_scale if time_scale is not None else _from_ini(config, "mockllm_time_scale", _time_scale),
        seed if seed is not None else _from_ini(config, "mockllm_seed", _seed),
        record,
        upstream,
    )
    config.stash[_CACHE] = {}


# -- the marker --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Marked:
    """What the `mockllm` markers on a test ask for."""

    paths: tuple[Path, ...]
    time_scale: float | None
    seed: int | None
    strict: bool


def _read_markers(item: pytest.Item, base: Path) -> _Marked:
    """Merge the test's `mockllm` markers: keywords from the closest marker win; paths of every marker, closest
    first (so the function's scenarios match before its module's). Raises pytest's Failed with a clear message."""
    paths: dict[Path, None] = {}
    keywords: dict[str, Any] = {}
    for marker in item.iter_markers("mockllm"):
        unknown = sorted(set(marker.kwargs) - set(MARKER_KEYWORDS))
        if unknown:
            pytest.fail(
                f"@pytest.mark.mockllm on {item.nodeid} got the unknown argument(s) {', '.join(unknown)}; it takes "
                f"scenario paths and the keywords time_scale=, seed=, strict=. Fix the marker.",
                pytrace=False,
            )
        for key, value in marker.kwargs.items():
            keywords.setdefault(key, value)
        for arg in marker.args:
            if not isinstance(arg, str | os.PathLike):
                pytest.fail(
                    f"@pytest.mark.mockllm on {item.nodeid} got {arg!r} as a path; give scenario files or folders as "
                    f"strings, relative to the test file, and the options as keywords (time_scale=, seed=, strict=).",
                    pytrace=False,
                )
            paths[base / os.fspath(arg)] = None
    time_scale = keywords.get("time_scale")
    if time_scale is not None and (
        isinstance(time_scale, bool) or not isinstance(time_scale, int | float) or not 0 <= time_scale < float("inf")
    ):
        pytest.fail(
            f"@pytest.mark.mockllm on {item.nodeid}: time_scale={time_scale!r} is not a number >= 0; give a factor "
            f"such as 0 or 0.1.",
            pytrace=False,
        )
    seed = keywords.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        pytest.fail(
            f"@pytest.mark.mockllm on {item.nodeid}: seed={seed!r} is not an integer; give a seed such as 0 or 42.",
            pytrace=False,
        )
    strict = keywords.get("strict", True)
    if not isinstance(strict, bool):
        pytest.fail(
            f"@pytest.mark.mockllm on {item.nodeid}: strict={strict!r} is not True or False; fix the marker.",
            pytrace=False,
        )
    return _Marked(tuple(paths), None if time_scale is None else float(time_scale), seed, strict)


def _load_marked(config: pytest.Config, paths: tuple[Path, ...]) -> list[Scenario]:
    """The scenarios under the marker's paths, parsed once per session while the files stay unchanged."""
    from .loading import ScenarioError, load_scenarios, scenario_files

    if not paths:
        return []
    try:
        stamp = tuple((str(file), file.stat().st_mtime_ns, file.stat().st_size) for file, _ in scenario_files(paths))
    except OSError:
        stamp = None  # a missing path: load_scenarios names it
    cache = config.stash[_CACHE]
    key = (paths, stamp)
    if stamp is not None and key in cache:
        return cache[key]
    try:
        scenarios = load_scenarios(paths)
    except ScenarioError as exc:
        pytest.fail(f"@pytest.mark.mockllm: {exc}", pytrace=False)
    if stamp is not None:
        cache[key] = scenarios
    return scenarios


# -- the handle --------------------------------------------------------------------------------------------------


class MockLLM:
    """The `mockllm` fixture: the session's mock server, set up for one test.

    `add()` and `load()` add scenarios for this test only; `requests` is this test's journal; `reset()` starts the
    test's state over (journal, sequence positions, scenarios added in the test), keeping the marker's scenarios.
    """

    def __init__(self, server: MockServer, base: Path, strict: bool = True, record_hint: str | None = None) -> None:
        self.server = server
        self.strict = strict
        self.record_hint = record_hint  # how to record this test's exchanges (replay mode only)
        self._base = base
        self._misses: dict[int, Entry] = {}
        self._warnings: dict[int, Entry] = {}
        self._reported: set[int] = set()

    def __repr__(self) -> str:
        return f"<MockLLM {self.url}>"

    @property
    def url(self) -> str:
        """The server's base URL, `http://127.0.0.1:<port>` (no `/v1`)."""
        return self.server.url

    @property
    def openai_base_url(self) -> str:
        """The `base_url` for `openai.OpenAI`: the server's URL with `/v1`."""
        return self.server.openai_base_url

    @property
    def anthropic_base_url(self) -> str:
        """The `base_url` for `anthropic.Anthropic`: the server's URL."""
        return self.server.anthropic_base_url

    def add(
        self,
        *,
        when: Mapping[str, Any] | None = None,
        reply: Mapping[str, Any] | None = None,
        replies: Sequence[Mapping[str, Any]] | None = None,
        then: str | None = None,
        id: str | None = None,
        dialect: str | None = None,
        validate: str | None = None,
    ) -> str:
        """Add one scenario for this test (the keys of a scenario in a file); it matches before every other.

        Returns its id. A mistake raises `ScenarioError` naming the key and the fix.
        """
        from .loading import Problem, ScenarioError, load_text

        keys = {"id": id, "when": when, "reply": reply, "replies": replies, "then": then, "dialect": dialect}
        keys["validate"] = validate  # "off": answer this scenario's requests even when they break an API rule
        scenario = {key: value for key, value in keys.items() if value is not None}
        caller = sys._getframe(1)
        file, line = _show_path(caller.f_code.co_filename), caller.f_lineno
        try:
            scenarios = load_text(
                json.dumps({"version": 1, "scenarios": [scenario]}), f"mockllm.add() at {file}:{line}"
            )
        except ScenarioError as exc:
            # Key paths relative to the call, not to the document the mapping was wrapped in.
            problems = [
                Problem(p.source, 0, p.path.removeprefix("scenarios[0]").lstrip("."), p.message, p.severity)
                for p in exc.problems
            ]
            raise ScenarioError(problems) from None
        # Errors and misses name the scenario by the line of the test that added it.
        scenarios[0]._source, scenarios[0]._line = file, line
        return self.server.add_scenarios(scenarios)[0]

    def load(self, path: str | os.PathLike[str]) -> list[str]:
        """Add the scenarios of a file or folder (relative to the test file) for this test; returns their ids.

        They match before the scenarios added earlier, in their file order.
        """
        from .loading import load_scenarios

        loaded = load_scenarios([self._base / os.fspath(path)])
        fresh = _not_served(loaded, self.server.state.scenarios.file_scenarios)
        if fresh:
            self.server.add_scenarios(fresh)
        return [s.name for s in loaded]

    @property
    def requests(self) -> list[Entry]:
        """This test's requests, oldest first (since the last `reset()`).

        Each has `scenario` (the id that answered, or None), `body` (the parsed JSON), `path`, `status`, `api`,
        `model`, `stream`, `miss` (why nothing matched), `error`, `fault`, `chunks`, `chunk_times` and `duration`.
        Waits up to a second for responses still being sent to complete.
        """
        deadline = time.monotonic() + SETTLE_SECONDS
        entries = self.server.state.journal.entries()
        while any(entry.duration is None for entry in entries) and time.monotonic() < deadline:
            time.sleep(0.001)
        return entries

    @property
    def misses(self) -> list[Entry]:
        """The requests of this test that matched no scenario, across `reset()` calls."""
        self._collect_misses()
        return list(self._misses.values())

    @property
    def warnings(self) -> list[Entry]:
        """The requests of this test that were answered with a warning (a tool loop), across `reset()` calls."""
        self._collect_misses()
        return list(self._warnings.values())

    def reset(self) -> None:
        """Clear the journal, the sequence positions and the scenarios added in the test; keep the marker's.

        Requests that matched nothing before the reset still fail the test at the end (unless `strict=False`).
        """
        self._collect_misses()
        self.server.state.reset()

    def _collect_misses(self) -> None:
        for entry in self.server.state.journal.entries():
            # A request that broke a rule of the real API and was answered anyway (`--validate warn`) fails the test
            # too: against the real API it would have failed.
            if entry.miss is not None or entry.violation is not None:
                self._misses.setdefault(entry.id, entry)
            if entry.warning is not None:
                self._warnings.setdefault(entry.id, entry)

    def _unreported(self) -> list[Entry]:
        """Misses and warnings not shown to the user yet; they count as shown from now on."""
        problems = {entry.id: entry for entry in [*self.misses, *self.warnings]}
        fresh = [entry for _, entry in sorted(problems.items()) if entry.id not in self._reported]
        self._reported.update(entry.id for entry in fresh)
        return fresh


def _not_served(scenarios: list[Scenario], served: list[Scenario]) -> list[Scenario]:
    """`scenarios` less those from files that `served` already holds: each real file is loaded once (a module marker
    on a folder plus a test marker on a file in it, a session server and a marker naming the same file)."""
    from .loading import same_file

    files = {same_file(s._source) for s in served if Path(s._source).is_file()}
    return [s for s in scenarios if not (Path(s._source).is_file() and same_file(s._source) in files)]


def _show_path(filename: str) -> str:
    """A file name as messages show it: relative to the working directory when below it."""
    path = Path(filename)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mockllm_server(pytestconfig: pytest.Config) -> Iterator[MockServer]:
    """The mock server of the session (of each worker, under pytest-xdist): a `MockServer` on 127.0.0.1, on a free
    port, in a background thread. Tests share it through the `mockllm` fixture, which resets it around each test.

    Override it in a conftest.py to serve scenarios to every test: yield `MockServer([...paths])` started.
    """
    from .server import MockServer

    options = pytestconfig.stash[_OPTIONS]
    settings: dict[str, Any] = {}
    if options.time_scale is not None:
        settings["time_scale"] = options.time_scale
    if options.seed is not None:
        settings["seed"] = options.seed
    if options.record != "none":
        # Each test records into its own cassette; what a test-less request records goes here.
        settings.update(record=options.record, upstream=options.upstream, out=str(pytestconfig.rootpath / "cassettes"))
    with MockServer(**settings) as server:
        yield server


@pytest.fixture
def mockllm(request: pytest.FixtureRequest, mockllm_server: MockServer) -> Iterator[MockLLM]:
    """The mock server, set up for this test: a `MockLLM` handle (`url`, `openai_base_url`, `add()`, `load()`,
    `requests`, `reset()`).

    Serves the scenarios of the test's `@pytest.mark.mockllm(*paths)` marker, sets `OPENAI_BASE_URL`,
    `ANTHROPIC_BASE_URL` (and dummy API keys when unset) for the test, and fails the test if a request matched no
    scenario or got a reply that loops (a tool call answering its own result), unless the marker says `strict=False`.
    """
    from .cassettes import cassette_path, load_cassette, record_hint, start_recording, stop_recording
    from .loading import ScenarioError

    server = mockllm_server
    base = request.path.parent
    marked = _read_markers(request.node, base)
    marker_scenarios = _load_marked(request.config, marked.paths)
    options = request.config.stash[_OPTIONS]
    state = server.state
    saved_settings = (state.settings.time_scale, state.settings.seed)
    saved_files = state.scenarios.file_scenarios
    # A file the session server already serves is not loaded a second time for the marker.
    marker_scenarios = _not_served(marker_scenarios, saved_files)
    cassette = cassette_path(request.path, request.node.nodeid)
    try:
        recorded = [] if options.record == "all" else load_cassette(cassette)
    except ScenarioError as exc:
        pytest.fail(f"mockllm: the cassette of {request.node.nodeid} is broken: {exc}", pytrace=False)
    clash = {s.name for s in marker_scenarios} & {s.name for s in saved_files}
    if clash:
        pytest.fail(
            f"@pytest.mark.mockllm on {request.node.nodeid}: the id(s) {', '.join(sorted(clash))} are already used by "
            f"scenarios the mockllm_server fixture serves; rename them in one of the files.",
            pytrace=False,
        )
    state.settings.time_scale = next(
        v for v in (marked.time_scale, options.time_scale, saved_settings[0]) if v is not None
    )
    state.settings.seed = next(v for v in (marked.seed, options.seed, saved_settings[1]) if v is not None)
    # The marker's scenarios first, so that they answer before whatever the session server serves to every test.
    state.scenarios.replace_files([*marker_scenarios, *recorded, *saved_files])
    state.reset()
    recording = start_recording(server, cassette, recorded)

    handle = MockLLM(server, base, marked.strict, None if recording else record_hint(cassette, base))
    saved_env = {key: os.environ.get(key) for key in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", *DUMMY_KEYS)}
    os.environ["OPENAI_BASE_URL"] = server.openai_base_url
    os.environ["ANTHROPIC_BASE_URL"] = server.anthropic_base_url
    for key, dummy in DUMMY_KEYS.items():
        if not os.environ.get(key):
            os.environ[key] = dummy
    request.node.stash[_HANDLE] = handle
    leftover: list[Entry] = []
    try:
        yield handle
        leftover = handle._unreported() if handle.strict else []
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if recording:
            handle.requests  # noqa: B018 - waits (a second at most) for answers still streaming to be recorded
        stop_recording(server)
        state.scenarios.replace_files(saved_files)
        state.settings.time_scale, state.settings.seed = saved_settings
        state.reset()
        del request.node.stash[_HANDLE]
    if leftover:
        # Requests made after the test body (by other fixtures' teardown): the check at the end of the call missed
        # them, so they fail the teardown.
        pytest.fail(describe_problems(leftover, handle.record_hint), pytrace=False)


@pytest.fixture(autouse=True)
def _mockllm_marker(request: pytest.FixtureRequest) -> None:
    """A test with the `mockllm` marker gets the `mockllm` fixture even if it does not ask for it."""
    if request.node.get_closest_marker("mockllm") is not None:
        request.getfixturevalue("mockllm")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test whose requests matched no scenario, as a failure of the test itself (not of its teardown)."""
    try:
        result = yield
    except BaseException:
        handle = item.stash.get(_HANDLE, None)
        if handle is not None and handle.strict:
            misses = handle._unreported()
            if misses:
                # The test failed anyway (most likely because of the miss): show why next to its traceback.
                item.add_report_section("call", "mockllm", describe_problems(misses, handle.record_hint))
        raise
    handle = item.stash.get(_HANDLE, None)
    if handle is not None and handle.strict:
        misses = handle._unreported()
        if misses:
            pytest.fail(describe_problems(misses, handle.record_hint), pytrace=False)
    return result
