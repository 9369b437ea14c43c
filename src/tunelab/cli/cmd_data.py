"""`tunelab data check NAME[,NAME]`: validate data sets exactly as training would, without a model.

Exit codes: 0 clean, 1 problems found, 2 user error (e.g. an unknown data set name).
"""

from __future__ import annotations

import argparse

from tunelab.config.stages import STAGE_NAMES
from tunelab.errors import UserError

USAGE = "tunelab data check NAME[,NAME] [--dataset_dir D] [--model_name_or_path M --template T --cutoff_len N] [--stage S]"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunelab data", usage=USAGE,
        description="Check data sets: counts per data set and format, every invalid row as file:row: field: reason, "
        "and with a tokenizer a token-length summary.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="action")
    check = sub.add_parser("check", usage=USAGE, help="validate data sets as training would")
    check.add_argument("names", help="data set names from dataset_info.json, comma separated")
    check.add_argument("--dataset_dir", default="data", help="folder holding dataset_info.json (default: data)")
    check.add_argument("--media_dir", default=None, help="folder of images / videos / audios (default: dataset_dir)")
    check.add_argument("--stage", default="sft", choices=STAGE_NAMES)
    check.add_argument("--model_name_or_path", default=None, help="tokenizer to measure token lengths with")
    check.add_argument("--template", default=None, help="named template to encode with, as training would (default: auto, the tokenizer's own)")
    check.add_argument("--cutoff_len", type=int, default=None, help="count the examples longer than this")
    check.add_argument("--max_samples", type=int, default=None, help="check at most this many rows per data set")
    return parser


def _load_tokenizer(path: str):  # noqa: ANN202 - transformers type
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load a tokenizer from '{path}': {error}") from None


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.action != "check":
        parser.print_help()
        return 2

    from tunelab.config.data_args import DataArguments
    from tunelab.data.check import run_check, template_counter
    from tunelab.data.templates import get_template

    data_args = DataArguments(
        dataset=args.names, dataset_dir=args.dataset_dir, media_dir=args.media_dir, template=args.template,
        max_samples=args.max_samples, cutoff_len=args.cutoff_len or DataArguments.cutoff_len,
    )  # fmt: skip
    names = data_args.dataset_names()
    if not names:
        raise UserError("name at least one data set: tunelab data check NAME[,NAME]")
    counter = None
    if args.model_name_or_path:
        tokenizer = _load_tokenizer(args.model_name_or_path)
        template = get_template(args.template, tokenizer)  # None / "auto": the tokenizer's own jinja
        counter = template_counter(tokenizer, template, args.stage, data_args)
    if counter is None and args.cutoff_len:
        raise UserError("--cutoff_len needs --model_name_or_path (a tokenizer to count tokens with)")
    report = run_check(names, data_args, args.stage, counter=counter)
    if report.lengths is not None and not args.cutoff_len:
        report.lengths.cutoff_len = None
    print(report.render())
    return 1 if report.problems else 0
