"""The contract rules of the OpenAI Responses API: outputs answer calls, calls get outputs, and a
`previous_response_id` names a response this server gave.

The messages are the API's (error bodies quoted in public issue threads); `param` points at the input item.
"""

from __future__ import annotations

from ..protocols.base import ParsedRequest
from ..protocols.responses_input import ResponsesRequest
from .chat import stream_options
from .core import Violation

_OUTPUTS = ("function_call_output", "custom_tool_call_output")
_CALLS = ("function_call", "custom_tool_call")


def check(request: ParsedRequest) -> Violation | None:
    """The first Responses rule this request breaks, or None."""
    assert isinstance(request, ResponsesRequest)  # this protocol's parse made it
    return stream_options(request.body) or _previous(request) or _pairs(request)


def _previous(request: ResponsesRequest) -> Violation | None:
    if request.previous_known:
        return None
    return Violation(
        "previous-response-known",
        f"Previous response with id '{request.previous_response_id}' not found.",
        "`previous_response_id` must name a response this server gave since it started or was last reset (and "
        "not one sent with `store: false`); send the whole conversation in `input` instead.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def _pairs(request: ResponsesRequest) -> Violation | None:
    items = request.items
    offset = len(items) - len(request.input_items)  # stored items come first; `param` counts this input's items
    calls: list[str] = []
    answered: set[str] = set()
    for index, item in enumerate(items):
        kind = item.get("type")
        call_id = str(item.get("call_id"))
        if kind in _CALLS:
            calls.append(call_id)
        elif kind in _OUTPUTS:
            if call_id not in calls:
                return Violation(
                    "function-call-output-answers-a-call",
                    f"No tool call found for function call output with call_id {call_id}.",
                    "a `function_call_output` must answer the `call_id` of an earlier `function_call` (in `input` "
                    "or in the response `previous_response_id` names).",
                    param=f"input[{max(0, index - offset)}]",
                )
            answered.add(call_id)
    missing = [call_id for call_id in calls if call_id not in answered]
    if missing:
        # Typical after `previous_response_id` ended in a call and the next input is a user message.
        return Violation(
            "function-calls-answered",
            f"No tool output found for function call {missing[0]}.",
            "every `function_call` of the conversation needs its `function_call_output` before the model goes on.",
            param="input",
        )
    return None
