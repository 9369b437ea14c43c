"""`tunelab chat cfg.yaml [key=value ...] [--system TEXT] [--image PATH ...]`: chat with a model in the terminal."""

from __future__ import annotations

from tunelab.cli.options import pop_option
from tunelab.errors import UserError

USAGE = """usage: tunelab chat CONFIG.yaml [key=value ...] [--key value ...] [--system TEXT] [--image PATH ...]

Chat with the model the config names (model_name_or_path, adapter_name_or_path, template,
infer_backend, generation keys such as temperature or max_new_tokens). Answers stream as they are
generated. Type `clear` to reset the history and `exit` to quit. With input from a pipe, only the
answers are printed (one per input line), so scripts can drive it.
--system TEXT sets the system prompt (the config key default_system does the same).

Multimodal models (docs/multimodal.md): type `/image PATH` (or `/video PATH`, `/audio PATH`) to attach a
file to your next message; --image PATH (--video, --audio; each may be repeated) attaches files to the
first message, e.g. `echo 'What is in this picture?' | tunelab chat cfg.yaml --image cat.png`."""

#: the attach flags and the column each fills
MEDIA_FLAGS = {"--image": "images", "--video": "videos", "--audio": "audios"}


def pop_media(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Take every `--image PATH` / `--image=PATH` (and --video, --audio) out of argv, in order."""
    rest: list[str] = []
    media: dict[str, list[str]] = {}
    items = iter(argv)
    for item in items:
        flag, equals, value = item.partition("=")
        column = MEDIA_FLAGS.get(flag)
        if column is None:
            rest.append(item)
            continue
        if not equals:
            value = next(items, "")
        if not value:
            raise UserError(f"{flag} needs a file path, e.g. {flag} picture.png")
        media.setdefault(column, []).append(value)
    return rest, media


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.config.parser import parse_config
    from tunelab.infer.loader import load_chat_model
    from tunelab.infer.terminal import run_terminal_chat

    argv, system = pop_option(argv, "--system")
    argv, media = pop_media(argv)
    chat_model = load_chat_model(parse_config(argv))
    return run_terminal_chat(chat_model, system=system, attach=media)
