"""`mockllm distill`: recordings in, provider-neutral scenarios out.

A recording (DESIGN.md "Record and replay") answers one exact request with the exact bytes of one API. Distilling
keeps what the answer *said* and drops how that API spelled it: each recorded scenario becomes
`when: {model, prompt}` (plus `after_tool` in a tool loop) and a neutral `reply:` (text or chunks, reasoning,
refusal, tool calls, finish reason, usage, and the recorded pace as `timing: {ttft, chunk}`), so that a stream
recorded from OpenAI can be served to an Anthropic or Responses client, and edited like a hand-written scenario.
Decoding each API's events is `distill_replies.py`; this module reads the files, builds the conditions, orders
the scenarios and writes the YAML.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .distill_replies import CallDraft, ChoiceDraft, Draft, decode_body, decode_events
from .loading import Problem, ScenarioError, load_text, parse_yaml, scenario_files
from .protocols import anthropic, embeddings, openai_chat, openai_completions, openai_responses
from .protocols.base import ParsedRequest, RequestError, content_text
from .protocols.responses_input import ResponsesRequest
from .scenarios import Reply
from .timing import parse_duration
from .tokens import tokenize

_PARSERS = {
    "chat": openai_chat.parse,
    "completions": openai_completions.parse,
    "messages": anthropic.parse,
    "responses": openai_responses.parse,
    "embeddings": embeddings.parse,
}
_RECORDED_APIS = (*_PARSERS, "models")
_HOW_TO_RECORD = "record one with `mockllm serve --upstream URL --record missing --out DIR`"


@dataclass
class Recorded:
    """One recorded scenario: where it is, the request, and its answers (one, or a sequence)."""

    source: str
    line: int
    id: str
    api: str
    request: dict[str, Any]
    raws: list[dict[str, Any]]
    sequence: bool
    then: str | None
    parsed: ParsedRequest | None = None
    drafts: list[Draft] = field(default_factory=list)


def _where(source: str, line: int) -> str:
    return f"{source}:{line}" if line else source


def read_recordings(path: Path) -> tuple[list[Recorded], list[Problem]]:
    """The recorded scenarios of one file, or the problems that make it not a recording."""
    source = str(path)
    try:
        data, lines = parse_yaml(path.read_text(encoding="utf-8"), source)
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(source, 0, "", f"cannot read the file: {exc}")]
    except ScenarioError as exc:
        return [], exc.problems
    if not isinstance(data, Mapping) or not isinstance(data.get("scenarios"), list) or data.get("version") != 1:
        message = (
            "not a recording: a recording is a scenario file with `version: 1` and `scenarios:` whose `when` holds "
            f"`api` and `request` and whose reply is `raw`; {_HOW_TO_RECORD}"
        )
        return [], [Problem(source, lines.line_of(()), "", message)]
    found: list[Recorded] = []
    problems: list[Problem] = []
    for index, item in enumerate(data["scenarios"]):
        where = ("scenarios", index)
        line = lines.line_of(where)
        when = item.get("when") if isinstance(item, Mapping) else None
        api = when.get("api") if isinstance(when, Mapping) else None
        request = when.get("request") if isinstance(when, Mapping) else None
        if api not in _RECORDED_APIS or not isinstance(request, Mapping):
            problems.append(
                Problem(
                    source,
                    lines.line_of((*where, "when")),
                    f"scenarios[{index}].when",
                    "not a recorded scenario: `when` needs `api` (one of "
                    f"{', '.join(_RECORDED_APIS)}) and the recorded `request` body; distill only reads recordings "
                    f"(hand-written scenarios are already neutral), {_HOW_TO_RECORD}",
                )
            )
            continue
        assert isinstance(item, Mapping)  # `when` was found in it
        sequence = isinstance(item.get("replies"), list)
        replies = item["replies"] if sequence else [item.get("reply")]
        raws: list[dict[str, Any]] = []
        for position, reply in enumerate(replies):
            at = (*where, "replies", position) if sequence else (*where, "reply")
            raw = reply.get("raw") if isinstance(reply, Mapping) else None
            problem = _raw_problem(raw)
            if problem is not None:
                key = ".".join(str(p) for p in at[2:])
                problems.append(Problem(source, lines.line_of((*at, "raw")), f"scenarios[{index}].{key}.raw", problem))
                continue
            assert isinstance(raw, dict)
            raws.append(raw)
        if len(raws) == len(replies) and raws:
            scenario_id = str(item.get("id") or f"{path.stem}-{index + 1}")
            then = item.get("then") if isinstance(item.get("then"), str) else None
            found.append(Recorded(source, line, scenario_id, str(api), dict(request), raws, sequence, then))
    return found, problems


def _raw_problem(raw: Any) -> str | None:
    if not isinstance(raw, Mapping):
        return f"not a recorded answer: the reply needs `raw: {{status, headers, events | body}}`; {_HOW_TO_RECORD}"
    if not isinstance(raw.get("status"), int):
        return "the recorded answer has no `status` (an HTTP status number, like 200); add it"
    if not isinstance(raw.get("events"), list) and not isinstance(raw.get("body"), str):
        return "the recorded answer has neither `events` (a stream) nor `body` (its text); add the one it had"
    return None


# ---------------------------------------------------------------------------------------------------------
# Replies


def _decode(api: str, raw: Mapping[str, Any]) -> Draft:
    if isinstance(raw.get("events"), list):
        return decode_events(api, raw["events"])
    try:
        body = json.loads(raw["body"])
    except ValueError:
        draft = Draft()
        draft.warnings.append("the recorded body is not JSON; the reply is left empty")
        return draft
    return decode_body(api, body)


def _pieces_or_text(pieces: list[str], text_key: str) -> dict[str, Any]:
    """The text as one string when the tokenizer would cut it the same way, or when it came whole (a non-streamed
    body, so nothing says where a stream would cut it); else its recorded chunks."""
    joined = "".join(pieces)
    return {text_key: joined} if len(pieces) <= 1 or pieces == tokenize(joined) else {"chunks": pieces}


def _tool_call(call: CallDraft) -> dict[str, Any]:
    # No `id`: the server makes one in the client's API's style (`call_…`, `toolu_01…`).
    out: dict[str, Any] = {"name": call.name}
    if call.fragments:
        out.update(_pieces_or_text(call.fragments, "arguments"))
        return out
    arguments = call.arguments or ""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    # A mapping reads and edits better, and is dumped back to the same text when it round-trips.
    out["arguments"] = (
        parsed if isinstance(parsed, dict) and json.dumps(parsed, ensure_ascii=False) == arguments else arguments
    )
    return out


def _choice(choice: ChoiceDraft) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if choice.reasoning:
        out["reasoning"] = "".join(choice.reasoning)
    if choice.redacted_reasoning is not None:
        out["redacted_reasoning"] = choice.redacted_reasoning
    if choice.text or not (choice.refusal or choice.calls):
        out.update(_pieces_or_text(choice.text, "text"))
    if choice.refusal:
        out["refusal"] = "".join(choice.refusal)
    if choice.calls:
        out["tool_calls"] = [_tool_call(choice.calls[key]) for key in choice.calls]
    default = "tool_calls" if choice.calls else "stop"
    if choice.finish is not None and choice.finish != default:
        out["finish_reason"] = choice.finish
    return out


def _timing(draft: Draft, raw: Mapping[str, Any]) -> dict[str, float] | None:
    """ttft: the first content event's offset; chunk: the median gap between content events (to the ms)."""
    offsets = [at for at in draft.content_at if at >= 0]
    if not offsets:
        at = raw.get("at")
        if isinstance(at, int | float) and not isinstance(at, bool) and at >= 0 and "body" in raw:
            return {"ttft": round(float(at), 3)}  # a body: it was complete at `at`
        return None
    timing = {"ttft": round(offsets[0], 3)}
    gaps = [later - earlier for earlier, later in itertools.pairwise(offsets)]
    if gaps:
        timing["chunk"] = round(max(0.0, statistics.median(gaps)), 3)
    return timing


def _usage(draft: Draft, reply: Mapping[str, Any]) -> dict[str, int]:
    usage = dict(draft.usage)
    for key in ("cached_tokens", "cache_creation_tokens"):
        if usage.get(key) == 0:
            del usage[key]  # 0 is what mockllm sends anyway
    if usage.get("reasoning_tokens") == 0 and not reply.get("reasoning"):
        del usage["reasoning_tokens"]
    return usage


def _error(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An error answer in the neutral `error:` form: status, and what the body and headers said."""
    out: dict[str, Any] = {"status": raw["status"]}
    headers = {str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    text = str(raw["body"]) if isinstance(raw.get("body"), str) else ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    # OpenAI: {"error": {message, type, param, code}}; Anthropic: {"type": "error", "error": {type, message}}.
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        for key in ("type", "message", "code", "param"):
            if isinstance(error.get(key), str) or (key == "code" and isinstance(error.get(key), int)):
                out[key] = error[key]
    elif text.strip():
        out["message"] = text.strip()
    retry = headers.get("retry-after")
    if "retry-after-ms" in headers:
        retry = f"{headers['retry-after-ms']}ms"
    if retry is not None:
        with contextlib.suppress(ValueError):  # an HTTP-date: no fixed delay to keep
            out["retry_after"] = parse_duration(retry.strip())
    if headers.get("x-should-retry") in ("true", "false"):
        out["should_retry"] = headers["x-should-retry"] == "true"
    return out


def build_reply(recorded: Recorded, raw: Mapping[str, Any], draft: Draft) -> dict[str, Any]:
    """The neutral reply of one recorded answer."""
    if raw["status"] >= 400:
        return {"error": _error(raw)}
    reply: dict[str, Any] = {}
    if draft.vectors is not None:
        reply["vectors"] = draft.vectors
    else:
        choices = [_choice(draft.choices[k]) for k in sorted(draft.choices)] or [{"text": ""}]
        if len(choices) == 1:
            reply.update(choices[0])
        else:
            reply["choices"] = choices
    usage = _usage(draft, reply)
    if usage:
        reply["usage"] = usage
    model = recorded.parsed.model if recorded.parsed else None
    if draft.model and draft.model != model:
        reply["model"] = draft.model  # the model the API said answered (a dated snapshot of the one asked for)
    timing = _timing(draft, raw)
    if timing:
        reply["timing"] = timing
    if draft.fault is not None:
        fault = dict(draft.fault)
        available = min(c.content_chunk_count() for c in Reply.model_validate(reply).all_choices())
        fault["after"] = min(fault["after"], available)
        reply["fault"] = fault
    return reply


# ---------------------------------------------------------------------------------------------------------
# Conditions and order


def _parse(recorded: Recorded) -> tuple[ParsedRequest | None, str | None]:
    parse = _PARSERS.get(recorded.api)
    if parse is None:
        return None, f"a `{recorded.api}` recording has no neutral form (serve its models with --model); skipped"
    try:
        return parse(copy.deepcopy(recorded.request), {}), None
    except RequestError as exc:
        return None, (
            f"mockllm refuses the recorded request itself ({exc.message}), so a scenario for it would never answer; "
            f"skipped"
        )


class _Chains:
    """Follows the Responses API's `previous_response_id` through the recordings being distilled."""

    def __init__(self, recordings: list[Recorded]) -> None:
        self.by_response = {d.response_id: r for r in recordings for d in r.drafts if d.response_id}
        self.call_names = {
            call.id: call.name
            for r in recordings
            for d in r.drafts
            for c in d.choices.values()
            for call in c.calls.values()
            if call.id
        }

    def prompt(self, recorded: Recorded, seen: frozenset[str] = frozenset()) -> str | None:
        request = recorded.parsed
        if not isinstance(request, ResponsesRequest) or request.previous_response_id is None:
            return request.prompt if request else None
        users = [
            content_text(item.get("content"))
            for item in request.input_items
            if item.get("type", "message") == "message" and item.get("role") == "user"
        ]
        if users:
            return users[-1]
        previous = self.by_response.get(request.previous_response_id)
        if previous is None or recorded.id in seen:
            return None
        return self.prompt(previous, seen | {recorded.id})

    def tool_results(self, recorded: Recorded) -> list[str]:
        request = recorded.parsed
        if not isinstance(request, ResponsesRequest) or request.previous_response_id is None:
            return list(request.tool_results) if request else []
        return [
            self.call_names[item["call_id"]]
            for item in request.input_items
            if item.get("type") == "function_call_output" and item.get("call_id") in self.call_names
        ]


def _when(recorded: Recorded, chains: _Chains) -> dict[str, Any]:
    request = recorded.parsed
    assert request is not None  # recordings whose request does not parse are skipped before
    when: dict[str, Any] = {}
    if recorded.api == "embeddings":
        when["api"] = "embeddings"  # vectors answer embeddings requests only
    if request.model:
        when["model"] = request.model
    prompt = chains.prompt(recorded)
    if prompt is not None:
        when["prompt"] = prompt
    results = chains.tool_results(recorded)
    if results:
        when["after_tool"] = results[-1]
    return when


def _disambiguate(pairs: list[tuple[Recorded, dict[str, Any]]]) -> None:
    """Scenarios whose conditions came out equal (rounds of one tool loop, ...) get `turn`, then `stream`."""
    for key in ("turn", "stream"):
        groups: dict[str, list[tuple[Recorded, dict[str, Any]]]] = {}
        for pair in pairs:
            groups.setdefault(json.dumps(pair[1], sort_keys=True), []).append(pair)
        for group in groups.values():
            if len(group) > 1:
                for recorded, when in group:
                    assert recorded.parsed is not None
                    when[key] = getattr(recorded.parsed, key)


# ---------------------------------------------------------------------------------------------------------
# The document


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings as `|` blocks and no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


@dataclass
class Distilled:
    """The result of distilling: the YAML text, and what could not be carried over."""

    text: str
    count: int
    problems: list[Problem]
    warnings: list[str]


def distill(paths: Sequence[str | Path]) -> Distilled:
    """Distill recording files and folders into one neutral scenario document."""
    recordings: list[Recorded] = []
    problems: list[Problem] = []
    warnings: list[str] = []
    for path, problem in scenario_files(paths):
        if problem is not None:
            problems.append(problem)
            continue
        found, trouble = read_recordings(path)
        recordings.extend(found)
        problems.extend(trouble)
    if problems:
        return Distilled("", 0, problems, warnings)
    usable: list[Recorded] = []
    for recorded in recordings:
        recorded.parsed, skipped = _parse(recorded)
        if skipped is not None:
            warnings.append(f"{_where(recorded.source, recorded.line)}: scenario `{recorded.id}`: {skipped}")
            continue
        recorded.drafts = [_decode(recorded.api, raw) for raw in recorded.raws]
        for draft in recorded.drafts:
            warnings.extend(f"{_where(recorded.source, recorded.line)}: `{recorded.id}`: {w}" for w in draft.warnings)
        usable.append(recorded)
    chains = _Chains(usable)
    pairs = [(recorded, _when(recorded, chains)) for recorded in usable]
    _disambiguate(pairs)
    # More specific first: a scenario after a tool result would otherwise be shadowed by the plain one.
    pairs.sort(key=lambda pair: "after_tool" not in pair[1])
    scenarios: list[dict[str, Any]] = []
    used: set[str] = set()
    for recorded, when in pairs:
        scenario_id = recorded.id
        suffix = 2
        while scenario_id in used:
            scenario_id, suffix = f"{recorded.id}-{suffix}", suffix + 1
        used.add(scenario_id)
        replies = [build_reply(recorded, raw, draft) for raw, draft in zip(recorded.raws, recorded.drafts, strict=True)]
        scenario: dict[str, Any] = {"id": scenario_id, "when": when}
        if recorded.sequence:
            scenario["replies"] = replies
            if recorded.then is not None:
                scenario["then"] = recorded.then
        else:
            scenario["reply"] = replies[0]
        scenarios.append(scenario)
    sources = sorted({recorded.source for recorded in recordings})
    header = (
        f"# Distilled by `mockllm distill` from {len(sources)} recording file{'s' if len(sources) != 1 else ''}: "
        f"{', '.join(sources)}\n"
        "# Provider-neutral scenarios: they answer Chat, Completions, Responses and Messages clients alike.\n"
    )
    body = yaml.dump(
        {"version": 1, "scenarios": scenarios},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )
    text = header + body
    try:
        load_text(text, "<distilled>")
    except ScenarioError as exc:  # pragma: no cover - a bug in distill, not in the user's files
        raise AssertionError(f"mockllm distill wrote scenarios it cannot load; please report it:\n{exc}") from None
    return Distilled(text, len(scenarios), [], warnings)


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def run_distill(paths: Sequence[str], output: str | None) -> int:
    """`mockllm distill PATH... [-o FILE]`: the scenarios on stdout or in FILE; exit 1 on a file that is not a
    recording (nothing is written then)."""
    result = distill(paths)
    for problem in result.problems:
        print(f"error: {problem}", file=sys.stderr)
    if result.problems:
        count = len(result.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found; nothing written", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if output is None:
        sys.stdout.write(result.text)
        return 0
    target = Path(output)
    try:
        _write_atomically(target, result.text)
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}; check the path", file=sys.stderr)
        return 1
    print(f"wrote {result.count} scenario{'s' if result.count != 1 else ''} to {output}", file=sys.stderr)
    return 0
