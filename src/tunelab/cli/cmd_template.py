"""`tunelab template list | render | check`: see the chat templates and exactly which tokens a model learns.

`render` prints each example as the model sees it, trained tokens highlighted (green on a terminal,
`[[...]]` otherwise), followed by a token / label table, so a wrong template or mask is caught
before any GPU time is spent. `check` compares a named template with the model's own chat template
on the drift guard's probes (`data/templates/drift.py`): exit 0 identical, 1 different, 2 a user error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tunelab.data.labels import IGNORE_INDEX
from tunelab.errors import UserError

DEMO_MESSAGES = [
    ("user", "What is the capital of France?"),
    ("assistant", "The capital of France is Paris."),
    ("user", "And of Italy?"),
    ("assistant", "Rome."),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunelab template", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="list the named templates, each with the official template it is checked against")
    check = sub.add_parser("check", help="compare a named template with the model's own chat template "
                                         "(exit 0 identical, 1 different, 2 user error)")
    check.add_argument("--model_name_or_path", required=True,
                       help="model or tokenizer folder, hub id, or a built-in model (tunelab/tiny-chat)")
    check.add_argument("--template", default=None,
                       help="the named template to compare (see `tunelab template list`); omitted or `auto`: nothing to compare")
    check.add_argument("--trust_remote_code", type=_bool, default=False,
                       help="run tokenizer code shipped with the model (true / false; default false)")
    render = sub.add_parser("render", help="render examples with a template and show the trained tokens")
    render.add_argument("name", help="template name (see `tunelab template list`) or `auto`")
    render.add_argument("--model_name_or_path", required=True,
                        help="model or tokenizer folder, hub id, or a built-in model (tunelab/tiny-chat)")
    render.add_argument("--trust_remote_code", type=_bool, default=False,
                        help="run tokenizer code shipped with the model (true / false; default false)")
    render.add_argument("--data", help="a .json / .jsonl file of examples (openai/sharegpt `messages` or alpaca rows)")
    render.add_argument("--dataset", help="data set name(s) from dataset_info.json, instead of --data")
    render.add_argument("--dataset_dir", default="data", help="folder of dataset_info.json (with --dataset)")
    render.add_argument("--max_examples", type=int, default=1, help="how many examples to render")
    render.add_argument("--cutoff_len", type=int, default=2048)
    render.add_argument("--train_on_prompt", action="store_true")
    render.add_argument("--mask_history", action="store_true")
    render.add_argument("--enable_thinking", type=_bool, default=True)
    render.add_argument("--tool_format", default=None)
    render.add_argument("--default_system", default=None)
    render.add_argument("--no_table", action="store_true", help="print the text only")
    render.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    return parser


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "list":
        return _list()
    if args.action == "check":
        return _check(args)
    return _render(args)


#: the `source` column of `list`, and the legend printed under it
SOURCES = {
    "official": "official: {official}",
    "anchor": "anchor (LLaMA-Factory format)",
    "tunelab": "tunelab (own format)",
}
LEGEND = ("official: checked token for token against that model's official chat template; anchor: LLaMA-Factory's "
          "format, no official chat template to check against offline; tunelab: tunelab's own format")


def _list() -> int:
    from tunelab.data.templates import list_templates

    templates = list_templates()
    width = max(len(t.name) for t in templates)
    column = min(44, max(len(checked_against(t)) for t in templates))
    for template in templates:
        print(f"{template.name.ljust(width)}  {checked_against(template).ljust(column)}  {template.description}"
              f"{multimodal_note(template)}")
    print(f"{'auto'.ljust(width)}  {'model (its own)'.ljust(column)}  the model's own chat template "
          "(tokenizer_config.json); the default")
    print(LEGEND)
    return 0


def checked_against(template: Any) -> str:
    """The source column: whose official template a record is checked against, or where its format comes from."""
    official = template.official.split(" (")[0] or "its family"  # the model id, without the notes on where the file came from
    return SOURCES.get(template.source, template.source).format(official=official)


def multimodal_note(template: Any) -> str:
    if not template.modalities:
        return ""
    return f" [multimodal ({', '.join(template.modalities)}): media train with a model of a family docs/multimodal.md lists]"


def _load_tokenizer(model_name_or_path: str, trust_remote_code: bool) -> Any:
    """The tokenizer exactly as training loads it: built-in models, trust_remote_code given (never a [y/N] prompt)."""
    from tunelab.config.model_args import ModelArguments
    from tunelab.model.load import load_tokenizer, resolve_model_path

    model_args = ModelArguments(model_name_or_path=model_name_or_path, trust_remote_code=trust_remote_code)
    return load_tokenizer(model_args, resolve_model_path(model_name_or_path, weights=False))


def _check(args: argparse.Namespace) -> int:
    from tunelab.data.templates import get_template
    from tunelab.data.templates.drift import compare, first_drift, own_jinja

    tokenizer = _load_tokenizer(args.model_name_or_path, args.trust_remote_code)
    model = args.model_name_or_path
    if not args.template or args.template == "auto":
        if not own_jinja(tokenizer):
            raise UserError(f"{model} has no chat template of its own, so `template: auto` cannot be used and there "
                            "is nothing to compare against; name a template with --template (see `tunelab template list`).")
        print(f"no --template: `template: auto` uses the model's own chat template of {model}, so there is nothing "
              "to compare; pass --template NAME to compare a named template with it.")
        return 0
    template = get_template(args.template, tokenizer)
    if not own_jinja(tokenizer):
        raise UserError(f"{model} has no chat template of its own (no chat_template in tokenizer_config.json), so "
                        f"there is nothing to compare '{template.name}' against.")
    results = compare(template, tokenizer)
    for result in results:
        print(f"=== probe {result.probe}: template '{template.name}' vs the chat template of {model} ===")
        if result.refused:
            print(f"not compared: {result.refused}")
            continue
        print(f"--- '{template.name}' ({len(result.named_ids)} tokens)\n{result.named}\nids: {list(result.named_ids)}")
        print(f"--- the model's own ({len(result.own_ids)} tokens)\n{result.own}\nids: {list(result.own_ids)}")
        print("identical" if result.offset is None else f"first difference at character {result.offset}")
    drift = first_drift(results, template.name, model)
    if drift is None and not any(result.compared for result in results):
        raise UserError(f"the chat template of {model} renders none of the probes, so there is nothing to compare "
                        f"'{template.name}' against.")
    if drift is None:
        print(f"result: identical: '{template.name}' renders every compared probe exactly as the chat template of {model}")
        return 0
    print(f"result: different: on the probe {drift.probe}, at character {drift.offset}, {drift.side_by_side()}. "
          "Train with `template: auto` to use the model's own layout.")
    return 1


def _render(args: argparse.Namespace) -> int:
    from tunelab.config.stages import DataKind
    from tunelab.data.encode import EncodeOptions, encode_as
    from tunelab.data.templates import get_template
    from tunelab.data.templates.token_check import markup_problem

    tokenizer = _load_tokenizer(args.model_name_or_path, args.trust_remote_code)
    template = get_template(args.name, tokenizer, tool_format=args.tool_format, default_system=args.default_system)
    problem = markup_problem(template, tokenizer, args.model_name_or_path)
    if problem:
        print(f"warning: {problem} (`tunelab train` refuses this; shown here as it would be encoded)", file=sys.stderr)
    options = EncodeOptions(args.cutoff_len, args.train_on_prompt, args.mask_history, args.enable_thinking)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    for number, example in enumerate(_examples(args)[: args.max_examples]):
        kind = DataKind.PAIR if example.is_preference else DataKind.TEXT if example.is_pretraining else DataKind.CHAT
        encoded = encode_as(tokenizer, template, example, kind, options)
        pair = kind is DataKind.PAIR
        keys = [("chosen_input_ids", "chosen_labels"), ("rejected_input_ids", "rejected_labels")] if pair else [("input_ids", "labels")]
        for ids_key, labels_key in keys:
            title = f"example {number + 1}" + (f" ({ids_key.split('_')[0]})" if pair else "")
            print(f"=== {title}: template '{template.name}', {len(encoded[ids_key])} tokens, "
                  f"{sum(label != IGNORE_INDEX for label in encoded[labels_key])} trained ===")
            print(highlight(tokenizer, encoded[ids_key], encoded[labels_key], color=color))
            if not args.no_table:
                print(table(tokenizer, encoded[ids_key], encoded[labels_key]))
    return 0


def highlight(tokenizer: Any, ids: list[int], labels: list[int], *, color: bool) -> str:
    """The decoded text with trained runs in green (ANSI) or wrapped in `[[...]]`."""
    start, end = ("\x1b[1;32m", "\x1b[0m") if color else ("[[", "]]")
    pieces, run, trained = [], [], None
    for token, label in [*zip(ids, labels), (None, None)]:
        is_trained = label is not None and label != IGNORE_INDEX
        if token is None or (trained is not None and is_trained != trained):
            text = tokenizer.decode(run)
            pieces.append(f"{start}{text}{end}" if trained else text)
            run = []
        if token is not None:
            run.append(token)
            trained = is_trained
    return "".join(pieces)


def table(tokenizer: Any, ids: list[int], labels: list[int]) -> str:
    """One line per token: position, id, token text, label (-100 = not trained)."""
    lines = [f"{'pos':>5}  {'id':>7}  {'label':>7}  token"]
    for position, (token, label) in enumerate(zip(ids, labels)):
        lines.append(f"{position:>5}  {token:>7}  {label:>7}  {json.dumps(tokenizer.decode([token]), ensure_ascii=False)}")
    return "\n".join(lines)


def _examples(args: argparse.Namespace) -> list[Any]:
    from tunelab.data.conversation import Example, Message, Role

    if args.dataset:
        from tunelab.config.data_args import DataArguments
        from tunelab.config.stages import DataKind, stage_reading
        from tunelab.data.loader import load_examples

        data_args = DataArguments(dataset=args.dataset, dataset_dir=args.dataset_dir, max_samples=args.max_examples)
        return list(load_examples(data_args, stage_reading(DataKind.CHAT)))
    if not args.data:
        return [Example(messages=tuple(Message(Role(role), text) for role, text in DEMO_MESSAGES))]
    path = Path(args.data)
    if not path.exists():
        raise UserError(f"--data: no such file '{path}'")
    text = path.read_text(encoding="utf-8")
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"--data: {path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    rows = rows if isinstance(rows, list) else [rows]
    return [_row_to_example(row, path, index + 1) for index, row in enumerate(rows[: args.max_examples])]


_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "function_call": "function_call",
          "observation": "observation", "tool": "observation", "function": "observation"}


def _row_to_example(row: Any, path: Path, number: int) -> Any:
    """A minimal reader (openai / sharegpt / alpaca rows) so `render` works on a single file."""
    from tunelab.data.conversation import Example, Message, Role

    if not isinstance(row, dict):
        raise UserError(f"{path}:{number}: expected a JSON object per example")
    turns = row.get("messages") or row.get("conversations")
    system = row.get("system")
    if turns:
        messages = []
        for turn in turns:
            role = turn.get("role", turn.get("from"))
            content = turn.get("content", turn.get("value", ""))
            if role == "system":
                system = content
                continue
            if role not in _ROLES:
                raise UserError(f"{path}:{number}: unknown role '{role}'")
            messages.append(Message(Role(_ROLES[role]), content))
        return Example(messages=tuple(messages), system=system, tools=row.get("tools"))
    if "instruction" in row:
        prompt = "\n".join(x for x in (row["instruction"], row.get("input", "")) if x)
        return Example(messages=(Message(Role.USER, prompt), Message(Role.ASSISTANT, row.get("output", ""))), system=system)
    if "text" in row:
        return Example(text=row["text"])
    raise UserError(f"{path}:{number}: expected `messages`, `conversations`, `instruction` or `text`")
