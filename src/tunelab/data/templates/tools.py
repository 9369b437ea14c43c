"""Tool formats: how tool definitions, tool calls and tool results are written, and parsed back.

A template names its tool format (`Template.tool_format`); the `tool_format` key overrides it.
Each format is a small object with the same four parts, so adding one is one entry in `TOOL_FORMATS`.
Tool schemas are normalised to the OpenAI shape `{"type": "function", "function": {...}}` first, as
`transformers.apply_chat_template` users pass them, so rendering equals the official templates'.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tunelab.errors import UserError


@dataclass(frozen=True)
class ToolCall:
    """One call the assistant makes: a function name and its arguments (a JSON object)."""

    name: str
    arguments: Any


@dataclass(frozen=True)
class ToolPlacement:
    """Where a format puts the tool definitions: appended to the system text, and/or before a user turn."""

    system: str = ""  # the new system text ("" keeps none)
    first_user_prefix: str = ""
    last_user_prefix: str = ""


def tojson(value: Any, indent: int | None = None) -> str:
    """The `tojson` filter of transformers' chat templates (no ASCII escaping, default separators)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def normalize_tools(tools: str | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Tool schemas as a list of `{"type": "function", "function": {...}}` dicts."""
    if tools is None or tools == "":
        return []
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as error:
            raise UserError(f"tools: not valid JSON ({error.msg} at char {error.pos})") from None
    if isinstance(tools, Mapping):
        tools = [tools]
    if not isinstance(tools, list):
        raise UserError("tools: expected a JSON list of tool schemas")
    result = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            raise UserError(f"tools: each tool must be a JSON object, got {tool!r}")
        tool = dict(tool)
        result.append(tool if tool.get("type") == "function" and "function" in tool else {"type": "function", "function": tool})
    return result


def parse_calls(content: str) -> list[ToolCall]:
    """The calls of a `function_call` turn: JSON, one call or a list of `{"name", "arguments"}`."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise UserError(f"function_call: content is not valid JSON ({error.msg} at char {error.pos})") from None
    items = data if isinstance(data, list) else [data]
    calls = []
    for item in items:
        if not isinstance(item, Mapping) or "name" not in item:
            raise UserError(f"function_call: each call needs a 'name' and 'arguments', got {item!r}")
        item = item.get("function", item) if isinstance(item.get("function"), Mapping) else item
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass  # keep the string as given
        calls.append(ToolCall(str(item["name"]), arguments))
    return calls


#: where the arguments go when a call is written only to find the text around them (`call_frame`)
_ARGS_SLOT = "\x00arguments\x00"


class ToolFormat:
    """Base of the tool formats; subclasses fill the four methods."""

    name = ""
    result_as_json = False  # tool results are written JSON-encoded (Llama 3.1: `message.content | tojson`)
    # consecutive tool results the official template writes in ONE turn, joined by this text (None: a turn each)
    results_joiner: str | None = None
    # an assistant turn's text and its calls, as the official template writes both, joined by this text
    # (None: the official template writes only the calls, and the text is not shown to the model)
    content_joiner: str | None = None

    def call_frame(self, name: str) -> tuple[str, str]:
        """The text a call of `name` is written in, before and after its arguments' JSON object, so a
        decoder can be constrained to write exactly one call in this format (tool_choice)."""
        before, found, after = self.format_calls([ToolCall(name, _ARGS_SLOT)]).partition(_ARGS_SLOT)
        if not found:
            raise UserError(f"tool_format {self.name}: cannot constrain a call in this format")
        return before, after

    def place(self, system: str, tools: list[dict[str, Any]]) -> ToolPlacement:
        raise NotImplementedError

    def format_calls(self, calls: list[ToolCall]) -> str:
        raise NotImplementedError

    def extract(self, text: str) -> list[ToolCall] | None:
        """The calls in a model's output, or None when it is a plain answer."""
        raise NotImplementedError

    def format_result(self, content: str) -> str | None:
        """How a tool result is written; None: as given (the template's observation format wraps it)."""
        return tojson(content) if self.result_as_json else None


def _functions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tool["function"] for tool in tools]


def _json_calls(blobs: Sequence[str]) -> list[ToolCall] | None:
    calls = []
    for blob in blobs:
        try:
            data = json.loads(blob)
        except json.JSONDecodeError:
            return None
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, Mapping) or "name" not in item:
                return None
            calls.append(ToolCall(str(item["name"]), item.get("arguments", item.get("parameters", {}))))
    return calls or None


class QwenTools(ToolFormat):
    """Qwen2.5 / Qwen3: `# Tools` block in the system turn, `<tool_call>` JSON, `<tool_response>` results."""

    name = "qwen"
    results_joiner = "\n</tool_response>\n<tool_response>\n"  # one user turn holds them all
    content_joiner = "\n"  # `message.content`, then each call on its own line

    def place(self, system: str, tools: list[dict[str, Any]]) -> ToolPlacement:
        text = (
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
            + "".join("\n" + tojson(tool) for tool in tools)
            + "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
            "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )
        return ToolPlacement(system=f"{system}\n\n{text}" if system else text)

    def format_calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(
            f'<tool_call>\n{{"name": "{call.name}", "arguments": {_args(call.arguments)}}}\n</tool_call>' for call in calls
        )

    def extract(self, text: str) -> list[ToolCall] | None:
        return _json_calls(re.findall(r"<tool_call>\s*(.+?)\s*</tool_call>", text, re.DOTALL))


def _args(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else tojson(arguments)


class Llama3Tools(ToolFormat):
    """Llama 3.1's official tool prompt: tools in the first user turn, calls as one JSON object."""

    name = "llama3"
    result_as_json = True  # the official template writes `message.content | tojson` (a string is iterable), untrimmed
    date = "26 Jul 2024"  # the official template's default `date_string`

    def place(self, system: str, tools: list[dict[str, Any]]) -> ToolPlacement:
        header = f"Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: {self.date}\n\n"
        prompt = (
            "Given the following functions, please respond with a JSON for a function call with its proper "
            "arguments that best answers the given prompt.\n\n"
            'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
            "Do not use variables.\n\n" + "".join(tojson(tool, indent=4) + "\n\n" for tool in tools)
        )
        return ToolPlacement(system=header + system, first_user_prefix=prompt)

    def format_calls(self, calls: list[ToolCall]) -> str:
        if len(calls) != 1:
            raise UserError("tool_format llama3: Llama 3 makes one tool call per turn; this turn has several")
        call = calls[0]
        return f'{{"name": "{call.name}", "parameters": {_args(call.arguments)}}}'

    def extract(self, text: str) -> list[ToolCall] | None:
        return _json_calls([text.strip()]) if text.strip().startswith("{") else None


class GLM4Tools(ToolFormat):
    """GLM-4: a `# 可用工具` system prompt, calls written as `name\\n{arguments}`."""

    name = "glm4"

    def place(self, system: str, tools: list[dict[str, Any]]) -> ToolPlacement:
        """The official template writes the tool prompt as its own system turn, then the system text as another.

        Its source has "\\n\\n## name" right after a `{% if %}` tag; transformers renders with
        trim_blocks, which eats the first newline, so the official text has a single "\\n" there.
        """
        text = (
            "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，"
            "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具"
            + "".join(
                f"\n## {tool['name']}\n\n{tojson(tool, indent=4)}\n在调用上述函数时，请使用 Json 格式表示调用的参数。"
                for tool in _functions(tools)
            )
        )
        return ToolPlacement(system=f"{text}<|system|>\n{system}" if system else text)

    def format_calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(f"{call.name}\n{_args(call.arguments)}" for call in calls)

    def extract(self, text: str) -> list[ToolCall] | None:
        name, _, rest = text.strip().partition("\n")
        if not rest or " " in name:
            return None
        return _glm_call(name, rest)


def _glm_call(name: str, rest: str) -> list[ToolCall] | None:
    try:
        return [ToolCall(name, json.loads(rest))]
    except json.JSONDecodeError:
        return None


class MistralTools(ToolFormat):
    """Mistral: `[AVAILABLE_TOOLS]` before the last user turn, `[TOOL_CALLS]` JSON list."""

    name = "mistral"

    def place(self, system: str, tools: list[dict[str, Any]]) -> ToolPlacement:
        return ToolPlacement(system=system, last_user_prefix=f"[AVAILABLE_TOOLS] {tojson(tools)}[/AVAILABLE_TOOLS]")

    def format_calls(self, calls: list[ToolCall]) -> str:
        return "[TOOL_CALLS] " + tojson([{"name": c.name, "arguments": c.arguments} for c in calls])

    def call_frame(self, name: str) -> tuple[str, str]:
        return f'[TOOL_CALLS] [{{"name": {tojson(name)}, "arguments": ', "}]"

    def extract(self, text: str) -> list[ToolCall] | None:
        text = text.strip()
        return _json_calls([text[len("[TOOL_CALLS]") :]]) if text.startswith("[TOOL_CALLS]") else None


class DefaultTools(ToolFormat):
    """tunelab's (and the anchor's) generic ReAct-style format for models without their own."""

    name = "default"

    def place(self, system: str, tools: list[dict[str, Any]]) -> ToolPlacement:
        described = ""
        for tool in _functions(tools):
            params = tool.get("parameters", {}) or {}
            required = set(params.get("required", []))
            args = "".join(
                f"  - {name} ({spec.get('type', 'any')}{', required' if name in required else ''}): {spec.get('description', '')}\n"
                for name, spec in params.get("properties", {}).items()
            )
            described += f"> Tool Name: {tool['name']}\nTool Description: {tool.get('description', '')}\nTool Args:\n{args}\n"
        names = ", ".join(tool["name"] for tool in _functions(tools))
        text = (
            f"You have access to the following tools:\n{described}"
            "Use the following format if using a tool:\n```\n"
            f"Action: tool name (one of [{names}])\n"
            'Action Input: the input to the tool, in a JSON format representing the kwargs (e.g. ```{"input": "hello world", "num_beams": 5}```)\n'
            "```\n"
        )
        return ToolPlacement(system=system + text)

    def format_calls(self, calls: list[ToolCall]) -> str:
        return "\n".join(f"Action: {call.name}\nAction Input: {_args(call.arguments)}" for call in calls)

    def extract(self, text: str) -> list[ToolCall] | None:
        found = re.findall(r"Action:\s*([^\n]+?)\s*\nAction Input:\s*(.+?)(?=\nAction:|\Z)", text, re.DOTALL)
        calls = []
        for name, blob in found:
            try:
                calls.append(ToolCall(name, json.loads(blob.strip().strip("`"))))
            except json.JSONDecodeError:
                return None
        return calls or None


class UnsupportedTools(ToolFormat):
    """A tool format LLaMA-Factory names for a template but tunelab does not write (yet).

    The template itself renders plain conversations; only tool schemas and tool calls stop, with one
    message, instead of being written in some other family's format. Tool results pass through the
    template's observation turn unchanged, as the anchor writes them.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def _refuse(self) -> UserError:
        return UserError(
            f"tool_format: the '{self.name}' tool format of this template is not implemented in tunelab; train tool "
            "calls with `template: auto` (the model's own chat template writes its tools exactly) or set "
            f"`tool_format:` to one of {', '.join(TOOL_FORMATS)}"
        )

    def place(self, system: str, tools: list[dict[str, Any]]) -> ToolPlacement:
        raise self._refuse()

    def format_calls(self, calls: list[ToolCall]) -> str:
        raise self._refuse()

    def extract(self, text: str) -> list[ToolCall] | None:
        return None  # answers are never parsed as calls in a format tunelab cannot write


TOOL_FORMATS: Mapping[str, ToolFormat] = MappingProxyType(
    {fmt.name: fmt for fmt in (DefaultTools(), QwenTools(), Llama3Tools(), GLM4Tools(), MistralTools())}
)
# tool formats of LLaMA-Factory 0.9.5 templates that tunelab keeps the names of but does not write
UNSUPPORTED_TOOL_FORMATS: Mapping[str, ToolFormat] = MappingProxyType(
    {name: UnsupportedTools(name) for name in ("glm4_moe", "lfm2", "ling")}
)


def get_tool_format(name: str) -> ToolFormat:
    """The tool format called `name`; a UserError lists the valid names otherwise."""
    try:
        return TOOL_FORMATS[name] if name in TOOL_FORMATS else UNSUPPORTED_TOOL_FORMATS[name]
    except KeyError:
        raise UserError(f"tool_format: unknown format '{name}'; choose one of {', '.join(TOOL_FORMATS)}") from None
