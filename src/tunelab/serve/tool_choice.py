"""Which tools a chat request offers, whether it forces a call, and what its answer must look like.

`tools` / `tool_choice` and their legacy forms (`functions` / `function_call`) become one `ToolPlan`:
the tool schemas the template shows the model, and the `Constraint` decoding must follow. A forced call
(`tool_choice: "required"`, or a named function) is constrained to a call of that tool, written in the
template's own tool format with arguments that match the tool's `parameters` schema, so the answer always
parses as that call. `response_format` (json_object / json_schema) constrains plain answers the same way.
A tool_choice naming a tool that was not offered, or forcing a call without tools, is a 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tunelab.data.templates.tools import get_tool_format
from tunelab.errors import UserError
from tunelab.infer.structured import Constraint, tool_call_grammar
from tunelab.serve.errors import ApiError
from tunelab.serve.protocol import ChatCompletionRequest


@dataclass(frozen=True)
class ToolPlan:
    """The tools shown to the model (None: none), what the answer must be, and the protocol spoken."""

    tools: list[dict[str, Any]] | None
    response: Constraint | None  # response_format's constraint on a plain answer
    calls: tuple[tuple[str, str, Any], ...] = ()  # a forced call: per allowed tool, the text around its arguments
    legacy: bool = False  # `functions` was sent: answer with `function_call`, finish_reason "function_call"
    single_call: bool = False  # parallel_tool_calls: false (or legacy): at most one call is reported

    @property
    def forced(self) -> bool:
        return bool(self.calls)

    def constraint(self, tokenizer: Any) -> Constraint | None:
        """The constraint decoding follows: a call of an allowed tool, else response_format's, else none.
        (Built on first use: the grammar library reads the whole vocabulary once, which takes a second.)"""
        if self.calls:
            return Constraint("grammar", grammar=tool_call_grammar(list(self.calls), tokenizer))
        return self.response


def _choice_and_param(request: ChatCompletionRequest) -> tuple[Any, str]:
    if request.functions is not None:
        return request.function_call, "function_call"
    return request.tool_choice, "tool_choice"


def _named(choice: Any, param: str) -> str | None:
    """The function a dict choice names (`{"type": "function", "function": {"name": ...}}`, legacy `{"name": ...}`)."""
    if not isinstance(choice, dict):
        return None
    function = choice.get("function", choice) if param == "tool_choice" else choice
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        shape = '{"type": "function", "function": {"name": ...}}' if param == "tool_choice" else '{"name": ...}'
        raise ApiError(400, f"{param}: expected 'none', 'auto'{', required' if param == 'tool_choice' else ''} or {shape}.",
                       param=param, code="invalid_value")
    return name


def response_constraint(request: ChatCompletionRequest) -> Constraint | None:
    """The constraint `response_format` puts on a plain answer."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Constraint("json_object")
    assert fmt.json_schema is not None and fmt.json_schema.schema_ is not None  # request_fields refuses otherwise
    return Constraint("json_schema", schema=fmt.json_schema.schema_)


def plan(request: ChatCompletionRequest, tool_format: str) -> ToolPlan:
    """The request's tools and constraint; a 400 for a choice that cannot be honoured."""
    legacy = request.functions is not None
    offered = ([{"type": "function", "function": f.model_dump(exclude_none=True)} for f in request.functions or []]
               if legacy else [t.model_dump(exclude_none=True) for t in request.tools or []])
    choice, param = _choice_and_param(request)
    name = _named(choice, param)
    single = legacy or request.parallel_tool_calls is False
    response = response_constraint(request)
    if choice == "none" or (not offered and choice in (None, "auto")):
        return ToolPlan(None, response, legacy=legacy, single_call=single)
    if not offered:
        raise ApiError(400, f"{param}: {choice if isinstance(choice, str) else name!r} forces a tool call, but the "
                       f"request offers no {'functions' if legacy else 'tools'}.", param=param, code="invalid_value")
    if choice in (None, "auto"):
        if response is not None:
            raise ApiError(400, "response_format: with tools offered and tool_choice 'auto' the answer may be a call "
                           "or text, so it cannot be held to a JSON format; send tool_choice 'none' or 'required', "
                           "or leave response_format out.", param="response_format", code="unsupported_parameter")
        return ToolPlan(offered, None, legacy=legacy, single_call=single)
    names = [tool["function"]["name"] for tool in offered]
    if name is not None and name not in names:
        raise ApiError(400, f"{param}: names '{name}', which is not among the offered tools ({', '.join(names)}).",
                       param=param, code="invalid_value")
    fmt = get_tool_format(tool_format)
    try:
        calls = tuple((*fmt.call_frame(tool["function"]["name"]), tool["function"].get("parameters"))
                      for tool in offered if name is None or tool["function"]["name"] == name)
    except UserError as error:
        raise ApiError(400, f"{param}: {error.message}", param=param, code="unsupported_parameter") from None
    return ToolPlan(offered, response, calls=calls, legacy=legacy, single_call=True)


def function_call_message(calls: list[Any]) -> dict[str, Any]:
    """The legacy answer shape: `function_call` with the first call."""
    call = calls[0]
    arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments, ensure_ascii=False)
    return {"role": "assistant", "content": None, "function_call": {"name": call.name, "arguments": arguments}}
