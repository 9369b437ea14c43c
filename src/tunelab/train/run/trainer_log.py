"""Writes `trainer_log.jsonl`: one line per logging step with loss, learning rate, tokens and time,
so a run can be followed (and plotted) while it runs, by people and by the web UI."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger("tunelab.train")


class TrainerLogCallback(TrainerCallback):
    """Appends each log event with throughput and elapsed / remaining time to output_dir/trainer_log.jsonl."""

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / "trainer_log.jsonl"
        self.start_time = 0.0
        self.start_step = 0
        self.start_tokens = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start_time = time.perf_counter()
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen or 0
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if state.global_step == 0 and self.path.exists():
                self.path.unlink()  # a fresh run; a resumed one appends
            elif self.path.exists():
                self._drop_after(state.global_step)

    def _drop_after(self, step: int) -> None:
        """A resumed run repeats the steps after its checkpoint: their old lines are removed.

        A line that does not parse (a run killed while writing it, a hand edit) is left out with a
        warning naming it: losing one log line must not make the run impossible to resume."""
        kept = []
        text = self.path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                line_step = int(record.get("step", 0))
            except (ValueError, TypeError, AttributeError):
                logger.warning("%s line %d is damaged (%r); it is left out of the log", self.path, number,
                               line[:80])
                continue
            if line_step <= step:
                kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        elapsed = time.perf_counter() - self.start_time
        done = state.global_step - self.start_step
        remaining = (state.max_steps - state.global_step) * elapsed / done if done > 0 else None
        tokens = state.num_input_tokens_seen or 0
        record: dict[str, Any] = {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "epoch": round(state.epoch, 4) if state.epoch is not None else None,
            **{k: v for k, v in logs.items() if k not in ("epoch", "num_input_tokens_seen")},
            "tokens_seen": tokens,
            "tokens_per_second": round((tokens - self.start_tokens) / elapsed, 2) if elapsed > 0 else None,
            "elapsed_seconds": round(elapsed, 2),
            "remaining_seconds": round(remaining, 2) if remaining is not None else None,
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
