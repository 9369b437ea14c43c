"""The stage table: what each training stage reads, how its batches are shaped, which keys are its own.

Every layer that must know something about a stage (data loading and encoding, derived defaults,
validation, the CLI, the web UI) reads it from this table instead of naming stages, so adding a
stage is one row here plus one module in `tunelab/train/stages/`. The table is plain data at the
bottom layer: it imports nothing of tunelab's, and nothing here runs a model.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tunelab.errors import UserError


class DataKind(enum.Enum):
    """What one training example of a stage is, once loaded and encoded."""

    TEXT = "text"  # plain text, every token trained (continued pre-training)
    CHAT = "chat"  # a conversation whose assistant turns are trained
    PAIR = "pair"  # a prompt with a chosen and a rejected answer (`ranking: true` data sets)
    KTO = "kto"  # a conversation tagged desirable or undesirable (`kto_tag`)
    PROMPT = "prompt"  # a prompt to generate from (online RL); a reference answer is optional

    @property
    def is_ranking(self) -> bool:
        """Whether the data set must be `ranking: true` (chosen / rejected columns); other kinds refuse it."""
        return self is DataKind.PAIR

    @property
    def needs_response(self) -> bool:
        """Whether every example must end with an answer (a prompt alone cannot be trained on)."""
        return self in (DataKind.CHAT, DataKind.KTO)


#: keys every stage with a reference policy reads (dpo, kto, ppo, grpo)
_REFERENCE_KEYS = frozenset({"ref_model", "ref_model_adapters", "ref_model_quantization_bit"})
#: keys of the reward model that online RL scores completions with (ppo, grpo)
_REWARD_MODEL_KEYS = frozenset({"reward_model", "reward_model_adapters", "reward_model_quantization_bit",
                                "reward_model_type"})


@dataclass(frozen=True)
class StageSpec:
    """One training stage as the rest of tunelab sees it. Its loss, collator and trainer live in its room,
    the module of `tunelab/train/stages/` whose `NAMES` lists it (pt and sft share `lm`)."""

    name: str
    description: str
    data: DataKind
    packable: bool = False  # its rows are one training sequence each, so `packing` may join them
    packs_by_default: bool = False  # `packing` defaults to true (pre-training text has no example boundaries to keep)
    padding_free: bool = False  # batches padding-free by default (when packing is off); `padding_free` applies
    keys: frozenset[str] = frozenset()  # finetuning keys only this stage (or a few) reads
    scores: bool = False  # its output is a reward model (a value head) that scores texts instead of chatting


STAGES: dict[str, StageSpec] = {spec.name: spec for spec in (
    StageSpec("pt", "continued pre-training on plain text", DataKind.TEXT,
              packable=True, packs_by_default=True, padding_free=True),
    StageSpec("sft", "supervised fine-tuning on conversations", DataKind.CHAT,
              packable=True, padding_free=True),
    StageSpec("rm", "reward modelling: a value head trained on chosen / rejected pairs", DataKind.PAIR,
              padding_free=True, scores=True),
    StageSpec("dpo", "preference optimisation on pairs (pref_loss: sigmoid, hinge, ipo, kto_pair, orpo, simpo)",
              DataKind.PAIR, padding_free=True,
              keys=_REFERENCE_KEYS | {"pref_beta", "pref_ftx", "pref_loss", "pref_bco_weight", "dpo_label_smoothing",
                                     "simpo_gamma", "ld_alpha", "precompute_ref_log_probs"}),
    StageSpec("kto", "KTO on examples labelled desirable or undesirable (kto_tag)", DataKind.KTO,
              padding_free=True,
              keys=_REFERENCE_KEYS | {"pref_beta", "pref_ftx", "kto_chosen_weight", "kto_rejected_weight"}),
    StageSpec("ppo", "online RL: PPO with a value head against a reward model trained by stage: rm",
              DataKind.PROMPT,
              keys=_REFERENCE_KEYS | _REWARD_MODEL_KEYS | {"ppo_buffer_size", "ppo_epochs", "ppo_score_norm",
                                                           "ppo_target", "ppo_whiten_rewards", "max_completion_length"}),
    StageSpec("grpo", "online RL: GRPO with reward functions and/or a reward model", DataKind.PROMPT,
              keys=_REFERENCE_KEYS | _REWARD_MODEL_KEYS | {"grpo_beta", "num_generations", "max_completion_length",
                                                           "epsilon", "reward_funcs", "reward_weights"}),
)}

STAGE_NAMES: tuple[str, ...] = tuple(STAGES)
#: the type of the `stage` key: its choices are the table's names (coerce.py reads them from here)
StageName = Literal[STAGE_NAMES]  # type: ignore[valid-type]


def get_stage_spec(name: str) -> StageSpec:
    """The table row of `stage: name`, or the error that lists the stages there are."""
    if name not in STAGES:
        raise UserError(f"stage: unknown stage '{name}'; available: {', '.join(STAGE_NAMES)}.")
    return STAGES[name]


def stages_where(predicate: Callable[[StageSpec], bool]) -> tuple[str, ...]:
    """The names of the stages whose spec satisfies `predicate(spec)`, in table order (for messages)."""
    return tuple(spec.name for spec in STAGES.values() if predicate(spec))


def stage_reads(name: str, key: str) -> bool:
    """Whether `key` is one of the stage's own keys (the web UI shows those fields only then)."""
    return name in STAGES and key in STAGES[name].keys


def stage_reading(kind: DataKind) -> str:
    """The first stage that reads `kind` of data: how prediction, evaluation and `tunelab template render`
    load examples as that kind without naming a stage (conversations are read as sft reads them)."""
    return next(spec.name for spec in STAGES.values() if spec.data is kind)
