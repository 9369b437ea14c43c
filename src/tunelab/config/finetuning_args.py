"""Keys that say what is trained and how: stage, tuning method, LoRA / freeze settings, preference losses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tunelab.config.stages import STAGE_NAMES, StageName


@dataclass
class FinetuningArguments:
    """Training stage and parameter-efficient tuning settings, with the anchor's names and defaults."""

    stage: StageName = field(default="sft", metadata={"help": f"Training stage: {', '.join(STAGE_NAMES)}."})
    finetuning_type: Literal["lora", "freeze", "full"] = field(
        default="lora", metadata={"help": "Which parameters are trained: lora adapters, the last layers (freeze) or all (full)."}
    )
    use_llama_pro: bool = field(default=False, metadata={"help": "Train only the expanded blocks of a LLaMA Pro model."})
    use_adam_mini: bool = field(default=False, metadata={"help": "Use the Adam-mini optimizer (not supported)."})
    freeze_vision_tower: bool = field(default=True, metadata={"help": "Freeze the vision tower of a multimodal model."})
    freeze_multi_modal_projector: bool = field(default=True, metadata={"help": "Freeze the multimodal projector."})
    freeze_language_model: bool = field(default=False, metadata={"help": "Freeze the language model of a multimodal model."})
    compute_accuracy: bool = field(default=False, metadata={"help": "Compute token accuracy during evaluation."})
    disable_shuffling: bool = field(default=False, metadata={"help": "Keep the training data in order."})
    plot_loss: bool = field(default=False, metadata={"help": "Save training_loss.png (and eval_loss.png) in output_dir."})
    include_effective_tokens_per_second: bool = field(
        default=False, metadata={"help": "Report non-padding tokens per second (tunelab always logs them)."}
    )
    freeze_trainable_layers: int = field(
        default=2, metadata={"help": "freeze: train the last n layers (n > 0) or the first -n layers (n < 0)."}
    )
    freeze_trainable_modules: str = field(
        default="all", metadata={"help": "freeze: module names trained inside those layers, comma separated, or all."}
    )
    freeze_extra_modules: str | None = field(
        default=None, metadata={"help": "freeze: modules outside the layers also trained, e.g. embed_tokens,norm."}
    )
    additional_target: str | None = field(
        default=None, metadata={"help": "lora: modules trained fully and saved with the adapter, comma separated."}
    )
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA scaling alpha. Default: lora_rank * 2."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA path."})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank r."})
    lora_target: str = field(
        default="all",
        metadata={"help": "Modules that get LoRA adapters, comma separated; all = every linear layer except the output head."},
    )
    loraplus_lr_ratio: float | None = field(default=None, metadata={"help": "LoRA+: learning-rate ratio of B to A."})
    loraplus_lr_embedding: float = field(default=1e-6, metadata={"help": "LoRA+: learning rate of embedding adapters."})
    use_rslora: bool = field(default=False, metadata={"help": "Rank-stabilised LoRA scaling (alpha / sqrt(r))."})
    use_dora: bool = field(default=False, metadata={"help": "Weight-decomposed LoRA (DoRA)."})
    pissa_init: bool = field(default=False, metadata={"help": "Initialise LoRA with PiSSA (principal singular vectors)."})
    pissa_iter: int = field(default=16, metadata={"help": "PiSSA fast-SVD iterations; -1 for exact SVD."})
    pissa_convert: bool = field(default=False, metadata={"help": "Save the PiSSA adapter converted to a plain LoRA adapter."})
    create_new_adapter: bool = field(
        default=False, metadata={"help": "Merge adapter_name_or_path into the base and train a new adapter on top."}
    )
    pref_beta: float = field(default=0.1, metadata={"help": "Preference loss beta."})
    pref_ftx: float = field(default=0.0, metadata={"help": "Weight of the SFT loss added to the preference loss."})
    pref_bco_weight: float = field(default=0.0, metadata={"help": "Weight of the BCO loss added to DPO."})
    pref_loss: Literal["sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo"] = field(
        default="sigmoid", metadata={"help": "Preference loss: sigmoid (DPO), hinge, ipo, kto_pair, orpo, simpo."}
    )
    dpo_label_smoothing: float = field(default=0.0, metadata={"help": "Robust DPO label smoothing in [0, 0.5]."})
    kto_chosen_weight: float = field(default=1.0, metadata={"help": "KTO weight of desirable examples."})
    kto_rejected_weight: float = field(default=1.0, metadata={"help": "KTO weight of undesirable examples."})
    simpo_gamma: float = field(default=0.5, metadata={"help": "SimPO target reward margin."})
    ld_alpha: float | None = field(default=None, metadata={"help": "LD-DPO weight of the verbose part of responses."})
    ppo_buffer_size: int = field(default=1, metadata={"help": "PPO: mini-batches per optimisation step."})
    ppo_epochs: int = field(default=4, metadata={"help": "PPO: optimisation epochs per batch."})
    ppo_score_norm: bool = field(default=False, metadata={"help": "PPO: normalise rewards."})
    ppo_target: float = field(default=6.0, metadata={"help": "PPO: target KL for the adaptive controller."})
    ppo_whiten_rewards: bool = field(default=False, metadata={"help": "PPO: whiten rewards before advantages."})
    grpo_beta: float = field(default=0.04, metadata={"help": "GRPO: weight of the KL to the reference (0 = no reference)."})
    num_generations: int = field(default=8, metadata={"help": "GRPO: completions sampled per prompt (a group; at least 2)."})
    max_completion_length: int | None = field(
        default=None, metadata={"help": "GRPO / PPO: most tokens generated per completion (default: max_new_tokens)."}
    )
    epsilon: float = field(default=0.2, metadata={"help": "GRPO: clip range of the probability ratio."})
    reward_funcs: str | None = field(
        default=None,
        metadata={"help": "GRPO: reward functions, comma separated: built-ins (exact_match, format:<tag>, think_format, "
                          "length[:chars], contains:<text>), module:function or path/to/file.py:function."},
    )
    reward_weights: str | None = field(
        default=None, metadata={"help": "GRPO: weights of the rewards (reward_funcs, then reward_model), comma separated."}
    )
    ref_model: str | None = field(default=None, metadata={"help": "Reference model for DPO / KTO / PPO."})
    ref_model_adapters: str | None = field(default=None, metadata={"help": "Adapters of the reference model."})
    precompute_ref_log_probs: bool = field(
        default=False,
        metadata={"help": "dpo: compute the reference log-probabilities once before training, then free the reference."},
    )
    ref_model_quantization_bit: int | None = field(default=None, metadata={"help": "Quantize the reference model."})
    reward_model: str | None = field(default=None, metadata={"help": "Reward model for PPO / GRPO (an rm output: adapter or model folder, or an API URL)."})
    reward_model_adapters: str | None = field(default=None, metadata={"help": "Adapters of the reward model."})
    reward_model_quantization_bit: int | None = field(default=None, metadata={"help": "Quantize the reward model."})
    reward_model_type: Literal["lora", "full", "api"] = field(default="lora", metadata={"help": "Kind of reward model."})

    def lora_target_modules(self) -> list[str]:
        return [t.strip() for t in self.lora_target.split(",") if t.strip()]

    def additional_target_modules(self) -> list[str]:
        return [t.strip() for t in (self.additional_target or "").split(",") if t.strip()]
