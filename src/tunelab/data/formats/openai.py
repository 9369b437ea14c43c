"""openai: `{role, content}` messages as the OpenAI chat API writes them.

An assistant message with `tool_calls` becomes a function-call turn whose content is the JSON list
of `{name, arguments}`; consecutive `tool` messages become one observation turn, joined the way the
anchor joins them. A leading system message becomes the system prompt. Content may be a list of
OpenAI content parts: text parts are joined and each image / video / audio part becomes its marker
(`<image>` ...) where it stood, its file joining the example's media (the anchor's API reads parts the
same way; its data loader does not read them at all).
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
from tunelab.data.media import MARKERS
from tunelab.data.validate import RowChecker, type_name

TOOL_RESPONSE_SEPARATOR = "\n</tool_response>\n<tool_response>\n"


#: content part type -> (the column its media join, the key that holds the reference)
MEDIA_PARTS: dict[str, tuple[str, str]] = {
    "image_url": ("images", "image_url"), "image": ("images", "image"),
    "video_url": ("videos", "video_url"), "video": ("videos", "video"),
    "audio_url": ("audios", "audio_url"), "audio": ("audios", "audio"),
    "input_audio": ("audios", "input_audio"),
}
PART_TYPES = ("text", *MEDIA_PARTS)


def _part_ref(part: dict[str, Any], ptype: str, field: str, ck: RowChecker) -> tuple[Any, str] | None:
    """The media reference a part holds and the field it sits in: `{"url": ...}` objects or plain strings
    (`image_url`, `video_url`, `audio_url`), the value itself (`image`, `video`, `audio`, or their `url` /
    `path` keys as chat templates write them), `input_audio`'s base64 `data` and `format` as a data URL."""
    key = MEDIA_PARTS[ptype][1]
    value = part.get(key)
    if ptype == "input_audio":
        if not isinstance(value, dict) or not isinstance(value.get("data"), str):
            ck.add(f"{field}.{key}", 'expected {"data": <base64 audio>, "format": "wav"}')
            return None
        audio_format = value.get("format") or "wav"
        return f"data:audio/{audio_format};base64,{value['data']}", f"{field}.{key}.data"
    if value is None and key in ("image", "video", "audio"):
        key = next((k for k in ("url", "path") if part.get(k) is not None), key)
        value = part.get(key)
    if isinstance(value, dict) and key.endswith("_url"):
        return value.get("url"), f"{field}.{key}.url"
    if value is None:
        ck.add(f"{field}.{key}", "missing required field (the part's media)")
        return None
    return value, f"{field}.{key}"


def content_parts(
    value: Any, field: str, ctx: ConvertContext, ck: RowChecker, media: dict[str, list[Any]] | None
) -> Any:
    """Content given as OpenAI parts -> text, with each media part replaced by its marker (`<image>`,
    `<video>`, `<audio>`) where it stood and its reference appended to `media` (resolved as a media
    column's are). Text parts are joined with nothing between them, as the anchor's API joins them.
    `media` None: only text parts are allowed here (the system prompt, chosen / rejected). Content that
    is not a list is returned as it is, for the string checks."""
    if not isinstance(value, list):
        return value
    text: list[str] = []
    for index, part in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(part, dict):
            ck.add(where, f"expected a content part object ({{\"type\": \"text\", ...}}), got {type_name(part)}")
            continue
        ptype = part.get("type", "text" if "text" in part else None)
        if ptype == "text":
            piece = ck.text(part.get("text"), f"{where}.text", allow_empty=True)
            text.append(piece or "")
            continue
        if ptype not in MEDIA_PARTS:
            shown = "no type" if ptype is None else f"type {ptype!r}"
            ck.add(f"{where}.type", f"unknown content part {shown} (expected one of {', '.join(PART_TYPES)})")
            continue
        column = MEDIA_PARTS[ptype][0]
        if media is None:
            article = "an" if ptype[0] in "aeiou" else "a"
            ck.add(f"{where}.type", f"{article} {ptype} part is not allowed here: media go in the messages "
                   "(a user turn), not in the system prompt or chosen / rejected")  # fmt: skip
            continue
        found = _part_ref(part, ptype, where, ck)
        if found is None:
            continue
        ref = ck.media_item(found[0], found[1], ctx.media_dir, column)
        if ref is not None:
            media.setdefault(column, []).append(ref)
        text.append(MARKERS[column])
    return "".join(text)


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
        field = f"{column}[0].{content_tag}"
        system = read_system(content_parts(messages[0].get(content_tag), field, ctx, ck, None), field, ck)
        start = 1
    else:
        system = read_system(row.get(system_col), system_col, ck) if system_col else None

    turns: list[Turn] = []
    part_media: dict[str, list[Any]] = {}
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
            known = len(ck.problems)
            parts = content_parts(message.get(content_tag), f"{field}.{content_tag}", ctx, ck, part_media)
            if len(ck.problems) > known:
                continue  # the parts' problems are said; the joined text would only add "empty content"
            message = {**message, content_tag: parts}
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
                               candidate=_candidate, part_media=part_media)


def _candidate(row: dict[str, Any], column: str, ctx: ConvertContext, ck: RowChecker, roles: dict[str, Role]) -> Message | None:
    value = row.get(column)
    if isinstance(value, dict) and value.get("tool_calls"):
        content = _tool_calls(value["tool_calls"], f"{column}.tool_calls", ck)
        return Message(Role.FUNCTION, content) if content is not None else None
    if isinstance(value, dict):
        content_tag = ctx.attr.tags["content_tag"]
        text = content_parts(value.get(content_tag), f"{column}.{content_tag}", ctx, ck, None)
        row = {**row, column: {**value, content_tag: text}}
    return read_candidate(row, column, ctx, ck, roles)
