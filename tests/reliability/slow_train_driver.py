"""Runs `tunelab train` in a child process, pausing at a chosen moment so a test can kill it there.

usage: python slow_train_driver.py {step|save|prepare} N MARKER SECONDS -- <tunelab train arguments>
`step N`: pause inside optimizer step N (mid-step); `save N`: pause while checkpoint-N is half written;
`prepare 0`: pause before the data is tokenized (outside the training loop).
The marker file is created right before the pause, which lasts SECONDS or until MARKER.go exists.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> int:
    where, step, marker, seconds = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    from transformers import Trainer

    from tunelab.cli.main import main as tunelab_main
    from tunelab.train.trainers.base import TunelabTrainer

    def pause() -> None:
        marker.write_text("paused")
        go = marker.with_name(marker.name + ".go")  # a test that is done with the pause ends it early
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not go.exists():
            time.sleep(0.05)

    if where == "step":
        original_step = TunelabTrainer.training_step

        def training_step(self, *args, **kwargs):
            loss = original_step(self, *args, **kwargs)
            if self.state.global_step + 1 == step:
                pause()
            return loss

        TunelabTrainer.training_step = training_step
    elif where == "prepare":
        import tunelab.train.data_prep as data_prep

        original_prepare = data_prep.prepare_data

        def prepare_data(*args, **kwargs):
            pause()
            return original_prepare(*args, **kwargs)

        data_prep.prepare_data = prepare_data
    else:
        original_save = Trainer._save_rng_state

        def save_rng_state(self, output_dir):
            original_save(self, output_dir)
            if self.state.global_step == step:
                pause()

        Trainer._save_rng_state = save_rng_state
    return tunelab_main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
