"""Loading scenario files with file:line errors.

Loading composes the YAML node tree first so that every value can be traced to its line (`documents.py`); pydantic
errors are then reported against those lines with the key path and, for a misspelt key or value, the closest valid
one (`diagnostics.py`).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from .diagnostics import describe_errors, format_path
from .documents import MAX_ALIAS_EXPANSION as MAX_ALIAS_EXPANSION
from .documents import AliasBomb, BadText, DuplicateKey, Lines, build, compose
from .scenarios import Scenario, ScenarioFile
from .schema_docs import describe

_runtime_ids = itertools.count(1)


@dataclass(frozen=True)
class Problem:
    """One problem found in a scenario file."""

    source: str
    line: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        key = f" {self.path}:" if self.path else ""
        label = "warning: " if self.severity == "warning" else ""
        return f"{where}:{key} {label}{self.message}"


class ScenarioError(ValueError):
    """Scenario files that failed to load; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        summary = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} in scenario files:\n{summary}\n"
            f"Fix them, then check with `mockllm check PATH`."
        )


def parse_yaml(text: str, source: str) -> tuple[Any, Lines]:
    """Parse YAML text safely, keeping where every value came from; raise ScenarioError on a syntax error."""
    try:
        node = compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            context += f" (from line {exc.context_mark.line + 1})"
        detail = ", ".join(part for part in (context, exc.problem) if part)
        if "'\\t'" in (exc.problem or ""):
            fix = "indent with spaces: YAML does not allow tabs"
        else:
            fix = f"check the indentation, brackets and quotes around line {line}"
        raise ScenarioError([Problem(source, line, "", f"YAML syntax error: {detail}; {fix}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(source, 0, "", f"YAML error: {exc}")]) from None
    if node is None:
        return None, Lines()
    try:
        return build(node, text), Lines(node)
    except DuplicateKey as exc:
        message = f"the key `{exc.key}` appears twice in this mapping (first on line {exc.first}); keep one"
        raise ScenarioError([Problem(source, exc.line, format_path(exc.path), message)]) from None
    except yaml.MarkedYAMLError as exc:  # a tag SafeLoader does not know (`!include`, `!!python/...`)
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        message = f"{exc.problem}; scenario files take plain YAML values: drop the tag"
        raise ScenarioError([Problem(source, line, "", message)]) from None
    except AliasBomb as exc:
        message = (
            f"aliases (`*name`) repeat the value that starts on this line, and the values it holds, over "
            f'{MAX_ALIAS_EXPANSION} times: the document would expand without bound (a "billion laughs" document), '
            f"so it is refused; write the values out, or alias fewer and smaller values"
        )
        raise ScenarioError([Problem(source, exc.line, format_path(exc.path), message)]) from None
    except BadText as exc:
        message = (
            "the text holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not a character; fix the escape"
        )
        raise ScenarioError([Problem(source, exc.line, format_path(exc.path), message)]) from None


def validate_document(data: Any, lines: Lines, source: str) -> tuple[list[Scenario], list[Problem]]:
    """Validate a parsed scenario document; return its scenarios (ids filled in) and its problems."""
    if data is None:
        return [], [Problem(source, 1, "", "the file is empty; start it with `version: 1` and `scenarios:`")]
    if isinstance(data, list):
        return [], [
            Problem(source, 1, "", "the top level is a list; write `version: 1` and put the list under `scenarios:`")
        ]
    if not isinstance(data, Mapping):
        return [], [Problem(source, 1, "", "the top level must be a mapping with `version: 1` and `scenarios:`")]
    try:
        document = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        return [], [Problem(source, line, path, message) for line, path, message in describe_errors(exc, data, lines)]
    runtime = not source or source.startswith("<")
    redact = tuple(document.recorded.redact) if document.recorded is not None else ()
    item_lines = lines.item_lines(("scenarios",), len(document.scenarios))
    for index, scenario in enumerate(document.scenarios):
        # Straight into pydantic's store of private attributes: its `__setattr__` costs more than the rest of this
        # loop, which runs for every scenario loaded.
        scenario.when.__pydantic_private__["_redact"] = redact  # type: ignore[index]
        scenario.__pydantic_private__.update(_source=source, _line=item_lines[index], _index=index)  # type: ignore[union-attr]
        if scenario.id is None:
            # Unnamed scenarios get a stable id from their file, or a fresh one when added at runtime.
            scenario.id = f"runtime-{next(_runtime_ids)}" if runtime else f"{Path(source).stem}-{index + 1}"
    return document.scenarios, []


def _too_deep(source: str) -> Problem:
    return Problem(source, 0, "", "the document nests too deeply to read; a scenario file needs only a few levels")


def load_text(text: str, source: str = "<text>", lenient: bool = False) -> list[Scenario]:
    """Load scenarios from YAML (or JSON) text; raise ScenarioError with every problem.

    `lenient` also takes a bare list of scenarios, or one scenario, for the admin API.
    """
    try:
        data, lines = parse_yaml(text, source)
        if lenient and isinstance(data, list):
            data, lines = {"version": 1, "scenarios": data}, lines.nested(("scenarios",))
        elif lenient and isinstance(data, Mapping) and "version" not in data and ("reply" in data or "replies" in data):
            data, lines = {"version": 1, "scenarios": [data]}, lines.nested(("scenarios", 0))
        scenarios, problems = validate_document(data, lines, source)
    except RecursionError:
        raise ScenarioError([_too_deep(source)]) from None
    problems.extend(duplicate_id_problems(scenarios))
    if problems:
        raise ScenarioError(problems)
    return scenarios


def same_file(path: str | Path) -> Path:
    """The real file behind a path (symlinks, `..` and relative parts resolved), to load each file once."""
    return Path(path).resolve()


SUFFIXES = (".yaml", ".yml", ".json")


def files_under(folder: Path) -> list[Path]:
    """The scenario files of a folder, recursively, sorted; hidden folders are skipped (a Kubernetes ConfigMap
    mount keeps each file twice more under `..data/` and `..<timestamp>/`, and swaps them on an update)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])
        and p.is_file()
    )


def scenario_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Problem | None]]:
    """Expand files and folders (`*.yaml`, `*.yml`, `*.json`, recursively, sorted) in order.

    A file reached through two paths (`serve file.yaml folder/`, a folder and a symlink into it) comes once, at
    its first place: loading it twice would only make its ids clash with themselves.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = files_under(path)
            if not found:
                empty = "the folder holds no .yaml, .yml or .json scenario files; add one or pass another path"
                yield path, Problem(str(path), 0, "", empty)
            for file in found:
                real = same_file(file)
                if real not in seen:
                    seen.add(real)
                    yield file, None
        elif path.is_file():
            real = same_file(path)
            if real not in seen:
                seen.add(real)
                yield path, None
        else:
            yield path, Problem(str(path), 0, "", "no such file or folder; check the path")


def read_file(path: Path) -> tuple[list[Scenario], list[Problem]]:
    """Load one scenario file, collecting its problems instead of raising."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(source, 0, "", f"cannot read the file: {exc}")]
    try:
        data, lines = parse_yaml(text, source)
        scenarios, problems = validate_document(data, lines, source)
    except ScenarioError as exc:
        return [], exc.problems
    except RecursionError:
        return [], [_too_deep(source)]
    return scenarios, sorted(problems, key=lambda p: p.line)


def id_clash(scenario: Scenario, other: Scenario) -> Problem:
    """The error for `scenario`, whose id `other` already uses."""
    return Problem(
        scenario._source,
        scenario._line,
        f"scenarios[{scenario._index}].id" if scenario._index >= 0 else "id",
        f"the id `{scenario.name}` is already used by the scenario at {other.location}; "
        f"rename one (ids must be unique)",
    )


def duplicate_id_problems(scenarios: Iterable[Scenario]) -> list[Problem]:
    """An error for every scenario whose id an earlier one already uses."""
    first: dict[str, Scenario] = {}
    problems: list[Problem] = []
    for scenario in scenarios:
        earlier = first.setdefault(scenario.name, scenario)
        if earlier is not scenario:
            problems.append(id_clash(scenario, earlier))
    return problems


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection for a while: while a folder loads, or `mockllm check` runs.

    Loading makes millions of objects and frees few of them: every full collection along the way walks all that
    were kept so far, which doubled the load time of 10,000 scenarios. Reference counting still frees what is
    dropped; the collector runs again afterwards, as it was (it stays off if the program had turned it off).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collect(paths: Iterable[str | Path]) -> tuple[list[Scenario], list[Problem]]:
    """Load every scenario file under `paths`; return the scenarios and every problem found."""
    scenarios: list[Scenario] = []
    problems: list[Problem] = []
    with gc_paused():
        for path, problem in scenario_files(paths):
            if problem is not None:
                problems.append(problem)
                continue
            loaded, found = read_file(path)
            scenarios.extend(loaded)
            problems.extend(found)
    problems.extend(duplicate_id_problems(scenarios))
    return scenarios, problems


def settle_heap() -> None:
    """Take everything loaded so far out of the cyclic garbage collector's sight: call it once in a server, after
    loading the scenario files and before building the state that serves them.

    Loaded scenarios live as long as the server: ten thousand of them are some 200,000 objects the collector tracks,
    and each full collection would walk them all again, a pause of a tenth of a second between two requests.
    `gc.freeze()` moves them to the permanent generation, which collections skip. It collects nothing first: loading
    leaves next to no cyclic garbage (a handful of objects for 10,000 scenarios), and a full collection there would
    cost as much again as the pauses it saves. Scenarios dropped later (a reload) are still freed by reference
    counting.
    """
    gc.freeze()
    # Thousands of open streams are hundreds of thousands of live objects: with the default thresholds a burst of
    # requests sets off full collections that walk them all, pauses that make every stream late. Collecting the
    # young generation every 10,000 allocations instead of 700, and the old ones more rarely, keeps the pauses
    # out of the tail; reference counting frees almost everything a request leaves anyway.
    gc.set_threshold(*GC_THRESHOLDS)


GC_THRESHOLDS = (10_000, 50, 100)


def load_scenarios(paths: Iterable[str | Path]) -> list[Scenario]:
    """Load scenario files and folders in order; raise ScenarioError listing every problem."""
    scenarios, problems = collect(paths)
    if problems:
        raise ScenarioError(problems)
    return scenarios


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, for editors."""
    schema = ScenarioFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mockllm scenario file"
    describe(schema)
    _fix_string_conditions(schema)
    return schema


def _fix_string_conditions(schema: dict[str, Any]) -> None:
    # A StringCondition is written as a plain string or a one-key mapping; pydantic only sees the mapping.
    defs = schema.get("$defs", {})
    condition = defs.get("StringCondition")
    if condition is not None:
        properties = condition.get("properties", {})
        mapping = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
        }
        defs["StringCondition"] = {
            "description": condition.get("description", ""),
            "anyOf": [{"type": "string"}, mapping],
        }
