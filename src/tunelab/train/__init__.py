"""Training: the recipe (`recipe.py`), one room per stage (`stages/`), the Trainer bases they share
(`trainers/`), online RL's shared parts (`rl/`), the losses as pure functions (`losses/`) and the run
plumbing (`run/`: checkpoints, callbacks, outputs). What a stage *is* lives in `config/stages.py`."""
