"""The tool-loop trap: a scenario that answers with a tool call also matches the follow-up request carrying the
tool's result, so the agent calls the tool again and again until its framework gives up.

The follow-up request of a tool call holds the same question, system prompt, model and tools as the request that
got the call; only the conversation grew (an assistant turn with the call, then the result). So a tool-call
scenario placed before the `after_tool` scenario meant for the result answers the result too, unless a `turn`,
`messages` or `after_tool` condition tells the two requests apart. `mockllm check` warns about that ordering
(`tool_loop_warnings`); the server notices it at runtime (`runtime_warning`) and says so in the journal, the log and
the pytest plugin's failure text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .matching import Selection, matches
from .protocols.base import ParsedRequest
from .scenarios import Reply, Scenario, StringCondition


def called_tools(reply: Reply) -> list[str]:
    """The names of the tools a reply calls, in every choice, in order, without repeats."""
    names: dict[str, None] = {}
    for choice in reply.all_choices():
        for call in choice.tool_calls or ():
            names[call.name] = None
    return list(names)


def _follow_up_reply(scenario: Scenario, position: int) -> Reply | None:
    """The reply the scenario sends to the request after the one answered from `position`; None when that request
    falls through to the scenarios below."""
    sequence = scenario.sequence
    following = position + 1
    if following < len(sequence):
        return sequence[following]
    if scenario.then_mode == "fall-through":
        return None
    return sequence[following % len(sequence)] if scenario.then_mode == "cycle" else sequence[-1]


def _still_holds(scenario: Scenario, tool: str) -> bool:
    """Do the scenario's conditions still hold on the follow-up request that carries a result of `tool`?

    `turn` and `messages` count the conversation, which grew; `after_tool` holds only if it names `tool`. Every other
    condition (prompt, system, model, tools, headers, body, stream, api) reads what the follow-up repeats.
    """
    when = scenario.when
    if when.turn is not None or when.messages is not None or when.request is not None:
        return False  # they count the conversation (a recording compares all of it), which grew
    return when.after_tool is None or when.after_tool.test(tool)


def _exact(condition: StringCondition | None) -> str | None:
    return condition.exact if condition is not None else None


def _compatible(earlier: Scenario, later: Scenario) -> bool:
    """Could the two scenarios be about the same conversation? Exact values that differ say they are not."""
    a, b = earlier.when, later.when
    for mine, theirs in ((a.api, b.api), (a.stream, b.stream)):
        if mine is not None and theirs is not None and mine != theirs:
            return False
    for name in ("model", "prompt", "system"):
        mine_text, theirs_text = _exact(getattr(a, name)), _exact(getattr(b, name))
        if mine_text is not None and theirs_text is not None and mine_text != theirs_text:
            return False
    return True


@dataclass(frozen=True, slots=True)
class ToolLoop:
    """`earlier` calls `tool` and also answers the follow-up carrying its result, which `later` was written for."""

    earlier: Scenario
    later: Scenario
    tool: str

    def message(self) -> str:
        """The `mockllm check` warning: both scenarios (file:line) and the fix."""
        e, later = self.earlier, self.later
        return (
            f"{later.location}: scenario `{later.name}` (after_tool) never answers the result of {self.tool}: "
            f"`{e.name}` ({e.location}) comes first, calls {self.tool}, and its conditions still hold on the follow-up "
            f"request that carries the result, so the agent calls {self.tool} again and loops. Move `{later.name}` "
            f"above `{e.name}`, or add `turn: 0` (or an `after_tool` condition) to `{e.name}`"
        )


def tool_loop_warnings(scenarios: Iterable[Scenario]) -> list[ToolLoop]:
    """Every (tool-call scenario, later `after_tool` scenario) pair in match order where the first answers the
    follow-up request the second was written for, again with a tool call."""
    ordered = list(scenarios)
    found: list[ToolLoop] = []
    for j, later in enumerate(ordered):
        wanted = later.when.after_tool
        if wanted is None:
            continue
        for earlier in ordered[:j]:
            loop = _loop_over(earlier, later, wanted)
            if loop is not None:
                found.append(loop)
                break
    return found


def _loop_over(earlier: Scenario, later: Scenario, wanted: StringCondition) -> ToolLoop | None:
    if not _compatible(earlier, later):
        return None
    for position, reply in enumerate(earlier.sequence):
        for tool in called_tools(reply):
            if not wanted.test(tool) or not _still_holds(earlier, tool):
                continue
            # A sequence that answers the follow-up with text (or falls through) ends the loop by itself.
            following = _follow_up_reply(earlier, position)
            if following is not None and called_tools(following):
                return ToolLoop(earlier, later, tool)
    return None


def runtime_warning(
    selection: Selection, request: ParsedRequest, ordered: Callable[[], Iterable[Scenario]]
) -> str | None:
    """The warning for a reply that calls a tool whose result the request already carries, or None.

    A scenario that counts the conversation (`turn`, `messages`) or steps through a sequence of replies is taken to
    mean its repeated call; only a reply that comes back unchanged (a single `reply`, or a sequence repeating its
    end) is the trap. `ordered` gives every scenario in match order, to name the one that would have answered; it is
    called only for a warning, so that the requests that carry tool results do not copy the scenario list.
    """
    scenario = selection.scenario
    if not request.tool_results or scenario.when.turn is not None or scenario.when.messages is not None:
        return None
    if scenario.replies is not None and selection.position < len(scenario.sequence):
        return None
    repeated = [tool for tool in called_tools(selection.reply) if tool in request.tool_results]
    if not repeated:
        return None
    tool = repeated[0]
    answer = next(
        (
            other
            for other in ordered()
            if other is not scenario and other.when.after_tool is not None and matches(other.when, request)
        ),
        None,
    )
    if answer is not None:
        fix = (
            f"`{answer.name}` ({answer.location}) would answer this request but comes after `{scenario.name}`: move "
            f"it above `{scenario.name}`, or add `turn: 0` to `{scenario.name}`"
        )
    else:
        fix = (
            f"add a scenario with `when: {{after_tool: {tool}}}` above `{scenario.name}` to answer the result, or add "
            f"`turn: 0` to `{scenario.name}`"
        )
    return (
        f"tool loop: scenario `{scenario.name}` ({scenario.location}) answered with a call of {tool} a request that "
        f"already carries a result of {tool}, so the agent will call it again and again. Fix: {fix}."
    )
