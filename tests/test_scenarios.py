"""Scenario files: every mistake a user can make gives file:line, the key path and the fix; the JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import EXAMPLES, ROOT

from mockllm.loading import Problem, ScenarioError, collect, json_schema, load_scenarios, load_text, read_file


def problems_in(text: str, source: str = "bad.yaml") -> list[str]:
    """The problems `load_text` reports for a document, as `mockllm check` prints them."""
    with pytest.raises(ScenarioError) as caught:
        load_text(textwrap.dedent(text).lstrip("\n"), source)
    return [str(problem) for problem in caught.value.problems]


# (id, document, the exact problems). Line numbers count from the document's first line.
MISTAKES: list[tuple[str, str, list[str]]] = [
    (
        "header-value-not-latin-1",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi, headers: {x-city: 東京}}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.headers: the header x-city has characters HTTP cannot carry ('東京'); "
            "use ASCII, or percent-encode them"
        ],
    ),
    (
        "header-name-with-a-space",
        """
        version: 1
        scenarios:
          - id: a
            reply: {error: {status: 429, headers: {"retry after": "1"}}}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.error.headers: 'retry after' is not a valid header name; use letters, "
            "digits and - (like x-request-id)"
        ],
    ),
    # Misspelt keys, at every level, with the closest valid key.
    (
        "misspelt-reply",
        """
        version: 1
        scenarios:
          - id: a
            repy: {text: hi}
        """,
        ["bad.yaml:4: scenarios[0].repy: unknown key `repy`; did you mean `reply`?"],
    ),
    (
        "misspelt-top-level",
        """
        version: 1
        scenaros:
          - id: a
            reply: {text: hi}
        """,
        ["bad.yaml:2: scenaros: unknown key `scenaros`; did you mean `scenarios`?"],
    ),
    (
        "misspelt-condition",
        """
        version: 1
        scenarios:
          - id: a
            when:
              api: chat
              promt: hi
            reply: {text: hi}
        """,
        ["bad.yaml:6: scenarios[0].when.promt: unknown key `promt`; did you mean `prompt`?"],
    ),
    (
        "misspelt-timing",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              text: hi
              timing: {ttf: 1s}
        """,
        ["bad.yaml:6: scenarios[0].reply.timing.ttf: unknown key `ttf`; did you mean `ttft`?"],
    ),
    (
        "misspelt-required-key-reported-once",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              tool_calls:
                - nme: get_weather
        """,
        ["bad.yaml:6: scenarios[0].reply.tool_calls[0].nme: unknown key `nme`; did you mean `name`?"],
    ),
    (
        "misspelt-in-second-reply",
        """
        version: 1
        scenarios:
          - id: a
            replies:
              - text: one
              - txt: two
        """,
        ["bad.yaml:6: scenarios[0].replies[1].txt: unknown key `txt`; did you mean `text`?"],
    ),
    (
        "misspelt-message-condition-without-union-noise",
        """
        version: 1
        scenarios:
          - id: a
            when:
              messages: [{rol: user}]
            reply: {text: hi}
        """,
        ["bad.yaml:5: scenarios[0].when.messages[0].rol: unknown key `rol`; did you mean `role`?"],
    ),
    (
        "misspelt-string-operator",
        """
        version: 1
        scenarios:
          - id: a
            when: {prompt: {contain: hi}}
            reply: {text: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].when.prompt: unknown key `contain` in a string condition (a plain string is an "
            "exact match, or use one of contains, regex, glob); did you mean `contains`?"
        ],
    ),
    (
        "unknown-key-far-from-any",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi, usage: {xyzzy: 3}}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.usage.xyzzy: unknown key `xyzzy`; valid keys here: prompt_tokens, "
            "completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens"
        ],
    ),
    # Wrong types.
    (
        "text-is-a-list",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: [a, b]}
        """,
        ["bad.yaml:4: scenarios[0].reply.text: expected a string, got a list ['a', 'b']"],
    ),
    (
        "id-is-a-number",
        """
        version: 1
        scenarios:
          - id: 5
            reply: {text: hi}
        """,
        ["bad.yaml:3: scenarios[0].id: expected a string, got the integer 5; quote it if you meant the string"],
    ),
    (
        "turn-is-a-word",
        """
        version: 1
        scenarios:
          - id: a
            when: {turn: two}
            reply: {text: hi}
        """,
        ["bad.yaml:4: scenarios[0].when.turn: expected an integer, got the string 'two'"],
    ),
    (
        "stream-is-not-a-bool",
        """
        version: 1
        scenarios:
          - id: a
            when: {stream: yes please}
            reply: {text: hi}
        """,
        ["bad.yaml:4: scenarios[0].when.stream: expected true or false, got 'yes please'"],
    ),
    (
        "tools-is-a-string",
        """
        version: 1
        scenarios:
          - id: a
            when: {tools: get_weather}
            reply: {text: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].when.tools: expected a list, got the string 'get_weather'; write it as a list, "
            "like [get_weather]"
        ],
    ),
    (
        "prompt-is-a-number",
        """
        version: 1
        scenarios:
          - id: a
            when: {prompt: 42}
            reply: {text: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].when.prompt: expected a string or {contains|regex|glob: ...}, got int 42; "
            "quote it if you meant the string"
        ],
    ),
    (
        "reply-is-a-string",
        """
        version: 1
        scenarios:
          - id: a
            reply: hello
        """,
        [
            "bad.yaml:4: scenarios[0].reply: expected a mapping (key: value), got the string 'hello'; write "
            "`{text: hello}` for a text reply"
        ],
    ),
    (
        "scenarios-is-a-mapping",
        """
        version: 1
        scenarios:
          id: a
          reply: {text: hi}
        """,
        [
            "bad.yaml:2: scenarios: expected a list, got a mapping {'id': 'a', 'reply': {'text': 'hi'}}; write each "
            "scenario as a `- ` item under `scenarios:`"
        ],
    ),
    (
        "scenario-is-a-string",
        """
        version: 1
        scenarios:
          - just a string
        """,
        [
            "bad.yaml:3: scenarios[0]: expected a mapping (key: value), got the string 'just a string'; each scenario "
            "is a mapping with `id`, `when` and `reply`"
        ],
    ),
    (
        "tool-arguments-are-a-number",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              tool_calls:
                - {name: f, arguments: 5}
        """,
        [
            "bad.yaml:6: scenarios[0].reply.tool_calls[0].arguments: arguments are a mapping (dumped as JSON) or a "
            "string, got 5; write {city: Oslo} or a JSON string"
        ],
    ),
    # Unknown values of closed sets.
    (
        "unknown-api",
        """
        version: 1
        scenarios:
          - id: a
            when: {api: chats}
            reply: {text: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].when.api: 'chats' is not a valid `api` (one of chat, completions, responses, "
            "messages, embeddings, models); did you mean `chat`?"
        ],
    ),
    (
        "unknown-then",
        """
        version: 1
        scenarios:
          - id: a
            replies: [{text: a}, {text: b}]
            then: loop
        """,
        ["bad.yaml:5: scenarios[0].then: 'loop' is not a valid `then`; use one of repeat-last, cycle, fall-through"],
    ),
    (
        "unknown-fault-kind",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              text: Hello there
              fault: {kind: explode}
        """,
        [
            "bad.yaml:6: scenarios[0].reply.fault.kind: 'explode' is not a valid `kind`; use one of error_event, end, "
            "disconnect, malformed, stall"
        ],
    ),
    (
        "misspelt-fault-kind",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: Hello there, fault: {kind: stal}}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.fault.kind: 'stal' is not a valid `kind` (one of error_event, end, "
            "disconnect, malformed, stall); did you mean `stall`?"
        ],
    ),
    (
        "unknown-dialect",
        """
        version: 1
        scenarios:
          - id: a
            dialect: ollama
            reply: {text: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].dialect: 'ollama' is not a valid `dialect`; use one of openai, vllm, "
            "vllm-0.10, azure, gemini-openai"
        ],
    ),
    (
        "unknown-finish-reason",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi, finish_reason: done}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.finish_reason: 'done' is not a valid `finish_reason`; use one of stop, "
            "length, tool_calls, content_filter"
        ],
    ),
    # Values out of range.
    (
        "bad-regex",
        """
        version: 1
        scenarios:
          - id: a
            when: {prompt: {regex: "(unclosed"}}
            reply: {text: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].when.prompt: regex '(unclosed' does not compile: missing ), unterminated "
            "subpattern at position 0"
        ],
    ),
    (
        "two-string-operators",
        """
        version: 1
        scenarios:
          - id: a
            when: {model: {glob: "gpt-*", regex: "^gpt"}}
            reply: {text: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].when.model: a string condition takes exactly one of contains, regex, glob, "
            "got glob, regex; keep one"
        ],
    ),
    (
        "bad-duration",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              text: hi
              timing: {ttft: soon}
        """,
        [
            "bad.yaml:6: scenarios[0].reply.timing.ttft: 'soon' is not a duration; write it as 250ms, 1.5s, 2m or a "
            "number of seconds"
        ],
    ),
    (
        "negative-duration-string",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi, timing: {chunk: -5ms}}
        """,
        ["bad.yaml:4: scenarios[0].reply.timing.chunk: '-5ms' is negative; a duration is 0 or more (250ms, 1.5s, 2)"],
    ),
    (
        "negative-duration-number",
        """
        version: 1
        scenarios:
          - id: a
            reply: {error: {status: 429, retry_after: -1}}
        """,
        ["bad.yaml:4: scenarios[0].reply.error.retry_after: -1 is negative; a duration is 0 or more (250ms, 1.5s, 2)"],
    ),
    (
        "fault-probability-above-one",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi, fault: {kind: stall, probability: 1.5}}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.fault.probability: a probability is a number from 0 to 1, got 1.5; use "
            "0.25 for a quarter of the requests"
        ],
    ),
    (
        "error-probability-below-zero",
        """
        version: 1
        scenarios:
          - id: a
            reply: {error: {status: 500, probability: -0.1}}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.error.probability: a probability is a number from 0 to 1, got -0.1; use "
            "0.25 for a quarter of the requests"
        ],
    ),
    (
        "error-status-not-an-error",
        """
        version: 1
        scenarios:
          - id: a
            reply: {error: {status: 200}}
        """,
        [
            "bad.yaml:4: scenarios[0].reply.error.status: an error status is from 400 to 599, got 200; use 429, 500 "
            "or 503, for example"
        ],
    ),
    (
        "negative-usage",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi, usage: {prompt_tokens: -3}}
        """,
        ["bad.yaml:4: scenarios[0].reply.usage.prompt_tokens: expected a number >= 0, got -3"],
    ),
    (
        "negative-message-count",
        """
        version: 1
        scenarios:
          - id: a
            when: {messages: -1}
            reply: {text: hi}
        """,
        ["bad.yaml:4: scenarios[0].when.messages: a message count is 0 or more, got -1"],
    ),
    (
        "fault-after-more-than-the-chunks",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              text: Hello there
              fault:
                kind: end
                after: 9
        """,
        [
            "bad.yaml:8: scenarios[0].reply.fault.after: `after` is 9, but the reply has only 2 content chunks; use a "
            "number from 0 to 2"
        ],
    ),
    # Keys that exclude or need each other.
    (
        "reply-and-replies",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi}
            replies: [{text: hi}]
        """,
        [
            "bad.yaml:5: scenarios[0].replies: give either `reply` (one answer) or `replies` (a sequence), not both; "
            "drop one"
        ],
    ),
    (
        "neither-reply-nor-replies",
        """
        version: 1
        scenarios:
          - id: a
            when: {prompt: hi}
        """,
        ["bad.yaml:3: scenarios[0]: a scenario needs `reply` (one answer) or `replies` (a sequence); add one"],
    ),
    (
        "empty-replies",
        """
        version: 1
        scenarios:
          - id: a
            replies: []
        """,
        ["bad.yaml:4: scenarios[0].replies: `replies` is empty; give at least one reply, or use `reply`"],
    ),
    (
        "then-without-replies",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi}
            then: cycle
        """,
        [
            "bad.yaml:5: scenarios[0].then: `then` applies only to a `replies` sequence; drop it, or turn `reply` "
            "into `replies`"
        ],
    ),
    (
        "text-and-chunks",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              text: hi
              chunks: [h, i]
        """,
        [
            "bad.yaml:6: scenarios[0].reply.chunks: give either `text` (split by the tokenizer) or `chunks` "
            "(explicit), not both; drop one"
        ],
    ),
    (
        "error-with-content",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              text: hi
              error: {status: 500}
        """,
        [
            "bad.yaml:6: scenarios[0].reply.error: an `error` reply sends no content, but text is given; drop one, or "
            "give the error a `probability`"
        ],
    ),
    (
        "chunk-and-tokens-per-second",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              text: hi
              timing:
                chunk: 10ms
                tokens_per_second: 50
        """,
        [
            "bad.yaml:8: scenarios[0].reply.timing.tokens_per_second: give either `chunk` or `tokens_per_second`, not "
            "both; drop one"
        ],
    ),
    (
        "argument-chunks-disagree",
        """
        version: 1
        scenarios:
          - id: a
            reply:
              tool_calls:
                - name: f
                  arguments: '{}'
                  chunks: ['{', ']']
        """,
        [
            "bad.yaml:8: scenarios[0].reply.tool_calls[0].chunks: the argument chunks do not join to the arguments; "
            "give only `chunks`, or make them agree"
        ],
    ),
    (
        "duplicate-ids",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi}
          - id: a
            reply: {text: ho}
        """,
        [
            "bad.yaml:5: scenarios[1].id: the id `a` is already used by the scenario at bad.yaml:3; rename one (ids "
            "must be unique)"
        ],
    ),
    # YAML itself.
    (
        "duplicate-yaml-key",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi}
            reply: {text: ho}
        """,
        ["bad.yaml:5: scenarios[0].reply: the key `reply` appears twice in this mapping (first on line 4); keep one"],
    ),
    (
        "unclosed-flow-mapping",
        """
        version: 1
        scenarios:
          - id: a
            reply: {text: hi
        """,
        [
            "bad.yaml:5: YAML syntax error: while parsing a flow mapping (from line 4), expected ',' or '}', but got "
            "'<stream end>'; check the indentation, brackets and quotes around line 5"
        ],
    ),
    (
        "bad-indentation",
        """
        version: 1
        scenarios:
          - id: a
           reply: {text: hi}
        """,
        [
            "bad.yaml:4: YAML syntax error: while parsing a block collection (from line 3), expected <block end>, but "
            "found '<block mapping start>'; check the indentation, brackets and quotes around line 4"
        ],
    ),
    (
        "tab-indentation",
        "version: 1\nscenarios:\n\t- id: a\n",
        [
            "bad.yaml:3: YAML syntax error: while scanning for the next token, found character '\\t' that cannot start "
            "any token; indent with spaces: YAML does not allow tabs"
        ],
    ),
    # The document as a whole.
    ("empty-file", "", ["bad.yaml:1: the file is empty; start it with `version: 1` and `scenarios:`"]),
    (
        "only-comments",
        "# nothing yet\n",
        ["bad.yaml:1: the file is empty; start it with `version: 1` and `scenarios:`"],
    ),
    (
        "top-level-list",
        """
        - id: a
          reply: {text: hi}
        """,
        ["bad.yaml:1: the top level is a list; write `version: 1` and put the list under `scenarios:`"],
    ),
    ("top-level-string", "hello\n", ["bad.yaml:1: the top level must be a mapping with `version: 1` and `scenarios:`"]),
    (
        "version-missing",
        """
        scenarios:
          - id: a
            reply: {text: hi}
        """,
        ["bad.yaml:1: version: `version` is missing; start the file with `version: 1`"],
    ),
    (
        "version-2",
        """
        version: 2
        scenarios: []
        """,
        ["bad.yaml:1: version: version 2 is not supported; write `version: 1`"],
    ),
    (
        "version-quoted",
        """
        version: "1"
        scenarios: []
        """,
        ["bad.yaml:1: version: version '1' is not supported; write `version: 1` (a number, without quotes)"],
    ),
    # Several mistakes: every one is reported, in line order.
    (
        "every-problem-reported",
        """
        version: 1
        scenarios:
          - id: a
            repy: {text: hi}
          - id: b
            when: {api: chats}
            reply: {txt: hi}
        """,
        [
            "bad.yaml:4: scenarios[0].repy: unknown key `repy`; did you mean `reply`?",
            "bad.yaml:6: scenarios[1].when.api: 'chats' is not a valid `api` (one of chat, completions, responses, "
            "messages, embeddings, models); did you mean `chat`?",
            "bad.yaml:7: scenarios[1].reply.txt: unknown key `txt`; did you mean `text`?",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(text, expected) for _, text, expected in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_mistake_messages(text: str, expected: list[str]) -> None:
    assert problems_in(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [(text, expected) for _, text, expected in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_mistakes_in_files_give_the_same_messages(tmp_path: Path, text: str, expected: list[str]) -> None:
    """A file on disk (what `mockllm check` and `serve` read) reports the same problems, under its own path."""
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    _, problems = collect([path])
    assert [str(problem).replace(str(path), "bad.yaml") for problem in problems] == expected


def test_scenario_error_lists_every_problem_and_ends_with_the_fix() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_text("version: 1\nscenarios:\n  - repy: {}\n  - when: {api: chats}\n    reply: {text: hi}\n", "x.yaml")
    message = str(caught.value)
    assert message.startswith("2 problems in scenario files:\n  x.yaml:3: scenarios[0].repy: unknown key `repy`")
    assert "\n  x.yaml:4: scenarios[1].when.api: 'chats' is not a valid `api`" in message
    assert message.endswith("Fix them, then check with `mockllm check PATH`.")
    assert all(isinstance(problem, Problem) for problem in caught.value.problems)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nscenarios:\n  - id: greet\n    reply: {text: hi}\n")
    (tmp_path / "b.yaml").write_text(
        "version: 1\nscenarios:\n  - id: other\n    reply: {text: ho}\n  - id: greet\n    reply: {text: ho}\n"
    )
    scenarios, problems = collect([tmp_path])
    assert [s.name for s in scenarios] == ["greet", "other", "greet"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'b.yaml'}:5: scenarios[1].id: the id `greet` is already used by the scenario at "
        f"{tmp_path / 'a.yaml'}:3; rename one (ids must be unique)"
    ]
    with pytest.raises(ScenarioError):
        load_scenarios([tmp_path / "a.yaml", tmp_path / "b.yaml"])


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a scenario file")
    missing = tmp_path / "nope.yaml"
    scenarios, problems = collect([missing, empty])
    assert scenarios == []
    assert [str(p) for p in problems] == [
        f"{missing}: no such file or folder; check the path",
        f"{empty}: the folder holds no .yaml, .yml or .json scenario files; add one or pass another path",
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nscenarios: []\n# caf\xe9\n".encode("latin-1"))
    _, problems = read_file(path)
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{path}: cannot read the file: 'utf-8' codec can't decode")


def test_folders_load_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("version: 1\nscenarios:\n  - id: b\n    reply: {text: b}\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z.yml").write_text("version: 1\nscenarios:\n  - id: z\n    reply: {text: z}\n")
    (tmp_path / "c.json").write_text(json.dumps({"version": 1, "scenarios": [{"id": "c", "reply": {"text": "c"}}]}))
    assert [s.name for s in load_scenarios([tmp_path])] == ["z", "b", "c"]


def test_unnamed_scenarios_get_ids_from_their_file(tmp_path: Path) -> None:
    path = tmp_path / "greetings.yaml"
    path.write_text("version: 1\nscenarios:\n  - reply: {text: a}\n  - id: named\n    reply: {text: b}\n")
    scenarios = load_scenarios([path])
    assert [(s.name, s.location) for s in scenarios] == [("greetings-1", f"{path}:3"), ("named", f"{path}:4")]


def test_example_scenarios_load_cleanly() -> None:
    scenarios, problems = collect([EXAMPLES])
    assert problems == []
    assert {"greet", "weather", "weather-answer", "flaky"} <= {s.name for s in scenarios}


# ---------------------------------------------------------------------------------------------------------------
# The JSON Schema (`mockllm schema`)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The schema as `mockllm schema` prints it."""
    result = subprocess.run(
        [sys.executable, "-m", "mockllm", "schema"], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    printed: dict[str, Any] = json.loads(result.stdout)
    assert printed == json_schema()
    return printed


def test_schema_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "mockllm scenario file"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates_against_the_schema(schema: dict[str, Any], path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(document)]
    assert errors == []


GOOD_DOCUMENTS = [
    {"version": 1, "scenarios": []},
    {"version": 1, "scenarios": [{"reply": {"text": "hi", "timing": {"ttft": "250ms", "chunk": 0.02}}}]},
    {"version": 1, "scenarios": [{"when": {"prompt": {"regex": "^hi$"}, "model": "gpt-4o"}, "reply": {"text": "x"}}]},
    {"version": 1, "scenarios": [{"reply": {"text": "x", "fault": {"kind": "stall", "after": 1, "for": "2s"}}}]},
    {"version": 1, "scenarios": [{"reply": {"tool_calls": [{"name": "f", "arguments": {"city": "Oslo"}}]}}]},
    {"version": 1, "scenarios": [{"when": {"messages": 2}, "replies": [{"text": "a"}], "then": "cycle"}]},
    {"version": 1, "scenarios": [{"when": {"messages": [{"role": "user", "content": {"glob": "*"}}]}, "reply": {}}]},
]
BAD_DOCUMENTS = [
    ("misspelt key", {"version": 1, "scenarios": [{"repy": {"text": "x"}}]}),
    ("version 2", {"version": 2, "scenarios": []}),
    ("no version", {"scenarios": []}),
    ("unknown api", {"version": 1, "scenarios": [{"when": {"api": "chats"}, "reply": {"text": "x"}}]}),
    ("misspelt operator", {"version": 1, "scenarios": [{"when": {"prompt": {"contain": "x"}}, "reply": {}}]}),
    ("two operators", {"version": 1, "scenarios": [{"when": {"model": {"glob": "a", "regex": "b"}}, "reply": {}}]}),
    ("bad duration", {"version": 1, "scenarios": [{"reply": {"timing": {"ttft": "soon"}}}]}),
    ("negative duration", {"version": 1, "scenarios": [{"reply": {"timing": {"chunk": -1}}}]}),
    ("unknown fault", {"version": 1, "scenarios": [{"reply": {"fault": {"kind": "explode"}}}]}),
    ("probability", {"version": 1, "scenarios": [{"reply": {"fault": {"kind": "stall", "probability": 2}}}]}),
    ("empty replies", {"version": 1, "scenarios": [{"replies": []}]}),
    ("unknown then", {"version": 1, "scenarios": [{"replies": [{"text": "a"}], "then": "loop"}]}),
    ("status", {"version": 1, "scenarios": [{"reply": {"error": {"status": 200}}}]}),
    ("scenarios not a list", {"version": 1, "scenarios": {"id": "a"}}),
]


@pytest.mark.parametrize("document", GOOD_DOCUMENTS)
def test_good_documents_validate(schema: dict[str, Any], document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(document)
    load_text(json.dumps(document), "doc.json")  # and the loader accepts them


@pytest.mark.parametrize("document", [doc for _, doc in BAD_DOCUMENTS], ids=[name for name, _ in BAD_DOCUMENTS])
def test_bad_documents_do_not_validate(schema: dict[str, Any], document: dict[str, Any]) -> None:
    assert not jsonschema.Draft202012Validator(schema).is_valid(document)
    # The loader refuses them too.
    with pytest.raises(ScenarioError):
        load_text(json.dumps(document), "doc.json")


def test_a_file_reached_through_two_paths_is_loaded_once(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    file = folder / "a.yaml"
    file.write_text("version: 1\nscenarios:\n  - id: one\n    reply: {text: hi}\n")
    (tmp_path / "link.yaml").symlink_to(file)
    relative = folder / ".." / "scenarios" / "a.yaml"
    scenarios, problems = collect([file, folder, tmp_path / "link.yaml", relative])
    assert problems == []
    assert [s.name for s in scenarios] == ["one"]
    assert scenarios[0]._source == str(file)  # named by the path it was first reached through
