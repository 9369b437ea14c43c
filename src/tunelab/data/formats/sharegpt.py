"""sharegpt: a list of `{from, value}` messages whose role tags are mapped by the registry's `tags`.

Roles alternate (user or observation, then assistant or function call); a leading `system_tag` turn
becomes the system prompt and overrides the system column, as in the anchor. Preference data keeps
the prompt in the messages and the two candidate responses in `chosen` / `rejected` message objects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tunelab.config.stages import DataKind
from tunelab.data.conversation import Example, Message, Role, Source
from tunelab.data.formats.common import (
    RESPONSE_ROLES,
    ConvertContext,
    Turn,
    check_ending,
    check_function_call,
    check_markers,
    check_order,
    make_example,
    pretraining_example,
    read_kto_tag,
    read_media,
    read_system,
    read_tools,
)
from tunelab.data.validate import RowChecker, type_name


def role_map(ctx: ConvertContext) -> dict[str, Role]:
    """The data's role tags mapped to tunelab roles."""
    tags = ctx.attr.tags
    return {
        tags["user_tag"]: Role.USER,
        tags["assistant_tag"]: Role.ASSISTANT,
        tags["observation_tag"]: Role.OBSERVATION,
        tags["function_tag"]: Role.FUNCTION,
    }


def tag_names(ctx: ConvertContext) -> dict[Role, str]:
    tags = ctx.attr.tags
    return {
        Role.USER: tags["user_tag"],
        Role.ASSISTANT: tags["assistant_tag"],
        Role.OBSERVATION: tags["observation_tag"],
        Role.FUNCTION: tags["function_tag"],
    }


def tags_hint(ctx: ConvertContext, seen: Sequence[str], roles: dict[str, Role]) -> str:
    """The `tags` mapping that reads a row whose role tags are `seen` (in order): prompts sit at even
    turns, answers at odd ones, so the first unknown tag of each is the user / assistant tag."""
    turns = [tag for tag in seen if tag != ctx.attr.tags["system_tag"]]
    fix = {name: tag for name, tag in (("user_tag", next(iter(turns[0::2]), None)),
                                       ("assistant_tag", next(iter(turns[1::2]), None)))
           if tag is not None and tag not in roles}
    if not fix:
        return ""
    shown = ", ".join(repr(tag) for tag in dict.fromkeys(turns))
    return (f"; this row's roles are {shown}: map them with \"tags\": {json.dumps(fix)} in data set "
            f"'{ctx.attr.name}' of dataset_info.json")


def read_message(
    message: Any, field: str, ctx: ConvertContext, ck: RowChecker, roles: dict[str, Role], seen: Sequence[str] = ()
) -> tuple[Role, str, str] | None:
    """One `{role_tag: ..., content_tag: ...}` object → (role, content, tag as written); `seen` holds the
    row's role tags, so an unknown one is reported with the `tags` mapping that fixes it."""
    role_tag, content_tag = ctx.attr.tags["role_tag"], ctx.attr.tags["content_tag"]
    if not isinstance(message, dict):
        ck.add(field, f"expected a message object, got {type_name(message)}")
        return None
    tag = message.get(role_tag)
    if tag is None:
        ck.add(f"{field}.{role_tag}", "missing required field")
        return None
    if not isinstance(tag, str):
        ck.add(f"{field}.{role_tag}", f"expected text, got {type_name(tag)}")
        return None
    if tag == ctx.attr.tags["system_tag"]:
        ck.add(f"{field}.{role_tag}", f"a system turn ({tag!r}) is only allowed as the first message")
        return None
    if tag not in roles:
        known = ", ".join(repr(t) for t in [*roles, ctx.attr.tags["system_tag"]])
        first = not any(p.reason.startswith("unknown role") for p in ck.problems)  # the fix is said once a row
        hint = tags_hint(ctx, seen, roles) if first else ""
        ck.add(f"{field}.{role_tag}", f"unknown role {tag!r} (expected one of {known}){hint}")
        return None
    content = ck.text(message.get(content_tag), f"{field}.{content_tag}")
    if content is None:
        return None
    role = roles[tag]
    if role is Role.FUNCTION and check_function_call(content, f"{field}.{content_tag}", ck) is None:
        return None
    return role, content, tag


def convert_sharegpt(row: dict[str, Any], ctx: ConvertContext, ck: RowChecker) -> Example | None:
    attr = ctx.attr
    source = Source(attr.name, ck.file, ck.row)
    column = attr.column("messages") or "conversations"
    messages = row.get(column)
    if messages is None:
        ck.add(column, "missing required field")
        return None
    if not isinstance(messages, list):
        ck.add(column, f"expected a list of messages, got {type_name(messages)}")
        return None

    role_tag, content_tag, system_tag = attr.tags["role_tag"], attr.tags["content_tag"], attr.tags["system_tag"]
    system_col = attr.column("system")
    start = 0
    if messages and isinstance(messages[0], dict) and messages[0].get(role_tag) == system_tag:
        system = read_system(messages[0].get(content_tag), f"{column}[0].{content_tag}", ck)
        start = 1
    else:
        system = read_system(row.get(system_col), system_col, ck) if system_col else None

    roles = role_map(ctx)
    seen = [m[role_tag] for m in messages[start:] if isinstance(m, dict) and isinstance(m.get(role_tag), str)]
    turns: list[Turn] = []
    for index in range(start, len(messages)):
        field = f"{column}[{index}]"
        parsed = read_message(messages[index], field, ctx, ck, roles, seen)
        if parsed is not None:
            turns.append(Turn(parsed[0], parsed[1], f"{field}.{role_tag}", parsed[2]))
    if not ck.ok:
        return None

    return finish_conversation(row, turns, ctx, ck, source=source, system=system, column=column, roles=roles,
                               candidate=read_candidate)


def finish_conversation(
    row: dict[str, Any], turns: list[Turn], ctx: ConvertContext, ck: RowChecker, *, source: Source,
    system: str | None, column: str, roles: dict[str, Role], candidate: Any,
    part_media: dict[str, list[Any]] | None = None,
) -> Example | None:  # fmt: skip
    """The part sharegpt and openai share once the turns are read: pre-training text, role order and
    ending, tools, media (the columns' files, or `part_media` from openai content parts) and the marker
    count rule, preference candidates (`candidate` reads one) or the KTO tag, then the Example."""
    attr = ctx.attr
    if ctx.kind is DataKind.TEXT:
        if not turns:
            ck.add(column, "empty conversation")
            return None
        return pretraining_example(turns[0].content, source)

    names = tag_names(ctx)
    if not check_order(turns, ck, names) or not check_ending(turns, ck, ctx, column, names):
        return None

    tools_col = attr.column("tools")
    tools = read_tools(row.get(tools_col), tools_col, ck) if tools_col else None
    media = read_media(row, ctx, ck, part_media)
    chosen = rejected = None
    kto_tag = None
    if attr.ranking:
        chosen = candidate(row, attr.column("chosen") or "chosen", ctx, ck, roles)
        rejected = candidate(row, attr.column("rejected") or "rejected", ctx, ck, roles)
    elif ctx.wants_kto:
        kto_col = attr.column("kto_tag") or "kto_tag"
        kto_tag = read_kto_tag(row.get(kto_col), kto_col, ck)
    if not ck.ok or not check_markers(turns, ctx, ck, media, chosen, rejected):
        return None
    return make_example(
        turns, ctx=ctx, source=source, system=system, tools=tools,
        chosen=chosen, rejected=rejected, kto_tag=kto_tag, media=media,
    )  # fmt: skip


def read_candidate(row: dict[str, Any], column: str, ctx: ConvertContext, ck: RowChecker, roles: dict[str, Role]) -> Message | None:
    """A preference response: one message object whose role is the assistant's (or a function call)."""
    value = row.get(column)
    if value is None:
        ck.add(column, "missing required field (preference data needs chosen and rejected)")
        return None
    parsed = read_message(value, column, ctx, ck, roles)
    if parsed is None:
        return None
    role, content, tag = parsed
    if role not in RESPONSE_ROLES:
        ck.add(f"{column}.{ctx.attr.tags['role_tag']}", f"expected an assistant turn ({ctx.attr.tags['assistant_tag']!r}), got {tag!r}")
        return None
    return Message(role, content)
