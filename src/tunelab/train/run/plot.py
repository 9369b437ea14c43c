"""Loss curves as PNG files (`plot_loss: true`), read back from trainer_log.jsonl."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from tunelab.errors import MissingPackageError

logger = logging.getLogger("tunelab.train")


def _smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """Exponential moving average, with the weight growing with the number of points, as TensorBoard does."""
    if not values:
        return []
    weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    out, last = [], values[0]
    for value in values:
        last = last * weight + (1 - weight) * value
        out.append(last)
    return out


def plot_losses(output_dir: str, keys: tuple[str, ...] = ("loss", "eval_loss")) -> list[Path]:
    """Write training_loss.png (and eval_loss.png) from trainer_log.jsonl; return the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingPackageError("matplotlib", "plot_loss", extra="metrics") from None
    log_path = Path(output_dir) / "trainer_log.jsonl"
    records = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    written = []
    for key in keys:
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        if not points:
            continue
        steps, values = zip(*points)
        figure = plt.figure()
        plt.plot(steps, values, color="#1f77b4", alpha=0.4, label="original")
        if len(values) > 1:
            plt.plot(steps, _smooth(list(values)), color="#1f77b4", label="smoothed")
        plt.title(f"{key} of {output_dir}")
        plt.xlabel("step")
        plt.ylabel(key)
        plt.legend()
        name = "training_loss.png" if key == "loss" else f"{key}.png"
        path = Path(output_dir) / name
        figure.savefig(path, format="png", dpi=100)
        plt.close(figure)
        written.append(path)
        logger.info("loss curve saved to %s", path)
    return written
