"""The pytest plugin, driven through `pytester`: a user's test files, run by pytest with the plugin loaded from its
entry point, against the real server and the real `openai` SDK."""

from __future__ import annotations

import os
import re
import sys
import textwrap
import unittest
from pathlib import Path
from typing import Any

import openai
import pytest

from mockllm import MockServer

pytest_plugins = ["pytester"]

GREET = """\
version: 1
scenarios:
  - id: greet
    when: {prompt: hi}
    reply: {text: Hello there!, timing: {ttft: 30s}}
  - id: count
    when: {prompt: count}
    replies:
      - {text: One.}
      - {text: Two.}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project as strict as ours: warnings are errors, markers must be registered, delays are instant."""
    pytester.makefile(
        ".ini",
        pytest=textwrap.dedent(
            """\
            [pytest]
            addopts = --strict-markers --strict-config -p no:cacheprovider
            filterwarnings = error
            asyncio_default_fixture_loop_scope = function
            mockllm_time_scale = 0
            """
        ),
    )
    scenarios = pytester.path / "tests" / "scenarios"
    scenarios.mkdir(parents=True)
    (scenarios / "greet.yaml").write_text(GREET)
    return pytester


def write_ini(pytester: pytest.Pytester, lines: str) -> None:
    """A pytest.ini with these lines (pytest-asyncio, installed here, warns unless its loop scope is set)."""
    pytester.makefile(".ini", pytest=f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{lines}\n")


def write_test(pytester: pytest.Pytester, source: str, name: str = "test_user.py") -> Path:
    """A test module in `tests/`, next to the `scenarios/` folder (not in the directory pytest runs from)."""
    path = pytester.path / "tests" / name
    path.write_text(textwrap.dedent(source))
    return path


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


# -- a user's tests with the openai SDK ------------------------------------------------------------------------------


def test_marker_fixture_and_openai_sdk(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import openai, pytest
        from openai.types.chat import ChatCompletionChunk

        @pytest.mark.mockllm("scenarios/greet.yaml")
        def test_stream(mockllm):
            with openai.OpenAI() as client:  # OPENAI_BASE_URL points at the mock
                chunks = list(client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True))
            assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there!"
            [entry] = mockllm.requests
            assert (entry.scenario, entry.path, entry.status, entry.api, entry.model, entry.stream) == (
                "greet", "/v1/chat/completions", 200, "chat", "gpt-4o-mini", True)
            assert entry.body["messages"] == [{"role": "user", "content": "hi"}]
            assert entry.miss is None and entry.error is None and entry.fault is None
            assert entry.chunks == len(entry.chunk_times) > 1 and entry.duration < 5  # ttft 30s, time scale 0

        def test_inline(mockllm):
            assert mockllm.openai_base_url == mockllm.url + "/v1"
            scenario_id = mockllm.add(when={"prompt": "hey"}, reply={"text": "Hi!"})
            with openai.OpenAI(base_url=mockllm.openai_base_url) as client:
                completion = client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hey"}])
            assert completion.choices[0].message.content == "Hi!"
            assert [entry.scenario for entry in mockllm.requests] == [scenario_id]
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2)


def test_async_tests_with_pytest_asyncio_and_anyio(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import openai, pytest

        async def ask(prompt):
            async with openai.AsyncOpenAI() as client:
                stream = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": prompt}], stream=True)
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        @pytest.mark.asyncio
        @pytest.mark.mockllm("scenarios")
        async def test_asyncio(mockllm):
            assert await ask("hi") == "Hello there!"
            assert [await ask("count"), await ask("count")] == ["One.", "Two."]

        @pytest.mark.anyio
        async def test_anyio(mockllm):
            mockllm.add(when={"prompt": "hi"}, reply={"text": "Async hello"})
            assert await ask("hi") == "Async hello"
            assert mockllm.requests[0].scenario is not None

        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2)


# -- the check at the end of a test ----------------------------------------------------------------------------------


def test_unmatched_request_fails_the_test_naming_the_closest_scenario(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import openai, pytest

        def ask(prompt):
            with openai.OpenAI(max_retries=0) as client:
                return client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])

        @pytest.mark.mockllm("scenarios/greet.yaml")
        def test_caught(mockllm):
            with pytest.raises(openai.NotFoundError):
                ask("hello")

        @pytest.mark.mockllm("scenarios/greet.yaml")
        def test_uncaught(mockllm):
            ask("hello")

        @pytest.mark.mockllm("scenarios/greet.yaml", strict=False)
        def test_not_strict(mockllm):
            with pytest.raises(openai.NotFoundError):
                ask("hello")
            assert "closest" in mockllm.requests[0].miss.lower()
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    text = output(result)
    # The caught miss fails the test itself (not its teardown), with the request and what differed.
    assert "ERROR at teardown" not in text
    result.stdout.fnmatch_lines(
        [
            "*_ test_caught _*",
            "mockllm: 1 request in this test matched no scenario.",
            "1. POST /v1/chat/completions",
            # The key order is the SDK's (openai 3.x sends `messages` first).
            '   body: {*"messages": [[]{"role": "user", "content": "hello"}]*}',  # [[] is a literal [
            '   No scenario matched this chat request (model "m", prompt "hello"). Closest scenarios:',
            '   - `greet` (*greet.yaml:3): prompt: expected "hi", got "hello"*',
            "*strict=False*",
        ]
    )
    # The uncaught one fails with the SDK's error, and the plugin's explanation beside it.
    result.stdout.fnmatch_lines(["*_ test_uncaught _*", "*NotFoundError*", "*Captured mockllm call*", "mockllm: 1 *"])
    result.stdout.fnmatch_lines(["FAILED tests/test_user.py::test_caught - Failed: mockllm: 1 request*"])


def test_misses_before_reset_and_in_teardown_still_fail(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import httpx, pytest

        def post(mockllm, prompt):
            body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
            return httpx.post(mockllm.openai_base_url + "/chat/completions", json=body).status_code

        def test_reset(mockllm):
            assert post(mockllm, "nothing matches") == 404
            mockllm.reset()
            assert mockllm.requests == [] and len(mockllm.misses) == 1

        @pytest.fixture
        def agent(mockllm):
            yield
            post(mockllm, "said at teardown")

        def test_teardown(agent):
            pass
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*_ test_reset _*", "mockllm: 1 request*", '*prompt "nothing matches"*'])
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_teardown*", "mockllm: 1 request*", "*said at teardown*"])


# -- isolation between tests -----------------------------------------------------------------------------------------


def test_tests_do_not_leak_sequences_scenarios_or_journal(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import httpx, pytest

        def ask(mockllm, prompt):
            body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
            response = httpx.post(mockllm.openai_base_url + "/chat/completions", json=body)
            return response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else None

        @pytest.mark.mockllm("scenarios/greet.yaml")
        @pytest.mark.parametrize("run", [1, 2])
        def test_sequence(mockllm, run):
            assert [ask(mockllm, "count") for _ in range(3)] == ["One.", "Two.", "Two."]
            assert len(mockllm.requests) == 3

        @pytest.mark.mockllm("scenarios/greet.yaml")
        def test_add_and_reset(mockllm):
            mockllm.add(id="extra", when={"prompt": "extra"}, reply={"text": "Added."})
            assert ask(mockllm, "extra") == "Added." and ask(mockllm, "count") == "One."
            mockllm.reset()  # clears what the test added and the positions; keeps the marker's scenarios
            assert mockllm.requests == []
            assert ask(mockllm, "count") == "One." and ask(mockllm, "hi") == "Hello there!"
            with pytest.raises(ValueError, match="already used by the scenario at .*greet.yaml:3; choose another"):
                mockllm.add(id="greet", reply={"text": "clash"})

        @pytest.mark.mockllm(strict=False)
        def test_next(mockllm):
            # Neither the marker's scenarios of earlier tests nor the scenario they added are served any more.
            assert ask(mockllm, "extra") is None and ask(mockllm, "count") is None
            assert [entry.scenario for entry in mockllm.requests] == [None, None]
            assert mockllm.server.state.scenarios.all() == []
        """,
    )
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_environment_is_set_for_the_test_and_restored(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    write_test(
        project,
        """
        import os
        import anthropic, openai

        def test_during(mockllm):
            assert os.environ["OPENAI_BASE_URL"] == mockllm.openai_base_url
            assert os.environ["ANTHROPIC_BASE_URL"] == mockllm.anthropic_base_url == mockllm.url
            assert os.environ["OPENAI_API_KEY"] == "sk-real-key"  # set: left alone
            assert os.environ["ANTHROPIC_API_KEY"]  # unset: a dummy for the test
            with openai.OpenAI() as client:
                assert str(client.base_url).rstrip("/") == mockllm.openai_base_url
            with anthropic.Anthropic() as client:
                assert str(client.base_url).rstrip("/") == mockllm.url

        def test_after():
            assert os.environ["OPENAI_BASE_URL"] == "https://api.openai.com/v1"
            assert "ANTHROPIC_BASE_URL" not in os.environ and "ANTHROPIC_API_KEY" not in os.environ
        """,
    )
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert os.environ["OPENAI_BASE_URL"] == "https://api.openai.com/v1"
    assert os.environ["OPENAI_API_KEY"] == "sk-real-key"
    assert "ANTHROPIC_BASE_URL" not in os.environ
    assert "ANTHROPIC_API_KEY" not in os.environ


def test_each_xdist_worker_has_its_own_server(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("PYTEST_XDIST", "PYTEST_CURRENT")):
            monkeypatch.delenv(name)
    (project.path / "tests" / "conftest.py").write_text("")
    write_test(
        project,
        """
        import os, pathlib
        import openai, pytest

        @pytest.mark.mockllm("scenarios/greet.yaml")
        @pytest.mark.parametrize("n", range(8))
        def test_request(mockllm, n):
            with openai.OpenAI() as client:
                stream = client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "count"}], stream=True)
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "One."
            line = f"{os.environ['PYTEST_XDIST_WORKER']} {mockllm.url}\\n"
            with open(pathlib.Path(__file__).parent / "workers.txt", "a") as out:
                out.write(line)
        """,
    )
    result = project.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=8)
    lines = (project.path / "tests" / "workers.txt").read_text().split()
    workers = dict(zip(lines[::2], lines[1::2], strict=True))
    assert len(lines) == 16
    assert sorted(workers) == ["gw0", "gw1"]
    assert len(set(workers.values())) == 2  # one server per worker, the same for all of its tests
    assert sorted(set(zip(lines[::2], lines[1::2], strict=True))) == sorted(workers.items())


# -- marker, options, ini ---------------------------------------------------------------------------------------------


def test_marker_paths_are_relative_to_the_test_file_and_load_too(project: pytest.Pytester) -> None:
    (project.path / "tests" / "more.yaml").write_text(
        "version: 1\nscenarios:\n"
        "  - {id: first, when: {prompt: {contains: x}}, reply: {text: First.}}\n"
        "  - {id: second, when: {prompt: xx}, reply: {text: Second.}}\n"
    )
    write_test(
        project,
        """
        import httpx, pytest

        pytestmark = pytest.mark.mockllm("scenarios/greet.yaml")

        def ask(mockllm, prompt):
            body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
            return httpx.post(mockllm.openai_base_url + "/chat/completions", json=body).json()

        def test_module_marker(mockllm):
            assert ask(mockllm, "hi")["choices"][0]["message"]["content"] == "Hello there!"

        def test_load(mockllm):
            assert mockllm.load("more.yaml") == ["first", "second"]
            # A loaded file keeps its order: `first` answers although `second` matches too.
            assert ask(mockllm, "xx")["choices"][0]["message"]["content"] == "First."
            assert [e.scenario for e in mockllm.requests] == ["first"]

        @pytest.mark.mockllm("more.yaml")
        def test_function_marker_first(mockllm):
            assert ask(mockllm, "x hi")["choices"][0]["message"]["content"] == "First."
            assert ask(mockllm, "hi")["choices"][0]["message"]["content"] == "Hello there!"
        """,
    )
    result = project.runpytest("tests/test_user.py")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'mockllm("scenarios", time_scal=0)',
            "@pytest.mark.mockllm on tests/test_user.py::test_it got the unknown argument(s) time_scal; it takes "
            "scenario paths and the keywords time_scale=, seed=, strict=. Fix the marker.",
        ),
        ('mockllm("missing.yaml")', "*tests/missing.yaml: no such file or folder; check the path"),
        ("mockllm(0.5)", "*got 0.5 as a path; give scenario files or folders as strings*"),
        ('mockllm(time_scale="fast")', "*time_scale='fast' is not a number >= 0; give a factor such as 0 or 0.1."),
        ("mockllm(seed=1.5)", "*seed=1.5 is not an integer*"),
        ('mockllm(strict="no")', "*strict='no' is not True or False*"),
    ],
)
def test_bad_marker_arguments_are_clear_errors(project: pytest.Pytester, marker: str, message: str) -> None:
    write_test(project, f"import pytest\n\n@pytest.mark.{marker}\ndef test_it(mockllm):\n    pass\n")
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_it*", message])
    assert "Traceback" not in output(result)


def test_bad_scenario_in_marker_file_names_file_line_and_key(project: pytest.Pytester) -> None:
    (project.path / "tests" / "bad.yaml").write_text("version: 1\nscenarios:\n  - when: {promt: hi}\n    reply: {}\n")
    write_test(project, "import pytest\n\n@pytest.mark.mockllm('bad.yaml')\ndef test_it():\n    pass\n")
    result = project.runpytest()
    result.assert_outcomes(errors=1)  # the marker alone brings in the fixture
    result.stdout.fnmatch_lines(["*tests/bad.yaml:3: scenarios[[]0[]].when.promt: unknown key `promt`*"])


def test_add_errors_name_the_call_and_the_key(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import pytest
        from mockllm import ScenarioError

        def test_it(mockllm):
            with pytest.raises(ScenarioError) as info:
                mockllm.add(when={"promt": "hi"}, reply={"text": "x"})
            assert "mockllm.add() at tests/test_user.py:7: when.promt: unknown key `promt`" in str(info.value)
        """,
    )
    project.runpytest().assert_outcomes(passed=1)


SETTINGS_TEST = """
import pytest

@pytest.mark.mockllm(seed=9)
def test_marker_seed(mockllm):
    assert mockllm.server.settings.seed == 9

@pytest.mark.mockllm(time_scale=0.5)
def test_marker_time_scale(mockllm):
    assert mockllm.server.settings.time_scale == 0.5

def test_option(mockllm, pytestconfig):
    expected = pytestconfig.getoption("expected").split(",")
    assert [mockllm.server.settings.time_scale, mockllm.server.settings.seed] == [float(expected[0]), int(expected[1])]
"""


@pytest.mark.parametrize(
    ("ini", "args", "expected"),
    [
        ("", [], "1,0"),  # the server's defaults
        ("mockllm_time_scale = 0.25\nmockllm_seed = 3", [], "0.25,3"),
        ("mockllm_time_scale = 0.25\nmockllm_seed = 3", ["--mockllm-seed", "4"], "0.25,4"),
        ("mockllm_time_scale = 0.25\nmockllm_seed = 3", ["--mockllm-time-scale=2", "--mockllm-seed=4"], "2,4"),
    ],
)
def test_marker_beats_command_line_beats_ini(
    pytester: pytest.Pytester, ini: str, args: list[str], expected: str
) -> None:
    write_ini(pytester, f"addopts = --strict-markers --strict-config\n{ini}")
    pytester.makeconftest("def pytest_addoption(parser):\n    parser.addoption('--expected')\n")
    pytester.makepyfile(SETTINGS_TEST)
    pytester.runpytest(*args, f"--expected={expected}").assert_outcomes(passed=3)


def test_time_scale_option_applies_to_replies(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "")
    pytester.makepyfile(
        """
        import time, httpx

        def test_slow(mockllm):
            mockllm.add(reply={"text": "Slow.", "timing": {"ttft": "60s"}})
            started = time.monotonic()
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            assert httpx.post(mockllm.openai_base_url + "/chat/completions", json=body, timeout=30).status_code == 200
            assert time.monotonic() - started < 10
        """
    )
    pytester.runpytest("--mockllm-time-scale", "0").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (["--mockllm-time-scale", "fast"], "", "*--mockllm-time-scale: 'fast' is not a number; give a factor*"),
        (["--mockllm-seed", "x"], "", "*--mockllm-seed: 'x' is not an integer; give a seed such as 0 or 42"),
        ([], "mockllm_time_scale = -1", "*the ini option mockllm_time_scale = -1: '-1' is not a finite factor >= 0*"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], ini: str, message: str) -> None:
    write_ini(pytester, ini)
    pytester.makepyfile("def test_it():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_help_groups_the_options(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "")
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["mockllm (mock LLM server):", "  --mockllm-time-scale=FACTOR", "*every delay*", "  --mockllm-seed=N *"]
    )
    result.stdout.fnmatch_lines(["*mockllm_time_scale (string):*", "*mockllm_seed (string):*"])


def test_session_server_can_be_overridden_with_shared_scenarios(project: pytest.Pytester) -> None:
    (project.path / "tests" / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pathlib, pytest
            from mockllm import MockServer

            @pytest.fixture(scope="session")
            def mockllm_server():
                shared = "version: 1\\nscenarios:\\n  - {id: shared, reply: {text: Shared.}}\\n"
                path = pathlib.Path(__file__).parent / "shared.yaml"
                path.write_text(shared)
                with MockServer([path], time_scale=0) as server:
                    yield server
            """
        )
    )
    write_test(
        project,
        """
        import httpx, pytest

        def ask(mockllm, prompt):
            body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
            return httpx.post(mockllm.openai_base_url + "/chat/completions", json=body).json()

        @pytest.mark.mockllm("scenarios/greet.yaml")
        def test_marker_first(mockllm):
            assert ask(mockllm, "hi")["choices"][0]["message"]["content"] == "Hello there!"
            assert ask(mockllm, "other")["choices"][0]["message"]["content"] == "Shared."

        def test_shared_only(mockllm):
            assert ask(mockllm, "hi")["choices"][0]["message"]["content"] == "Shared."
        """,
    )
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


# -- MockServer outside pytest ----------------------------------------------------------------------------------------


class MockServerFromUnittest(unittest.TestCase):
    """`MockServer` as a unittest user (or any other framework) would use it."""

    server: MockServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = MockServer(time_scale=0).start()
        cls.addClassCleanup(cls.server.stop)

    def setUp(self) -> None:
        self.server.reset()

    def test_stream(self) -> None:
        self.server.add({"id": "hello", "when": {"prompt": "hi"}, "reply": {"text": "Hello from unittest"}})
        with openai.OpenAI(base_url=self.server.openai_base_url, api_key="sk-test") as client:
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "Hello from unittest"
        assert [e.scenario for e in self.server.state.journal.entries()] == ["hello"]

    def test_reset_between_tests(self) -> None:
        assert self.server.state.journal.entries() == []
        assert self.server.state.scenarios.runtime_scenarios == []


def test_mockserver_in_a_script_without_pytest(pytester: pytest.Pytester) -> None:
    (pytester.path / "greet.yaml").write_text(GREET)
    script = pytester.makepyfile(
        check=textwrap.dedent(
            """
            import sys
            import mockllm
            assert "uvicorn" not in sys.modules and "starlette" not in sys.modules  # imported on first use
            import openai
            from mockllm import MockServer

            with MockServer(["greet.yaml"], time_scale=0) as server:
                assert server.url.startswith("http://127.0.0.1:")
                with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test") as client:
                    answer = client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "hi"}])
            print(answer.choices[0].message.content, "pytest" in sys.modules)
            import mockllm.pytest_plugin
            assert "uvicorn" in sys.modules
            """
        )
    )
    result = pytester.run(sys.executable, script)
    assert result.ret == 0, output(result)
    assert result.outlines == ["Hello there! False"]


def test_loading_the_plugin_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    code = "import sys, mockllm.pytest_plugin; print(sorted({'uvicorn', 'starlette', 'pydantic'} & set(sys.modules)))"
    result = pytester.run(sys.executable, "-c", code)
    assert result.outlines == ["[]"], output(result)


def test_every_export_resolves_although_imported_lazily() -> None:
    import mockllm

    assert mockllm.__all__ == sorted(mockllm.__all__)
    assert all(getattr(mockllm, name) is not None for name in mockllm.__all__)
    assert set(mockllm.__all__) <= set(dir(mockllm))


def test_start_reraises_the_error_the_server_thread_died_of(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    async def broken(self: Any, sockets: Any = None) -> None:
        raise OSError("no sockets today")

    monkeypatch.setattr(uvicorn.Server, "serve", broken)
    server = MockServer()
    with pytest.raises(RuntimeError, match=re.escape("the mockllm server failed to start: OSError('no sockets")):
        server.start()
    server.stop()  # nothing left to stop


def test_accepted_connections_have_nodelay() -> None:
    # Without TCP_NODELAY, Nagle holds back the second write of every response until the client's delayed ACK:
    # each request took 40 ms more.
    import socket

    import httpx

    from mockllm.transport import _transports

    with MockServer() as server, httpx.Client() as client:
        assert client.get(server.url + "/_mockllm/health").status_code == 200
        [transport] = [t for (host, _), t in _transports.items() if host == "127.0.0.1" and not t.is_closing()][-1:]
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_request_to_an_unserved_path_fails_the_test_like_a_miss(project: pytest.Pytester) -> None:
    write_test(
        project,
        """
        import openai, pytest

        def test_wrong_base_url(mockllm):
            mockllm.add(when={"prompt": "hi"}, reply={"text": "Hello!"})
            # A client configured without /v1 hits an unserved path; the test swallows the error.
            with openai.OpenAI(base_url=mockllm.url, max_retries=0) as client:
                with pytest.raises(openai.NotFoundError):
                    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "mockllm: 1 request in this test matched no scenario.",
            "1. POST /chat/completions",
            "*mockllm does not serve POST /chat/completions. Likely fix: the base URL is missing /v1*",
        ]
    )


def test_each_real_file_is_loaded_once_whatever_paths_reach_it(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        import pathlib, pytest
        from mockllm import MockServer

        @pytest.fixture(scope="session")
        def mockllm_server():
            # The session server already serves greet.yaml to every test.
            with MockServer([pathlib.Path(__file__).parent / "tests" / "scenarios" / "greet.yaml"], time_scale=0) as s:
                yield s
        """
    )
    write_test(
        project,
        """
        import openai, pytest

        pytestmark = pytest.mark.mockllm("scenarios")  # a module marker on the folder

        def ask(prompt):
            with openai.OpenAI(max_retries=0) as client:
                reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
                return reply.choices[0].message.content

        @pytest.mark.mockllm("scenarios/greet.yaml")  # and a test marker on a file in it
        def test_folder_and_file(mockllm):
            assert ask("hi") == "Hello there!"

        def test_load_a_served_file(mockllm):
            assert mockllm.load("scenarios/../scenarios/greet.yaml") == ["greet", "count"]
            assert ask("hi") == "Hello there!"
        """,
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2)


def test_an_anthropic_client_made_in_a_test_reaches_the_mock(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    write_test(
        project,
        """
        import asyncio
        import anthropic

        def test_sync(mockllm):
            mockllm.add(when={"api": "messages", "prompt": "hi"}, reply={"text": "Hello there!"})
            with anthropic.Anthropic() as client:
                message = client.messages.create(
                    model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
                )
            assert message.content[0].text == "Hello there!"
            (entry,) = mockllm.requests
            assert (entry.api, entry.path, entry.status) == ("messages", "/v1/messages", 200)
            assert entry.scenario is not None

        def test_async(mockllm):
            mockllm.add(when={"api": "messages"}, reply={"text": "Async hello."})

            async def ask():
                async with anthropic.AsyncAnthropic() as client:
                    async with client.messages.stream(
                        model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
                    ) as stream:
                        return "".join([piece async for piece in stream.text_stream])

            assert asyncio.run(ask()) == "Async hello."

        def test_miss(mockllm):
            with anthropic.Anthropic() as client:
                try:
                    client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "?"}])
                except anthropic.NotFoundError:
                    pass
        """,
    )
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)  # the unanswered request fails test_miss
    assert "No scenario matched this messages request" in output(result)
