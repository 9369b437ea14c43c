"""`tunelab chat cfg.yaml [key=value ...] [--system TEXT]`: chat with a model in the terminal."""

from __future__ import annotations

USAGE = """usage: tunelab chat CONFIG.yaml [key=value ...] [--key value ...] [--system TEXT]

Chat with the model the config names (model_name_or_path, adapter_name_or_path, template,
infer_backend, generation keys such as temperature or max_new_tokens). Answers stream as they are
generated. Type `clear` to reset the history and `exit` to quit. With input from a pipe, only the
answers are printed (one per input line), so scripts can drive it.
--system TEXT sets the system prompt (the config key default_system does the same)."""


def pop_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Take `--name VALUE` / `--name=VALUE` out of argv (an option of the command, not a config key)."""
    rest: list[str] = []
    value: str | None = None
    items = iter(argv)
    for item in items:
        if item == name:
            value = next(items, None)
            if value is None:
                from tunelab.errors import UserError

                raise UserError(f"{name} needs a value")
        elif item.startswith(name + "="):
            value = item[len(name) + 1 :]
        else:
            rest.append(item)
    return rest, value


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
