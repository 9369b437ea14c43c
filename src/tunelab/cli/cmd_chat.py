"""`tunelab chat cfg.yaml [key=value ...] [--system TEXT]`: chat with a model in the terminal."""

from __future__ import annotations

from tunelab.cli.options import pop_option

USAGE = """usage: tunelab chat CONFIG.yaml [key=value ...] [--key value ...] [--system TEXT]

Chat with the model the config names (model_name_or_path, adapter_name_or_path, template,
infer_backend, generation keys such as temperature or max_new_tokens). Answers stream as they are
generated. Type `clear` to reset the history and `exit` to quit. With input from a pipe, only the
answers are printed (one per input line), so scripts can drive it.
--system TEXT sets the system prompt (the config key default_system does the same)."""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.config.parser import parse_config
    from tunelab.infer.loader import load_chat_model
    from tunelab.infer.terminal import run_terminal_chat

    argv, system = pop_option(argv, "--system")
    chat_model = load_chat_model(parse_config(argv))
    return run_terminal_chat(chat_model, system=system)
