"""Online-RL losses and advantage estimators (PPO, GRPO) as small pure functions over tensors.

Every function takes per-token tensors of shape [batch, length] and a `mask` of the same shape that
is 1 on response tokens and 0 on padding, so the trainers never loop in Python over tokens except
where the recursion itself needs it (GAE). Nothing here touches a model: the trainers gather the
log-probabilities and values, these functions turn them into losses, and the tests compare each
one with a direct, loop-by-loop implementation of its paper's formula.

References:
- PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (clipped surrogate, eq. 7).
- GAE: Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
  Estimation" (eq. 16, the λ-return recursion).
- KL-penalised reward: Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences"
  (r = score − β·KL, adaptive β, eq. 2 and §2.2), used by InstructGPT (Ouyang et al. 2022, eq. 2).
- GRPO: Shao et al. 2024, "DeepSeekMath" (eq. 3 objective, eq. 4 unbiased KL estimator,
  §4.1.2 outcome supervision: group-normalised advantages).
- k3 KL estimator: Schulman 2020, "Approximating KL Divergence" (http://joschu.net/blog/kl-approx.html).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean over the masked-in entries (all of them, or along `dim`); 0 where nothing is masked in."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance over the masked-in entries (Bessel-corrected by default, as trl and the anchor do)."""
    mask = mask.to(values.dtype)
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        var = var * count / (count - 1).clamp(min=1)
    return var


def whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x − mean) / std over the masked-in entries; padding stays as it was multiplied by 0.

    Whitening PPO's advantages puts every batch on the same scale, so the clip range means the same
    thing however large the rewards are (the "advantage normalisation" of PPO implementations).
    With `shift_mean=False` the mean is added back (used for rewards: their sign carries meaning).
    """
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    out = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(values.dtype)


def whiten_many(values: list[Tensor], masks: list[Tensor], shift_mean: bool = True, eps: float = 1e-8,
                all_reduce: Callable[[Tensor], Tensor] | None = None, device: torch.device | None = None
                ) -> list[Tensor]:
    """`whiten` of several batches (of different widths) with the statistics of all of them together, and of
    every process when `all_reduce` (a sum over processes) is given: the values one batch holding them all
    would get. Same two-pass mean and Bessel-corrected variance as `masked_mean` / `masked_var`. `device`:
    where the statistics live when this process has no batch (it still takes part in `all_reduce`)."""
    reduce = all_reduce or (lambda t: t)
    device = values[0].device if values else (device or torch.device("cpu"))
    zero = torch.zeros((), dtype=torch.float64, device=device)
    fmasks = [m.to(v.dtype) for v, m in zip(values, masks, strict=True)]
    firsts = reduce(torch.stack((sum(((v * m).double().sum() for v, m in zip(values, fmasks)), zero),
                                 sum((m.double().sum() for m in fmasks), zero))))
    count = firsts[1]
    mean = firsts[0] / count.clamp(min=1)
    squares = reduce(sum((((v.double() - mean) ** 2 * m).sum() for v, m in zip(values, fmasks)), zero).reshape(1))[0]
    var = squares / count.clamp(min=1) * count / (count - 1).clamp(min=1)
    out = []
    for v, m in zip(values, fmasks, strict=True):
        w = (v - mean.to(v.dtype)) * torch.rsqrt(var.to(v.dtype) + eps)
        if not shift_mean:
            w = w + mean.to(v.dtype)
        out.append(w * m)
    return out


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16): (advantages, returns).

    δ_t = r_t + γ·V_{t+1} − V_t and A_t = δ_t + γλ·A_{t+1}, with V and A zero after the last response
    token (the episode ends there). Returns are A_t + V_t, the value head's regression target.
    Rows are right-padded responses: the mask is 1 on a prefix of each row.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    length = rewards.shape[-1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def kl_penalty(logps: Tensor, ref_logps: Tensor, kind: str = "k1") -> Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from tokens sampled from π.

    `k1`: log π − log π_ref (unbiased, can be negative; Ziegler et al. 2019's penalty).
    `k3`: exp(log π_ref − log π) − (log π_ref − log π) − 1 (unbiased, never negative, lower
    variance; DeepSeekMath eq. 4, Schulman 2020).
    `abs` / `mse`: |k1| and ½·k1², the other estimators trl offers.
    """
    diff = logps - ref_logps
    if kind == "k1":
        return diff
    if kind == "k3":
        return torch.exp(-diff) - (-diff) - 1
    if kind == "abs":
        return diff.abs()
    if kind == "mse":
        return 0.5 * diff.square()
    raise ValueError(f"unknown KL estimator {kind!r} (k1, k3, abs, mse)")


def kl_penalised_rewards(scores: Tensor, logps: Tensor, ref_logps: Tensor, mask: Tensor, kl_coef: float,
                         kind: str = "k1") -> tuple[Tensor, Tensor]:
    """Per-token rewards r_t = −β·KL_t, plus the sequence score on each row's last response token.

    This is the reward of Ziegler et al. 2019 (eq. 2) and InstructGPT (eq. 2): the reward model's
    score for the whole response, minus β times the policy's divergence from the reference, spread
    over the tokens so GAE can credit each one. Returns (rewards, per-token KL).
    """
    mask = mask.to(logps.dtype)
    kl = kl_penalty(logps, ref_logps, kind) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype) * (mask.sum(-1) > 0).to(rewards.dtype)
    return rewards, kl


def reduce_tokens(values: Tensor, mask: Tensor, reduction: str) -> Tensor:
    """The masked-in entries averaged (`mean`) or summed (`sum`: the trainer divides by the count of a
    whole accumulated batch)."""
    if reduction == "mean":
        return masked_mean(values, mask)
    if reduction == "sum":
        return (values * mask.to(values.dtype)).sum()
    raise ValueError(f"unknown reduction {reduction!r} (mean, sum)")


def clipped_policy_loss(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor,
                        clip_range: float = 0.2, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), as a loss to minimise.

    L = mean_t max(−ρ_t·A_t, −clip(ρ_t, 1−ε, 1+ε)·A_t), ρ_t = π(a_t|s_t) / π_old(a_t|s_t), averaged
    over all response tokens of the batch (`reduction="sum"`: summed). Returns (loss, clip fraction):
    how often the clip bound.
    """
    ratio = torch.exp(logps - old_logps)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = reduce_tokens(torch.maximum(unclipped, clipped), mask, reduction)
    clip_fraction = masked_mean((clipped > unclipped).to(logps.dtype), mask)
    return loss, clip_fraction


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
                       clip_range: float = 0.2, reduction: str = "mean") -> tuple[Tensor, Tensor]:
    """PPO's clipped value loss: ½·mean_t max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²).

    Clipping the value update the same way as the policy keeps the value head from jumping far from
    the estimates the advantages were computed with (the PPO2 baselines implementation). Returns
    (loss, clip fraction); `reduction="sum"` sums over the tokens instead of averaging.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * reduce_tokens(torch.maximum(unclipped, clipped), mask, reduction)
    clip_fraction = masked_mean((clipped > unclipped).to(values.dtype), mask)
    return loss, clip_fraction


class AdaptiveKLController:
    """Ziegler et al. 2019, §2.2: β_{t+1} = β_t·(1 + K_β·e_t), e_t = clip(KL_t / target − 1, ±0.2), K_β = n / horizon.

    The KL coefficient grows when the policy drifts further than `target` nats from the reference
    and shrinks when it stays closer, so one target replaces a hand-tuned β. `target=None` keeps β
    fixed. Its state (`value`) is saved with checkpoints so a resumed run continues with the same β.
    """

    def __init__(self, init_kl_coef: float = 0.2, target: float | None = 6.0, horizon: int = 10000) -> None:
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        if self.target is not None:
            error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """GRPO's outcome advantages (DeepSeekMath §4.1.2): Â_i = (r_i − mean(r_group)) / std(r_group).

    `rewards` is [n_prompts · group_size], the group_size completions of each prompt next to each
    other. The standard deviation is the unbiased one (torch's default, as trl); with `scale=False`
    only the mean is removed (Dr. GRPO, Liu et al. 2025). A group whose rewards are all equal gets
    zero advantages: it carries no signal about which completion is better.
    """
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(-1, keepdim=True)
    centred = grouped - mean
    if scale:
        std = grouped.std(-1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
        centred = centred / (std + eps)
    return centred.reshape(-1)


def grpo_loss(logps: Tensor, old_logps: Tensor, ref_logps: Tensor | None, advantages: Tensor, mask: Tensor,
              beta: float = 0.04, epsilon: float = 0.2, reduction: str = "mean") -> tuple[Tensor, dict[str, Tensor]]:
    """The GRPO objective (DeepSeekMath eq. 3), negated into a loss.

    J = 1/G Σ_i 1/|o_i| Σ_t [ min(ρ_{i,t}·Â_i, clip(ρ_{i,t}, 1−ε, 1+ε)·Â_i) − β·D_KL,i,t ], with
    ρ = π_θ / π_θ_old per token, Â_i the sequence's group-normalised advantage ([batch]) broadcast
    over its tokens, and D_KL the k3 estimator of eq. 4 against the reference (skipped when
    `ref_logps` is None or β = 0). Returns (loss, parts: kl, clip_fraction, policy_loss); with
    `reduction="sum"` the loss is the sum over sequences instead of the mean (1/G Σ_i left to the trainer).
    """
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    adv = advantages.unsqueeze(-1)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon) * adv)
    per_token = -surrogate
    kl = torch.zeros_like(logps)
    if ref_logps is not None and beta != 0.0:
        kl = kl_penalty(logps, ref_logps, "k3")
        per_token = per_token + beta * kl
    per_sequence = masked_mean(per_token, mask, dim=-1)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r} (mean, sum)")
    loss = per_sequence.mean() if reduction == "mean" else per_sequence.sum()
    parts = {
        "kl": masked_mean(kl, mask, dim=-1).mean().detach(),
        "clip_fraction": masked_mean((ratio * adv > torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv).to(logps.dtype),
                                     mask).detach(),
        "policy_loss": masked_mean(-surrogate, mask, dim=-1).mean().detach(),
    }
    return loss, parts
