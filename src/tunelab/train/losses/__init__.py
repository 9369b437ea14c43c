"""Pure math of the training losses: functions of tensors, each citing its paper and equation.

`preference` (DPO family, KTO, ORPO, SimPO, pairwise reward), `rl` (PPO, GRPO, advantages),
`lm` (the fused linear + cross-entropy language-modelling loss), `logprobs` (per-token and
per-sequence log-probabilities of labelled tokens without holding the full logits).
"""
