"""What every format shares: the conversion context, turn-order rules per stage, and assembling `Example`s."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tunelab.config.stages import DataKind, get_stage_spec
from tunelab.data.conversation import Example, Message, Role, Source
from tunelab.data.dataset_info import DatasetAttr
from tunelab.data.validate import RowChecker, type_name

PROMPT_ROLES = (Role.USER, Role.OBSERVATION)
RESPONSE_ROLES = (Role.ASSISTANT, Role.FUNCTION)


@dataclass(frozen=True)
class ConvertContext:
    """What a converter needs besides the row: the registry entry, the stage and where media live."""

    attr: DatasetAttr
    stage: str
    media_dir: str | None = None

    @property
    def kind(self) -> DataKind:
        """What the stage reads (the stage table's `data`): converters branch on this, never on the stage name."""
        return get_stage_spec(self.stage).data

    @property
    def wants_preference(self) -> bool:
        return self.kind.is_ranking

    @property
    def wants_kto(self) -> bool:
        return self.kind is DataKind.KTO


@dataclass(frozen=True)
class Turn:
    """A turn with the place it came from, so order problems name the right field."""

    role: Role
    content: str
    field: str  # the field that holds the role, e.g. `conversations[2].from`
    tag: str  # the role as the data writes it


def check_order(turns: list[Turn], ck: RowChecker, tag_names: dict[Role, str]) -> bool:
    """Turns must alternate: user/observation at even positions, assistant/function at odd ones."""
    for index, turn in enumerate(turns):
        expected = PROMPT_ROLES if index % 2 == 0 else RESPONSE_ROLES
        if turn.role not in expected:
            kind = "a user or observation" if index % 2 == 0 else "an assistant or function call"
            names = " or ".join(repr(tag_names[r]) for r in expected)
            ck.add(turn.field, f"roles out of order: expected {kind} turn ({names}), got {turn.tag!r}")
            return False
    return True


def check_ending(turns: list[Turn], ck: RowChecker, ctx: ConvertContext, field: str, tag_names: dict[Role, str]) -> bool:
    """The last turn a stage needs: a response for sft/kto, a prompt for preference data."""
    if not turns:
        ck.add(field, "empty conversation")
        return False
    last = turns[-1]
    if ctx.kind is DataKind.PROMPT:
        return True
    if ctx.attr.ranking:
        if last.role not in PROMPT_ROLES:
            ck.add(field, f"a preference example must end with the prompt turn ({tag_names[Role.USER]!r}), "
                   f"the responses go in chosen / rejected; it ends with {last.tag!r}")  # fmt: skip
            return False
        return True
    if last.role not in RESPONSE_ROLES:
        ck.add(field, f"the conversation must end with an assistant turn ({tag_names[Role.ASSISTANT]!r}), "
               f"it ends with {last.tag!r}")  # fmt: skip
        return False
    return True


def check_function_call(content: str, field: str, ck: RowChecker) -> str | None:
    """A function-call turn's content must be JSON (one call or a list of calls)."""
    try:
        json.loads(content)
    except json.JSONDecodeError as error:
        ck.add(field, f"a function call must be JSON ({{\"name\": ..., \"arguments\": ...}}): {error.msg}")
        return None
    return content


def read_system(value: Any, field: str, ck: RowChecker) -> str | None:
    """Optional system prompt; an empty one means none."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        ck.add(field, f"expected a string, got {type_name(value)}")
        return None
    return value


def read_tools(value: Any, field: str, ck: RowChecker) -> str | None:
    """Optional tool schemas: a JSON string, or a list / object that is serialised to one."""
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False) if value else None
    if not isinstance(value, str):
        ck.add(field, f"expected a JSON string or a list of tools, got {type_name(value)}")
        return None
    if not value.strip():
        return None
    try:
        json.loads(value)
    except json.JSONDecodeError as error:
        ck.add(field, f"tools must be JSON (a list of tool schemas): {error.msg} at column {error.colno}")
        return None
    return value


def read_kto_tag(value: Any, field: str, ck: RowChecker) -> bool | None:
    """KTO's desirable / undesirable flag: a boolean (CSV's `true` / `false` text is accepted)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is None:
        ck.add(field, "missing required field (kto data needs a true / false tag)")
    else:
        ck.add(field, f"expected true or false, got {type_name(value)}")
    return None


def read_media(row: dict, ctx: ConvertContext, ck: RowChecker) -> dict[str, tuple[str, ...]]:
    """Images, videos and audios named by the row, each checked to exist."""
    out: dict[str, tuple[str, ...]] = {}
    for key in ("images", "videos", "audios"):
        column = ctx.attr.column(key)
        out[key] = ck.media(row.get(column), column, ctx.media_dir) if column else ()
    return out


def make_example(
    turns: list[Turn],
    *,
    ctx: ConvertContext,
    source: Source,
    system: str | None,
    tools: str | None,
    chosen: Message | None = None,
    rejected: Message | None = None,
    kto_tag: bool | None = None,
    media: dict[str, tuple[str, ...]] | None = None,
) -> Example:
    media = media or {}
    return Example(
        messages=tuple(Message(t.role, t.content) for t in turns),
        system=system,
        tools=tools,
        chosen=chosen,
        rejected=rejected,
        kto_tag=kto_tag,
        images=media.get("images", ()),
        videos=media.get("videos", ()),
        audios=media.get("audios", ()),
        source=source,
    )


def pretraining_example(text: str, source: Source) -> Example:
    return Example(text=text, source=source)
