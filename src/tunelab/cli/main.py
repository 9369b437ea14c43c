"""Entry point of the `tunelab` command: dispatches to one module per subcommand.

Each subcommand lives in its own module exposing `main(argv: list[str]) -> int`; this file imports
it only when that subcommand runs, so `tunelab --help` and `tunelab version` never import torch.
A `UserError` raised anywhere below ends as its message on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    name: str
    summary: str
    module: str | None  # None: answered by `main` itself (version), without importing anything


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("train", "fine-tune a model from a YAML config (pt, sft, rm, dpo, kto, ppo, grpo)",
               "tunelab.cli.cmd_train"),
    Subcommand("chat", "chat with a model in the terminal", "tunelab.cli.cmd_chat"),
    Subcommand("webchat", "chat with a model in the browser", "tunelab.cli.cmd_webchat"),
    Subcommand("api", "serve a model behind an OpenAI-compatible API", "tunelab.cli.cmd_api"),
    Subcommand("export", "merge adapters, shard, quantize and export a model (safetensors, GGUF, Ollama)",
               "tunelab.cli.cmd_export"),
    Subcommand("eval", "evaluate a model on benchmarks (MMLU / CMMLU / C-Eval layout) or a data set", "tunelab.cli.cmd_eval"),
    Subcommand("webui", "the web UI that trains, evaluates, chats and exports", "tunelab.cli.cmd_webui"),
    Subcommand("score", "print a reward model's score for a prompt + response", "tunelab.cli.cmd_score"),
    Subcommand("check", "validate a config without loading weights and print it resolved", "tunelab.cli.cmd_check"),
    Subcommand("data", "check data sets: `tunelab data check NAME[,NAME]`", "tunelab.cli.cmd_data"),
    Subcommand("template", "list chat templates and render what a model is trained on", "tunelab.cli.cmd_template"),
    Subcommand("env", "print versions and devices for a bug report", "tunelab.cli.cmd_env"),
    Subcommand("version", "print the tunelab version", None),
)


def _usage() -> str:
    width = max(len(c.name) for c in SUBCOMMANDS)
    lines = [
        "usage: tunelab <command> [config.yaml] [key=value ...] [--key value ...]",
        "",
        "Fine-tune large language models from one YAML file; chat, serve, evaluate, merge and export the result.",
        "",
        "commands:",
    ]
    lines += [f"  {c.name.ljust(width)}  {c.summary}" for c in SUBCOMMANDS]
    lines += ["", "Run `tunelab <command> --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name in ("version", "--version", "-V"):
        from tunelab import __version__

        print(f"tunelab {__version__}")
        return 0
    command = next((c for c in SUBCOMMANDS if c.name == name), None)
    if command is None:
        import difflib

        close = difflib.get_close_matches(name, [c.name for c in SUBCOMMANDS], n=1)
        hint = f" Did you mean `tunelab {close[0]}`?" if close else ""
        print(f"tunelab: unknown command '{name}'.{hint} Run `tunelab --help` for the list.", file=sys.stderr)
        return 2
    from tunelab.errors import UserError
    from tunelab.utils.logging import setup_logging

    setup_logging()
    try:
        module = importlib.import_module(str(command.module))
        return int(module.main(rest) or 0)
    except UserError as error:
        print(f"tunelab {name}: error: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"tunelab {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
