"""The terminal chat loop of `tunelab chat`: streaming answers, history, `clear`, `exit`.

Two audiences: a person at a TTY gets prompts ("User: ", "Assistant: ") and line editing; a script
piping lines in gets only the answers on stdout, one per input line, each ending with a newline,
with status messages on stderr, so `printf 'hi\\nexit\\n' | tunelab chat cfg.yaml` is scriptable.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tunelab.data.conversation import Message, Role
from tunelab.errors import UserError
from tunelab.infer.chat_model import ChatModel

CLEAR_WORDS = ("clear", "/clear")
EXIT_WORDS = ("exit", "quit", "/exit", "/quit")


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
) -> int:
    """Chat until `exit` or end of input; returns the exit code (0)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    if interactive is None:
        interactive = stdin.isatty() and stdout.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        print(f"Chatting with {chat_model.name}. Type `clear` to reset the history, `exit` to quit.", file=stderr)
    history: list[Message] = []
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
            print("History has been cleared.", file=stderr, flush=True)
            continue
        turns = [*history, Message(Role.USER, line)]
        if interactive:
            print("Assistant: ", end="", file=stdout, flush=True)
        pieces: list[str] = []
        stream = None
        try:
            stream = chat_model.stream_chat(turns, system)
            for piece in stream:
                pieces.append(piece)
                print(piece, end="", file=stdout, flush=True)
        except UserError as error:
            print(f"\nerror: {error.message}", file=stderr, flush=True)
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
    return 0
