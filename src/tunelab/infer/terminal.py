"""The terminal chat loop of `tunelab chat`: streaming answers, history, `clear`, `exit`, and `/image PATH`
(`/video`, `/audio`), which attaches a file to the next message for a multimodal model.

Two audiences: a person at a TTY gets prompts ("User: ", "Assistant: ") and line editing; a script
piping lines in gets only the answers on stdout, one per input line, each ending with a newline,
with status messages on stderr, so `printf 'hi\\nexit\\n' | tunelab chat cfg.yaml` is scriptable.

An attached file belongs to the message it was attached to: a message without a `<image>` marker gets one
per attached picture at its start, the history keeps it there, and every later prompt of the conversation
sends all its pictures again (the model reads the whole conversation each turn).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from tunelab.data.conversation import Message, Role
from tunelab.errors import UserError
from tunelab.infer.chat_model import ChatModel

CLEAR_WORDS = ("clear", "/clear")
EXIT_WORDS = ("exit", "quit", "/exit", "/quit")
#: the attach commands and the column each fills
ATTACH_COMMANDS = {"/image": "images", "/video": "videos", "/audio": "audios"}


class Attachments:
    """Media of the conversation (in order) and those attached to the next message."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {column: [] for column in ATTACH_COMMANDS.values()}
        self.pending: dict[str, list[str]] = {column: [] for column in ATTACH_COMMANDS.values()}

    def attach(self, chat_model: ChatModel, column: str, path: str) -> str:
        """Attach one file to the next message; returns the status line (a UserError says what is wrong)."""
        kind = column[:-1]
        if not path:
            raise UserError(f"usage: /{kind} PATH (attaches the file to your next message)")
        if not chat_model.reads(column):
            reads = [c for c in ATTACH_COMMANDS.values() if chat_model.reads(c)]
            what = f"it reads {', '.join(reads)}" if reads else "it reads text only"
            raise UserError(f"/{kind}: model '{chat_model.name}' cannot take {column}: {what}.")
        file = Path(path).expanduser()
        if not (file.is_file() or (column == "videos" and file.is_dir())):
            raise UserError(f"/{kind} {path}: no such file")
        self.pending[column].append(str(file))
        count = len(self.pending[column])
        return f"attached {kind} {file} to your next message ({count} {kind}{'s' if count > 1 else ''})"

    def message(self, text: str) -> Message:
        """The user message with a marker per pending file where the text writes none of that kind."""
        from tunelab.infer.media_prompt import ChatMedia, place_markers

        media = ChatMedia.of(**self.pending)
        return place_markers([Message(Role.USER, text)], media)[0] if media else Message(Role.USER, text)

    def with_pending(self) -> dict[str, list[str]]:
        """Every file of the conversation including the pending ones: what the next prompt sends."""
        return {column: [*self.sent[column], *self.pending[column]] for column in self.sent}

    def commit(self) -> None:
        for column, files in self.pending.items():
            self.sent[column].extend(files)
        self.drop_pending()

    def drop_pending(self) -> bool:
        had = any(self.pending.values())
        self.pending = {column: [] for column in self.sent}
        return had

    def reset(self) -> None:
        self.sent = {column: [] for column in self.sent}
        self.drop_pending()


def _attach_command(line: str) -> tuple[str, str] | None:
    """("images", path) for `/image PATH` (quotes around the path allowed), None for other lines."""
    word, _, rest = line.strip().partition(" ")
    column = ATTACH_COMMANDS.get(word.lower())
    if column is None:
        return None
    path = rest.strip()
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1]
    return column, path


def _read(interactive: bool, stdin: TextIO) -> str | None:
    if interactive:
        try:
            return input("User: ")
        except EOFError:
            return None
    line = stdin.readline()
    return None if line == "" else line.rstrip("\r\n")


def run_terminal_chat(
    chat_model: ChatModel,
    *,
    system: str | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    interactive: bool | None = None,
    attach: dict[str, list[str]] | None = None,
) -> int:
    """Chat until `exit` or end of input; returns the exit code (0). `attach`: files for the first message,
    by column ({"images": [path, ...]}), as `/image PATH` would attach them (`tunelab chat --image`)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    if interactive is None:
        interactive = stdin.isatty() and stdout.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        print(f"Chatting with {chat_model.name}. Type `clear` to reset the history, `exit` to quit.", file=stderr)
        commands = [f"`/{column[:-1]} PATH`" for column in ATTACH_COMMANDS.values() if chat_model.reads(column)]
        if commands:
            print(f"{' / '.join(commands)} attaches a file to your next message.", file=stderr)
    history: list[Message] = []
    files = Attachments()
    for column, paths in (attach or {}).items():
        for path in paths:
            print(files.attach(chat_model, column, path), file=stderr, flush=True)
    while True:
        line = _read(interactive, stdin)
        if line is None:
            break
        query = line.strip()
        if not query:
            continue
        if query.lower() in EXIT_WORDS:
            break
        if query.lower() in CLEAR_WORDS:
            history = []
            files.reset()
            print("History has been cleared.", file=stderr, flush=True)
            continue
        command = _attach_command(query)
        if command is not None:
            try:
                print(files.attach(chat_model, *command), file=stderr, flush=True)
            except UserError as error:
                print(f"error: {error.message}", file=stderr, flush=True)
            continue
        turns = [*history, files.message(line)]
        if interactive:
            print("Assistant: ", end="", file=stdout, flush=True)
        pieces: list[str] = []
        stream = None
        try:
            stream = chat_model.stream_chat(turns, system, **files.with_pending())
            for piece in stream:
                pieces.append(piece)
                print(piece, end="", file=stdout, flush=True)
        except UserError as error:
            dropped = " (the attached files were dropped; attach them again)" if files.drop_pending() else ""
            print(f"\nerror: {error.message}{dropped}", file=stderr, flush=True)
            continue
        except KeyboardInterrupt:
            if not interactive:
                raise
            print("\n(interrupted)", file=stderr, flush=True)
        finally:
            if stream is not None:
                stream.close()
        print(file=stdout, flush=True)
        history = [*turns, Message(Role.ASSISTANT, "".join(pieces))]
        files.commit()
    return 0
