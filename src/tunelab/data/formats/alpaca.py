"""alpaca: instruction / input / output columns, optional history pairs, system and tools.

As in the anchor, the user turn is `instruction + "\\n" + input` (only the non-empty parts), history
pairs become earlier turns, and for pre-training the prompt column (e.g. `columns: {prompt: text}`)
is the text.
"""

from __future__ import annotations

from typing import Any

from tunelab.config.stages import DataKind
from tunelab.data.conversation import Example, Message, Role, Source
from tunelab.data.formats.common import (
    ConvertContext,
    Turn,
    check_markers,
    make_example,
    pretraining_example,
    read_kto_tag,
    read_media,
    read_system,
    read_tools,
)
from tunelab.data.validate import RowChecker, type_name

TAGS = {Role.USER: "user", Role.ASSISTANT: "assistant", Role.OBSERVATION: "observation", Role.FUNCTION: "function"}


def convert_alpaca(row: dict[str, Any], ctx: ConvertContext, ck: RowChecker) -> Example | None:
    attr = ctx.attr
    source = Source(attr.name, ck.file, ck.row)
    prompt_col, query_col = attr.column("prompt"), attr.column("query")

    parts: list[str] = []
    for column in (prompt_col, query_col):
        if column is None:
            continue
        value = row.get(column)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            ck.add(column, f"expected a string, got {type_name(value)}")
            continue
        parts.append(value)
    prompt_field = prompt_col or query_col or "instruction"
    if ck.ok and not "".join(parts).strip():
        present = [c for c in (prompt_col, query_col) if c and c in row]
        ck.add(prompt_field, "empty content" if present else "missing required field")

    if ctx.kind is DataKind.TEXT:
        return pretraining_example("\n".join(parts), source) if ck.ok else None

    turns = _history(row, attr.column("history"), ck)
    turns.append(Turn(Role.USER, "\n".join(parts), prompt_field, "user"))
    system_col, tools_col = attr.column("system"), attr.column("tools")
    system = read_system(row.get(system_col), system_col, ck) if system_col else None
    tools = read_tools(row.get(tools_col), tools_col, ck) if tools_col else None
    media = read_media(row, ctx, ck)

    chosen = rejected = None
    kto_tag = None
    if attr.ranking:
        chosen_col, rejected_col = attr.column("chosen") or "chosen", attr.column("rejected") or "rejected"
        chosen_text = ck.text(row.get(chosen_col), chosen_col)
        rejected_text = ck.text(row.get(rejected_col), rejected_col)
        if chosen_text is not None and rejected_text is not None:
            chosen, rejected = Message(Role.ASSISTANT, chosen_text), Message(Role.ASSISTANT, rejected_text)
    else:
        response_col = attr.column("response") or "output"
        required = ctx.kind is not DataKind.PROMPT or row.get(response_col) not in (None, "")
        response = ck.text(row.get(response_col), response_col, required=required)
        if response:
            turns.append(Turn(Role.ASSISTANT, response, response_col, "assistant"))
        if ctx.wants_kto:
            kto_col = attr.column("kto_tag") or "kto_tag"
            kto_tag = read_kto_tag(row.get(kto_col), kto_col, ck)

    if not ck.ok or not check_markers(turns, ctx, ck, media, chosen, rejected):
        return None
    return make_example(
        turns, ctx=ctx, source=source, system=system, tools=tools,
        chosen=chosen, rejected=rejected, kto_tag=kto_tag, media=media,
    )  # fmt: skip


def _history(row: dict[str, Any], column: str | None, ck: RowChecker) -> list[Turn]:
    """`[[prompt, response], ...]` pairs as earlier turns."""
    if column is None:
        return []
    value = row.get(column)
    if value is None or value == [] or value == "":
        return []
    if not isinstance(value, list):
        ck.add(column, f"expected a list of [prompt, response] pairs, got {type_name(value)}")
        return []
    turns: list[Turn] = []
    for i, pair in enumerate(value):
        field = f"{column}[{i}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            got = f"a list of {len(pair)}" if isinstance(pair, (list, tuple)) else type_name(pair)
            ck.add(field, f"expected a [prompt, response] pair, got {got}")
            continue
        query = ck.text(pair[0], f"{field}[0]")
        answer = ck.text(pair[1], f"{field}[1]")
        if query is not None and answer is not None:
            turns.append(Turn(Role.USER, query, f"{field}[0]", "user"))
            turns.append(Turn(Role.ASSISTANT, answer, f"{field}[1]", "assistant"))
    return turns
