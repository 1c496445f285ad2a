"""The scenario format: pydantic models of a scenario file (`version: 1`, `scenarios: [...]`).

`loading.py` reads files into these models and reports problems with file, line and key path.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import re
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic import BeforeValidator as _Before

from . import regex_guard
from .timing import parse_duration
from .tokens import tokenize

API_NAMES = ("chat", "completions", "responses", "messages", "embeddings", "models")
FAULT_KINDS = ("error_event", "end", "disconnect", "malformed", "stall")
THEN_MODES = ("repeat-last", "cycle", "fall-through")
DialectName = Literal["openai", "vllm", "vllm-0.10", "azure", "gemini-openai"]
DIALECTS: tuple[str, ...] = get_args(DialectName)  # profiles in mockllm/dialects.py
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")

Duration = Annotated[
    float,
    _Before(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)\s*(ms|s|m)?\s*$"},
            ],
            "description": "250ms, 1.5s, 2m, or a number of seconds",
        }
    ),
]


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _check_headers(value: Any) -> Any:
    """Response headers must be sendable: token names, Latin-1 values without line breaks."""
    if not isinstance(value, Mapping):
        return value
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValueError(f"{name!r} is not a valid header name; use letters, digits and - (like x-request-id)")
        if isinstance(text, str):
            if "\r" in text or "\n" in text:
                raise ValueError(f"the header {name} has a line break in its value; remove it")
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(
                    f"the header {name} has characters HTTP cannot carry ({text!r}); use ASCII, or percent-encode them"
                ) from None
    return value


ResponseHeaders = Annotated[dict[str, str], _Before(_check_headers)]


class _Model(BaseModel):
    # Schemas are built on first use: a server started with no scenario (the pytest session server) never pays.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


_STRING_OPS = ("exact", "contains", "regex", "glob")


class StringCondition(_Model):
    """A string condition: a plain string (exact), or exactly one of `contains`, `regex`, `glob`."""

    model_config = ConfigDict(
        extra="forbid",
        defer_build=True,
        json_schema_extra={"anyOf": [{"type": "string"}, {"type": "object", "minProperties": 1, "maxProperties": 1}]},
    )

    exact: str | None = None
    contains: str | None = None
    regex: str | None = None
    glob: str | None = None
    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _from_plain(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"exact": value}
        if isinstance(value, Mapping):
            ops = [key for key in value if key in _STRING_OPS]
            unknown = [str(key) for key in value if key not in _STRING_OPS]
            close = difflib.get_close_matches(unknown[0], _STRING_OPS[1:], n=1, cutoff=0.6) if unknown else []
            if len(value) == 1 and close:
                raise ValueError(
                    f"unknown key `{unknown[0]}` in a string condition (a plain string is an exact match, or use "
                    f"one of contains, regex, glob); did you mean `{close[0]}`?"
                )
            if len(value) == 1 and unknown:
                raise ValueError(
                    f"unknown key `{unknown[0]}` in a string condition; write a plain string (an exact match) or "
                    f"use one of contains, regex, glob"
                )
            if len(value) != 1 or len(ops) != 1:
                raise ValueError(
                    f"a string condition takes exactly one of contains, regex, glob, got "
                    f"{', '.join(map(str, value)) or 'none'}; keep one"
                )
            return value
        raise ValueError(
            f"expected a string or {{contains|regex|glob: ...}}, got {type(value).__name__} {value!r}; "
            f"quote it if you meant the string"
        )

    @model_validator(mode="after")
    def _compile(self) -> StringCondition:
        if self.regex is not None:
            try:
                self._pattern = re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} does not compile: {exc}") from None
            regex_guard.check_pattern(self.regex)  # shapes that backtrack exponentially are refused at load
        return self

    def test(self, value: str) -> bool:
        """Does `value` satisfy the condition?"""
        if self.exact is not None:
            return value == self.exact
        if self.contains is not None:
            return self.contains in value
        if self._pattern is not None:
            return regex_guard.search(self._pattern, value)  # bounded time (regex_guard.py)
        assert self.glob is not None  # guaranteed by _from_plain
        return fnmatch.fnmatchcase(value, self.glob)

    def describe(self) -> str:
        """The condition as a user wrote it, for explanations."""
        if self.exact is not None:
            return json.dumps(self.exact)
        op = next(op for op in _STRING_OPS[1:] if getattr(self, op) is not None)
        slow = regex_guard.describe_slow(self.regex) if self.regex is not None else ""
        return f"{op} {json.dumps(getattr(self, op))}{slow}"


class MessageCondition(_Model):
    """One message of a `messages:` list condition."""

    role: StringCondition | None = None
    content: StringCondition | None = None


class When(_Model):
    """The conditions of a scenario; every one given must hold."""

    api: Literal["chat", "completions", "responses", "messages", "embeddings", "models"] | None = None
    model: StringCondition | None = None
    stream: bool | None = None
    prompt: StringCondition | None = None
    system: StringCondition | None = None
    messages: Annotated[
        int | list[MessageCondition] | None,
        Field(description="a message count, or a list of {role, content} conditions matched one to one"),
    ] = None
    tools: Annotated[
        list[StringCondition] | None,
        Field(description="tools the request must offer: each entry is satisfied by some offered tool's name"),
    ] = None
    after_tool: Annotated[
        StringCondition | None,
        Field(description="the messages after the last assistant message include a result of a tool so named"),
    ] = None
    headers: dict[str, StringCondition] | None = None
    body: dict[str, Any] | None = None
    turn: Annotated[int | None, Field(ge=0)] = None
    request: dict[str, Any] | None = None
    # The `recorded.redact` patterns of the file this condition comes from: applied to an incoming body before it
    # is compared with `request` (set by the loader).
    _redact: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_shape(cls, value: Any) -> Any:
        if value is None or isinstance(value, list) or (isinstance(value, int) and not isinstance(value, bool)):
            if isinstance(value, int) and value < 0:
                raise ValueError(f"a message count is 0 or more, got {value}")
            return value
        raise ValueError(
            f"expected a message count (an integer) or a list of {{role, content}} conditions, got {value!r}"
        )

    @field_validator("stream", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value

    # Computed on first use, once the loader has set `_redact`; a condition does not change once loaded.
    @cached_property
    def filing(self) -> Any:
        """Where the matching index files this condition (`index.Filing`)."""
        from .index import filing_of  # the index is built on these models

        return filing_of(self)


class ToolCallSpec(_Model):
    """A tool call the model makes."""

    name: str
    arguments: Annotated[
        str, WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "string"}]}), Field(validate_default=True)
    ] = ""
    id: str | None = None
    chunks: list[str] | None = None

    @field_validator("arguments", mode="before")
    @classmethod
    def _dump_mapping(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return json.dumps(value, ensure_ascii=False)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError(
                f"arguments are a mapping (dumped as JSON) or a string, got {value!r}; write {{city: Oslo}} or a "
                f"JSON string"
            )
        return value

    @model_validator(mode="after")
    def _chunks_agree(self) -> ToolCallSpec:
        if self.chunks is not None:
            joined = "".join(self.chunks)
            if not self.arguments:
                self.arguments = joined
            elif joined != self.arguments:
                raise ValueError(
                    "@chunks: the argument chunks do not join to the arguments; give only `chunks`, or make them agree"
                )
        return self

    @cached_property
    def argument_pieces(self) -> tuple[str, ...]:
        """The argument fragments to stream."""
        if self.chunks is not None:
            return tuple(chunk for chunk in self.chunks if chunk)
        return tuple(tokenize(self.arguments))


class UsageSpec(_Model):
    """Usage figures; each one not given is counted."""

    prompt_tokens: Annotated[int | None, Field(ge=0)] = None
    completion_tokens: Annotated[int | None, Field(ge=0)] = None
    cached_tokens: Annotated[int | None, Field(ge=0)] = None
    cache_creation_tokens: Annotated[int | None, Field(ge=0)] = None  # Anthropic's cache_creation_input_tokens
    reasoning_tokens: Annotated[int | None, Field(ge=0)] = None


class TimingSpec(_Model):
    """Delays: before the status line, before the first content chunk, between chunks."""

    ttft: Duration | None = None
    chunk: Duration | None = None
    tokens_per_second: Annotated[float | None, Field(gt=0)] = None
    jitter: Duration | None = None
    headers: Duration | None = None

    @model_validator(mode="after")
    def _one_rate(self) -> TimingSpec:
        if self.chunk is not None and self.tokens_per_second is not None:
            raise ValueError("@tokens_per_second: give either `chunk` or `tokens_per_second`, not both; drop one")
        return self

    def gap(self) -> float:
        """Seconds between two content chunks."""
        if self.tokens_per_second is not None:
            return 1.0 / self.tokens_per_second
        return self.chunk or 0.0


Probability = Annotated[float | None, Field(ge=0.0, le=1.0)]


class ErrorSpec(_Model):
    """An HTTP error sent instead of the reply."""

    status: Annotated[int, Field(ge=400, le=599)]
    type: str | None = None
    code: str | int | None = None
    message: str | None = None
    param: str | None = None
    retry_after: Duration | None = None
    should_retry: bool | None = None
    headers: ResponseHeaders | None = None
    body: Any = None
    probability: Probability = None


class FaultSpec(_Model):
    """A failure in the middle of a streamed reply."""

    kind: Literal["error_event", "end", "disconnect", "malformed", "stall"]
    after: Annotated[int, Field(ge=0)] = 0
    type: str | None = None
    message: str | None = None
    for_: Annotated[Duration | None, Field(alias="for")] = None
    probability: Probability = None
    # The Responses API's mid-stream error comes in two shapes (wire-formats.md §4); other APIs have one.
    form: Literal["nested", "flat"] | None = None

    @model_validator(mode="after")
    def _form_of_error_event(self) -> FaultSpec:
        if self.form is not None and self.kind != "error_event":
            raise ValueError(f"@form: `form` shapes an error_event fault, not `{self.kind}`; drop it")
        return self


class ChoiceSpec(_Model):
    """The content of one choice."""

    text: str | None = None
    chunks: list[str] | None = None
    reasoning: str | None = None
    # Anthropic's `redacted_thinking` block: its opaque `data`, sent as is (other APIs have no such block).
    redacted_reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallSpec] | None = None
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter"] | None = None

    @model_validator(mode="after")
    def _text_or_chunks(self) -> ChoiceSpec:
        if self.text is not None and self.chunks is not None:
            raise ValueError(
                "@chunks: give either `text` (split by the tokenizer) or `chunks` (explicit), not both; drop one"
            )
        return self

    # The pieces are split once per scenario (on first use), not on every request.
    @cached_property
    def text_pieces(self) -> tuple[str, ...]:
        """The text content as it is streamed, one piece a chunk."""
        if self.chunks is not None:
            return tuple(chunk for chunk in self.chunks if chunk)
        return tuple(tokenize(self.text)) if self.text else ()

    @cached_property
    def reasoning_pieces(self) -> tuple[str, ...]:
        return tuple(tokenize(self.reasoning)) if self.reasoning else ()

    @cached_property
    def refusal_pieces(self) -> tuple[str, ...]:
        return tuple(tokenize(self.refusal)) if self.refusal else ()

    def content_chunk_count(self) -> int:
        """Content chunks this choice streams: reasoning, text, refusal and tool-argument fragments."""
        count = len(self.text_pieces) + len(self.reasoning_pieces) + len(self.refusal_pieces)
        return count + sum(max(1, len(call.argument_pieces)) for call in self.tool_calls or ())


class RawEvent(_Model):
    """One recorded SSE event: its `data` text exactly as received, its `event` name, its offset."""

    data: str
    event: str | None = None
    at: Annotated[float | None, Field(ge=0)] = None


class RawReply(_Model):
    """A recorded answer, replayed byte for byte: the status, the kept headers, and the body or the events."""

    status: Annotated[int, Field(ge=100, le=599)]
    headers: ResponseHeaders = Field(default_factory=dict)
    body: str | None = None
    events: list[RawEvent] | None = None
    tail: str | None = None
    at: Annotated[float | None, Field(ge=0)] = None
    # The events encoded and classified once, on first replay (`replay.frames_of`), not on every request.
    _frames: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _body_or_events(self) -> RawReply:
        if (self.body is None) == (self.events is None):
            raise ValueError(
                "@events: a recorded reply has either `body` (a non-streamed answer) or `events` (a stream); give one"
            )
        return self

    @property
    def streamed(self) -> bool:
        return self.events is not None


class Reply(ChoiceSpec):
    """A provider-neutral reply: content, or an error, plus timing and faults."""

    usage: UsageSpec | None = None
    model: str | None = None
    headers: ResponseHeaders | None = None
    choices: list[ChoiceSpec] | None = None
    vectors: list[list[float]] | None = None
    timing: TimingSpec | None = None
    error: ErrorSpec | None = None
    fault: FaultSpec | None = None
    raw: RawReply | None = None

    @field_validator("vectors")
    @classmethod
    def _vectors_shape(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("`vectors` is empty; give one list of numbers per input, like [[0.6, 0.8]]")
        size = len(value[0])
        for index, vector in enumerate(value):
            if not vector:
                raise ValueError(f"vectors[{index}] is empty; give each vector at least one number")
            if len(vector) != size:
                raise ValueError(
                    f"vectors[{index}] has {len(vector)} numbers but vectors[0] has {size}; every vector needs the "
                    f"same number of dimensions"
                )
            if not all(math.isfinite(number) for number in vector):
                raise ValueError(f"vectors[{index}] holds a number that is not finite; use finite numbers only")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Reply:
        content = [
            key
            for key in ("text", "chunks", "reasoning", "redacted_reasoning", "refusal", "tool_calls", "choices")
            if getattr(self, key)
        ]
        if self.error is not None and self.error.probability is None and content:
            raise ValueError(
                f"@error: an `error` reply sends no content, but {', '.join(content)} is given; drop one, "
                f"or give the error a `probability`"
            )
        if self.raw is not None and (content or self.error is not None or self.usage or self.vectors is not None):
            given = ", ".join([*content, *(["error"] if self.error is not None else [])]) or "usage or vectors"
            raise ValueError(
                f"@raw: a recorded reply (`raw`) is sent byte for byte, but {given} is given too; drop one "
                f"(timing and fault apply to a recording; `mockllm distill` turns it into an editable reply)"
            )
        if self.choices is not None and any(getattr(self, key) is not None for key in ("text", "chunks", "refusal")):
            raise ValueError(
                "@choices: give the content either in `choices` (one per choice) or at the top, not both; drop one"
            )
        if self.fault is not None and self.fault.after > 0 and self.raw is None:
            available = min(choice.content_chunk_count() for choice in self.all_choices())
            if self.fault.after > available:
                raise ValueError(
                    f"@fault.after: `after` is {self.fault.after}, but the reply has only {available} content chunk"
                    f"{'' if available == 1 else 's'}; use a number from 0 to {available}"
                )
        return self

    def all_choices(self) -> list[ChoiceSpec]:
        """The distinct choices: `choices` if given, else the reply itself."""
        return list(self.choices) if self.choices else [self]


class Scenario(_Model):
    """A scenario: conditions, and the reply (or sequence of replies) to send when they hold."""

    id: str | None = None
    when: When = Field(default_factory=When)
    reply: Reply | None = None
    replies: Annotated[list[Reply] | None, Field(min_length=1)] = None
    then: Literal["repeat-last", "cycle", "fall-through"] | None = None
    dialect: DialectName | None = None
    # `validate: off` in YAML: requests this scenario answers skip the contract rules. (Named `validation` in Python
    # because pydantic's BaseModel has a `validate` of its own.)
    validation: Literal["off"] | None = Field(default=None, alias="validate")
    _source: str = PrivateAttr(default="<runtime>")
    _line: int = PrivateAttr(default=0)
    _index: int = PrivateAttr(default=-1)

    @field_validator("validation", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `off` as the boolean false.
        return "off" if value is False else value

    @model_validator(mode="after")
    def _one_reply(self) -> Scenario:
        if self.reply is None and self.replies is None:
            raise ValueError("a scenario needs `reply` (one answer) or `replies` (a sequence); add one")
        if self.reply is not None and self.replies is not None:
            raise ValueError("@replies: give either `reply` (one answer) or `replies` (a sequence), not both; drop one")
        if self.then is not None and self.replies is None:
            raise ValueError(
                "@then: `then` applies only to a `replies` sequence; drop it, or turn `reply` into `replies`"
            )
        return self

    @property
    def sequence(self) -> list[Reply]:
        """The replies in order (one for a plain `reply`)."""
        return self.replies if self.replies is not None else [self.reply] if self.reply is not None else []

    @property
    def then_mode(self) -> str:
        """What happens after the last reply of a sequence."""
        return self.then or "repeat-last"

    @property
    def location(self) -> str:
        """`file:line` where the scenario was defined, or `<runtime>`."""
        return f"{self._source}:{self._line}" if self._line else self._source

    @property
    def name(self) -> str:
        """The scenario id (always set once loaded)."""
        return self.id or "?"


class Recorded(_Model):
    """Where and when a recording was made, and the redaction patterns it was made with."""

    upstream: str | None = None
    date: str | None = None
    mockllm: str | None = None
    redact: list[str] = Field(default_factory=list)

    @field_validator("redact")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"the redact pattern {pattern!r} does not compile: {exc}") from None
        return value


class ScenarioFile(_Model):
    """A scenario file: `version: 1` and a list of scenarios."""

    version: Literal[1]
    scenarios: list[Scenario] = Field(default_factory=list)
    recorded: Recorded | None = None
