"""The rooms of the training stages: one module per stage (pt and sft share `lm`), each with the same names.

Every room exposes:

- `NAMES`: the rows of the stage table (`tunelab/config/stages.py`) it serves;
- `check_config(config)`: its refusals, run before any weights load (they raise UserError);
- `make_collator(prepared, tokenizer, model, config)`: its batches;
- `Trainer`: its `transformers.Trainer` subclass, built with the usual Trainer arguments plus `config=`.

What the table says about a stage (the data it reads, whether it packs, which keys are its own) is
in the table; what it computes is here. Adding a stage = one table row + one module listed in ROOMS.
"""

from __future__ import annotations

from types import ModuleType

from tunelab.config.stages import StageSpec, get_stage_spec
from tunelab.train.stages import dpo, grpo, kto, lm, ppo, rm

ROOMS: tuple[ModuleType, ...] = (lm, rm, dpo, kto, ppo, grpo)


def room_of(stage: str | StageSpec) -> ModuleType:
    """The module that trains `stage` (a name, or its table row)."""
    spec = stage if isinstance(stage, StageSpec) else get_stage_spec(stage)
    for room in ROOMS:
        if spec.name in room.NAMES:
            return room
    raise LookupError(f"stage {spec.name} is in the stage table but no room in tunelab/train/stages serves it")
