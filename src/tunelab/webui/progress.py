"""What the live view shows, computed from a run's files only (never from the job's process).

Progress, ETA and throughput come from the last line of `trainer_log.jsonl`; the loss curve from
all of its lines. Reading files keeps the view correct after a page reload or a board restart.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from tunelab.webui.runs import RunInfo


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    percent: float
    loss: float | None
    elapsed: float | None
    remaining: float | None
    tokens_per_second: float | None
    epoch: float | None


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_of(rows: list[dict[str, Any]], status: str) -> Progress | None:
    if not rows:
        return None
    last = rows[-1]
    step, total = int(last.get("step") or 0), int(last.get("total_steps") or 0)
    losses = [r["loss"] for r in rows if isinstance(r.get("loss"), (int, float))]
    percent = 100.0 if status == "finished" else (100.0 * step / total if total else 0.0)
    return Progress(step=step, total=total, percent=round(min(percent, 100.0), 1),
                    loss=losses[-1] if losses else None, elapsed=last.get("elapsed_seconds"),
                    remaining=0.0 if status == "finished" else last.get("remaining_seconds"),
                    tokens_per_second=last.get("tokens_per_second"), epoch=last.get("epoch"))


# How a job's log says why it ended: tunelab's own one-line refusal first, else the exception line of a
# traceback, else the last line written.
ERROR_LINE = re.compile(r"^(tunelab [\w-]+: error: .*|(?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt)\b.*)$")


def error_line(log: str) -> str | None:
    """The line of a job's log that says why it failed (None for an empty log)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    matches = [line for line in lines if ERROR_LINE.match(line)]
    chosen = matches[-1] if matches else (lines[-1] if lines else None)
    return chosen[:500] if chosen else None


def status_head(info: RunInfo, texts: dict[str, str]) -> str:
    """Run name, kind and status, in the page's language."""
    head = f"**{info.name}** · `{texts.get('kind_' + info.kind, info.kind)}` · **{texts['status_' + info.status]}**"
    if info.exit_code not in (None, 0):
        head += f" ({texts['exit_code']} {info.exit_code})"
    return head


def progress_markdown(info: RunInfo | None, rows: list[dict[str, Any]], texts: dict[str, str], log: str = "") -> str:
    """One block of markdown: run name and status (with its error line when it failed), then step/total,
    percent, elapsed/ETA, speed, loss."""
    if info is None:
        return texts["no_run"]
    head = status_head(info, texts)
    if info.status in ("failed", "lost") and (why := error_line(log)):
        head += f"\n\n{texts['error_line']}: `{why}`"
    progress = progress_of(rows, info.status)
    if progress is None:
        return head
    parts = [f"{texts['step']} {progress.step}/{progress.total} ({progress.percent:.1f}%)",
             f"{hms(progress.elapsed)} < {hms(progress.remaining)}"]
    if progress.tokens_per_second:
        parts.append(f"{progress.tokens_per_second:,.0f} {texts['tokens_per_second']}")
    if progress.loss is not None:
        parts.append(f"{texts['loss_word']} {progress.loss:.4f}")
    return head + "\n\n" + " · ".join(parts)


def run_label(info: RunInfo, rows: list[dict[str, Any]], texts: dict[str, str]) -> str:
    """A run picker entry: folder name · status · step n/N · start time."""
    parts = [info.name, texts["status_" + info.status]]
    progress = progress_of(rows, info.status)
    if progress is not None:
        parts.append(f"{texts['step']} {progress.step}/{progress.total}")
    parts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(info.start_time)))
    return " · ".join(parts)


def loss_points(rows: list[dict[str, Any]]) -> Any:
    """A DataFrame (step, loss) for gradio's LinePlot: training loss lines only.

    The column types are explicit: an empty frame would otherwise be of type object, and the plot
    would draw loss as categories (sorted labels) instead of numbers."""
    import pandas as pd

    points = [(int(r["step"]), float(r["loss"])) for r in rows
              if isinstance(r.get("loss"), (int, float)) and r.get("step") is not None]
    return pd.DataFrame({"step": pd.Series([p[0] for p in points], dtype="int64"),
                         "loss": pd.Series([p[1] for p in points], dtype="float64")})
