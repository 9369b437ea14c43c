"""What every format shares: the conversion context, turn-order rules per stage, and assembling `Example`s."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tunelab.config.stages import DataKind, get_stage_spec
from tunelab.data.conversation import Example, Message, Role, Source
from tunelab.data.dataset_info import DatasetAttr
from tunelab.data.media import MARKERS, count_markers
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


def read_media(
    row: dict, ctx: ConvertContext, ck: RowChecker, parts: dict[str, list[Any]] | None = None
) -> dict[str, tuple[Any, ...]]:
    """Images, videos and audios of the row: its media columns' files, each checked to exist, then the
    media its content parts gave (`parts`, already resolved), in order. A kind given both ways is a
    problem: which marker means which file would be a guess."""
    out: dict[str, tuple[Any, ...]] = {}
    for key in MARKERS:
        column = ctx.attr.column(key)
        files = ck.media(row.get(column), column, ctx.media_dir, kind=key) if column else ()
        extra = tuple((parts or {}).get(key, ()))
        if files and extra:
            ck.add(column or key, f"the row gives {key} both in its '{column}' column and as content parts; "
                   "give them one way (the parts put each marker where its file goes)")  # fmt: skip
        out[key] = files + extra
    return out


def check_markers(
    turns: list[Turn], ctx: ConvertContext, ck: RowChecker, media: dict[str, tuple[Any, ...]],
    chosen: Message | None = None, rejected: Message | None = None,
) -> bool:  # fmt: skip
    """The anchor's count rule (`mm_plugin._validate_messages`): the `<image>` markers of the messages must
    number the `images` files, and the same for videos and audios. The anchor counts the messages it
    encodes, so a preference example is counted as prompt + chosen and prompt + rejected. A kind is
    checked when the data set names its column (or the row's content parts gave such media): a text data
    set may say "<image>" as words. The system prompt and tools are not counted (nor by the anchor)."""
    base = count_all(t.content for t in turns)
    sides = {side: count_all([m.content]) for side, m in (("chosen", chosen), ("rejected", rejected)) if m}
    ok = True
    for key, marker in MARKERS.items():
        column = ctx.attr.column(key)
        files = len(media.get(key, ()))
        if column is None and not files:
            continue
        totals = {side: base[key] + counts[key] for side, counts in sides.items()} or {"": base[key]}
        same = len(set(totals.values())) == 1
        for side, found in totals.items():
            if found == files:
                continue
            where = "the text" if same or not side else f"the text with {ctx.attr.column(side) or side}"
            noun = "marker" if found == 1 else "markers"
            ck.add(column or key, f"{found} {marker} {noun} in {where} but {files} file(s): write one {marker} "
                   "where each file goes, in the files' order")  # fmt: skip
            ok = False
            if same:
                break
    return ok


def count_all(texts: Any) -> dict[str, int]:
    """Markers of several texts, summed by column name."""
    total = dict.fromkeys(MARKERS, 0)
    for text in texts:
        for key, count in count_markers(text).items():
            total[key] += count
    return total


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
    media: dict[str, tuple[Any, ...]] | None = None,
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
