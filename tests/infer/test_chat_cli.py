"""`tunelab chat` through a real pipe (no TTY), and the loop's history / clear / exit rules."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunelab.cli.cmd_chat import main as chat_main
from tunelab.cli.options import pop_option
from tunelab.config.parser import parse_config
from tunelab.data.conversation import Message, Role
from tunelab.infer.loader import load_chat_model
from tunelab.infer.terminal import run_terminal_chat

CHAT = "import sys; from tunelab.cli.cmd_chat import main; sys.exit(main(sys.argv[1:]))"


def test_chat_through_a_pipe(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "infer.yaml"
    config.write_text(f"model_name_or_path: {tiny_model_dir}\ntemplate: qwen\ninfer_backend: huggingface\n"
                      "do_sample: false\nmax_new_tokens: 6\n", encoding="utf-8")
    chat_model = load_chat_model(parse_config([str(config)]))
    first = chat_model.stream_chat([Message(Role.USER, "hello")]).text()
    second = chat_model.stream_chat([Message(Role.USER, "what is up")]).text()  # history was cleared
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHAT, str(config)], input="hello\nclear\n\nwhat is up\nexit\nnever\n",
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{first}\n{second}\n"
    assert "History has been cleared." in done.stderr
    assert "User:" not in done.stdout  # no prompts when scripted


class Recorder:
    """Stands in for a ChatModel: answers "#k" and records what it was asked."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[list[Message], str | None]] = []

    def stream_chat(self, turns: Sequence[Message], system: str | None = None, **_: Any) -> Any:
        self.calls.append((list(turns), system))
        answer = f"#{len(self.calls)}"

        class Stream(list):  # iterable of pieces with close()
            def close(self) -> None:
                pass

        return Stream([answer[:1], answer[1:]])


def test_history_clear_and_system() -> None:
    recorder = Recorder()
    out, err = io.StringIO(), io.StringIO()
    code = run_terminal_chat(recorder, system="Be terse.", stdin=io.StringIO("a\nb\nCLEAR\nc\nquit\n"),  # type: ignore[arg-type]
                             stdout=out, stderr=err, interactive=False)
    assert code == 0
    assert out.getvalue() == "#1\n#2\n#3\n"
    asked = [[(m.role, m.content) for m in turns] for turns, _ in recorder.calls]
    assert asked == [
        [(Role.USER, "a")],
        [(Role.USER, "a"), (Role.ASSISTANT, "#1"), (Role.USER, "b")],
        [(Role.USER, "c")],
    ]
    assert {system for _, system in recorder.calls} == {"Be terse."}


def test_end_of_input_ends_the_chat() -> None:
    recorder = Recorder()
    out = io.StringIO()
    assert run_terminal_chat(recorder, stdin=io.StringIO("one"), stdout=out, stderr=io.StringIO(),  # type: ignore[arg-type]
                             interactive=False) == 0
    assert out.getvalue() == "#1\n"


def test_system_option_and_help(capsys: Any) -> None:
    assert pop_option(["cfg.yaml", "--system", "Hi there", "top_p=0.5"], "--system") == (["cfg.yaml", "top_p=0.5"], "Hi there")
    assert pop_option(["--system=x"], "--system") == ([], "x")
    assert chat_main(["--help"]) == 0
    assert "clear" in capsys.readouterr().out
