"""openai: `{role, content}` messages as the OpenAI chat API writes them.

An assistant message with `tool_calls` becomes a function-call turn whose content is the JSON list
of `{name, arguments}`; consecutive `tool` messages become one observation turn, joined the way the
anchor joins them. A leading system message becomes the system prompt.
"""

from __future__ import annotations

import json
from typing import Any

from tunelab.data.conversation import Example, Message, Role, Source
from tunelab.data.formats.common import (
    ConvertContext,
    Turn,
    read_system,
)
from tunelab.data.formats.sharegpt import (
    finish_conversation,
    read_candidate,
    read_message,
    role_map,
)
from tunelab.data.validate import RowChecker, type_name

TOOL_RESPONSE_SEPARATOR = "\n</tool_response>\n<tool_response>\n"


def _content_text(value: Any) -> Any:
    """Content may be a list of parts (`{"type": "text", "text": ...}`); their texts are joined."""
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        return "".join(str(p.get("text", "")) for p in value if p.get("type", "text") == "text")
    return value


def _tool_calls(calls: Any, field: str, ck: RowChecker) -> str | None:
    """`tool_calls` → JSON list of `{"name", "arguments"}` with arguments decoded when they are JSON text."""
    if not isinstance(calls, list):
        ck.add(field, f"expected a list of tool calls, got {type_name(calls)}")
        return None
    out = []
    for i, call in enumerate(calls):
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            ck.add(f"{field}[{i}]", "a tool call needs function.name")
            return None
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as error:
                ck.add(f"{field}[{i}].function.arguments", f"arguments must be JSON: {error.msg}")
                return None
        out.append({"name": function["name"], "arguments": arguments})
    return json.dumps(out, ensure_ascii=False)


def convert_openai(row: dict[str, Any], ctx: ConvertContext, ck: RowChecker) -> Example | None:
    attr = ctx.attr
    source = Source(attr.name, ck.file, ck.row)
    column = attr.column("messages") or "messages"
    messages = row.get(column)
    if messages is None:
        ck.add(column, "missing required field")
        return None
    if not isinstance(messages, list):
        ck.add(column, f"expected a list of messages, got {type_name(messages)}")
        return None
    tags = attr.tags
    role_tag, content_tag = tags["role_tag"], tags["content_tag"]
    roles = role_map(ctx)

    system_col = attr.column("system")
    start = 0
    if messages and isinstance(messages[0], dict) and messages[0].get(role_tag) == tags["system_tag"]:
        system = read_system(_content_text(messages[0].get(content_tag)), f"{column}[0].{content_tag}", ck)
        start = 1
    else:
        system = read_system(row.get(system_col), system_col, ck) if system_col else None

    turns: list[Turn] = []
    pending: list[tuple[str, str]] = []  # tool results waiting to be joined: (content, field)

    def flush() -> None:
        if pending:
            content = TOOL_RESPONSE_SEPARATOR.join(c for c, _ in pending)
            turns.append(Turn(Role.OBSERVATION, content, pending[0][1], tags["observation_tag"]))
            pending.clear()

    for index in range(start, len(messages)):
        field = f"{column}[{index}]"
        message = messages[index]
        if isinstance(message, dict) and message.get("tool_calls"):
            if message.get(role_tag) not in (tags["assistant_tag"], tags["function_tag"]):
                ck.add(f"{field}.tool_calls", f"only an {tags['assistant_tag']!r} message may have tool_calls")
                continue
            content = _tool_calls(message["tool_calls"], f"{field}.tool_calls", ck)
            if content is not None:
                flush()
                turns.append(Turn(Role.FUNCTION, content, f"{field}.{role_tag}", tags["function_tag"]))
            continue
        if isinstance(message, dict):
            message = {**message, content_tag: _content_text(message.get(content_tag))}
        parsed = read_message(message, field, ctx, ck, roles)
        if parsed is None:
            continue
        role, content, tag = parsed
        if role is Role.OBSERVATION:
            pending.append((content, f"{field}.{role_tag}"))
            continue
        flush()
        turns.append(Turn(role, content, f"{field}.{role_tag}", tag))
    flush()
    if not ck.ok:
        return None

    return finish_conversation(row, turns, ctx, ck, source=source, system=system, column=column, roles=roles,
                               candidate=_candidate)


def _candidate(row: dict[str, Any], column: str, ctx: ConvertContext, ck: RowChecker, roles: dict[str, Role]) -> Message | None:
    value = row.get(column)
    if isinstance(value, dict) and value.get("tool_calls"):
        content = _tool_calls(value["tool_calls"], f"{column}.tool_calls", ck)
        return Message(Role.FUNCTION, content) if content is not None else None
    return read_candidate(row, column, ctx, ck, roles)
