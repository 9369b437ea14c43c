"""Preference, reward and KTO losses as pure functions of log-probabilities (DESIGN.md decision 2).

Every function takes per-example tensors and returns per-example losses (shape `[batch]`), so the
trainers only gather log-probabilities, call one of these and average. Nothing here knows about
models, batches or trainers, which is what lets the tests check each formula on random numbers
against its paper (and against trl as an oracle) without running a model.

Names used below, per example: `logps` = log π(y|x) summed over the response tokens (or averaged
per token where a docstring says so); `logratios` = log π_θ(y|x) − log π_ref(y|x).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

#: losses that compare the policy with no reference model (so none is built or run)
REFERENCE_FREE = frozenset({"orpo", "simpo"})
#: losses defined on per-token average log-probabilities instead of sums (as the anchor and trl do)
LENGTH_AVERAGED = frozenset({"ipo", "orpo", "simpo"})


def dpo_sigmoid_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float,
                     label_smoothing: float = 0.0) -> Tensor:
    """DPO, Rafailov et al. 2023, eq. 7: −log σ(β[(log π_θ/π_ref)(y_w) − (log π_θ/π_ref)(y_l)]).

    With `label_smoothing` ε > 0 it is conservative DPO (cDPO, Mitchell 2023): the preference label
    is assumed flipped with probability ε, so the loss is the cross-entropy against (1 − ε, ε):
    −(1 − ε) log σ(βh) − ε log σ(−βh). That is what the anchor's `dpo_label_smoothing` means.
    """
    h = chosen_logratios - rejected_logratios
    return -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)


def hinge_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float) -> Tensor:
    """SLiC-HF rank-calibration loss (Zhao et al. 2023, sec. 2) on DPO's log-ratios:
    max(0, 1 − β h) with h the chosen-minus-rejected log-ratio margin (margin δ = 1/β)."""
    return torch.relu(1 - beta * (chosen_logratios - rejected_logratios))


def ipo_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float) -> Tensor:
    """IPO, Azar et al. 2023, eq. 17: (h − 1/(2τ))² with τ = β.

    Callers pass per-token *average* log-ratios (see LENGTH_AVERAGED); the paper's authors confirmed
    this normalisation and both the anchor and trl use it, so β means the same across lengths.
    """
    return (chosen_logratios - rejected_logratios - 1 / (2 * beta)) ** 2


def kto_pair_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float) -> Tensor:
    """The paired KTO variant of the anchor's `pref_loss: kto_pair` (Ethayarajh et al. 2024, sec. 4
    with the KL reference point z₀ estimated from the other half of each pair, clamped at 0).

    Returns 2·batch losses: the chosen half then the rejected half, as the original implementation.
    """
    chosen_kl = chosen_logratios.mean().clamp(min=0)
    rejected_kl = rejected_logratios.mean().clamp(min=0)
    return torch.cat((1 - torch.sigmoid(beta * (chosen_logratios - rejected_kl)),
                      1 - torch.sigmoid(beta * (chosen_kl - rejected_logratios))), 0)


def kto_pair_step_points(chosen_logratios: list[Tensor], rejected_logratios: list[Tensor], beta: float,
                         all_reduce: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """`kto_pair_loss`'s KL reference points for a batch split into parts (accumulation, processes), from
    the parts' log-ratios without gradient: [chosen_kl, rejected_kl, chosen_kl_weight, rejected_kl_weight].

    The reference points are means over the whole batch and carry gradient, so each part's loss also
    moves the other parts' examples through them; the weights are ∂(Σ losses)/∂(reference point) / N (0
    where the clamp at 0 holds), which `kto_pair_step_loss` puts on each part's own log-ratios.
    `all_reduce` sums a tensor over processes (None: one process).
    """
    reduce = all_reduce or (lambda t: t)
    device = chosen_logratios[0].device if chosen_logratios else torch.device("cpu")
    zero = torch.zeros((), dtype=torch.float64, device=device)
    sums = reduce(torch.stack((sum((c.double().sum() for c in chosen_logratios), zero),
                               sum((r.double().sum() for r in rejected_logratios), zero),
                               torch.tensor(float(sum(c.numel() for c in chosen_logratios)), dtype=torch.float64,
                                            device=device))))
    count = sums[2].clamp(min=1)
    chosen_mean, rejected_mean = sums[0] / count, sums[1] / count
    chosen_kl, rejected_kl = chosen_mean.clamp(min=0), rejected_mean.clamp(min=0)

    def slope(z: Tensor) -> Tensor:
        return torch.sigmoid(z) * (1 - torch.sigmoid(z))

    grads = reduce(torch.stack((  # Σ_i ∂loss_i/∂chosen_kl (rejected half), Σ_i ∂loss_i/∂rejected_kl (chosen half)
        sum(((-beta * slope(beta * (chosen_kl - r.double()))).sum() for r in rejected_logratios), zero),
        sum(((beta * slope(beta * (c.double() - rejected_kl))).sum() for c in chosen_logratios), zero))))
    weights = grads / count * torch.stack(((chosen_mean >= 0), (rejected_mean >= 0))).double()
    return torch.stack((chosen_kl, rejected_kl, weights[0], weights[1])).float()


def kto_pair_step_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float, points: Tensor) -> Tensor:
    """`kto_pair_loss` of one part of a batch whose reference points are `points` (`kto_pair_step_points`),
    one loss per pair ((chosen + rejected) / 2): summed over every part and divided by the batch's pairs,
    the value and the gradient of `kto_pair_loss(...).mean()` on the whole batch."""
    chosen_kl, rejected_kl, chosen_weight, rejected_weight = points.to(chosen_logratios.dtype)
    chosen = 1 - torch.sigmoid(beta * (chosen_logratios - rejected_kl))
    rejected = 1 - torch.sigmoid(beta * (chosen_kl - rejected_logratios))
    through_points = (chosen_weight * (chosen_logratios - chosen_logratios.detach())
                      + rejected_weight * (rejected_logratios - rejected_logratios.detach()))  # value 0
    return (chosen + rejected + through_points) / 2


def log1mexp(x: Tensor) -> Tensor:
    """log(1 − exp(x)) for x < 0, without the cancellation of the naive form (Mächler 2012)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def odds_ratio_loss(chosen_avg_logps: Tensor, rejected_avg_logps: Tensor) -> Tensor:
    """ORPO's relative-ratio term, Hong et al. 2024, eqs. 4 and 7: −log σ(log odds(y_w) − log odds(y_l)),
    with odds(y) = P(y|x) / (1 − P(y|x)) and P the per-token average likelihood (eq. 3)."""
    log_odds = (chosen_avg_logps - rejected_avg_logps) - (log1mexp(chosen_avg_logps) - log1mexp(rejected_avg_logps))
    return -F.logsigmoid(log_odds)


def orpo_loss(chosen_avg_logps: Tensor, rejected_avg_logps: Tensor, beta: float) -> Tensor:
    """ORPO, Hong et al. 2024, eq. 6: L_SFT + λ·L_OR, with λ = `pref_beta` (the anchor's meaning) and
    L_SFT the negative average log-likelihood of the chosen response."""
    return -chosen_avg_logps + beta * odds_ratio_loss(chosen_avg_logps, rejected_avg_logps)


def simpo_loss(chosen_avg_logps: Tensor, rejected_avg_logps: Tensor, beta: float, gamma: float) -> Tensor:
    """SimPO, Meng et al. 2024, eq. 6: −log σ(β/|y_w| log π(y_w) − β/|y_l| log π(y_l) − γ), i.e. on
    per-token average log-probabilities, with no reference model and a target margin γ (`simpo_gamma`)."""
    return -F.logsigmoid(beta * (chosen_avg_logps - rejected_avg_logps) - gamma)


def bco_pair_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, beta: float, delta: float | Tensor) -> Tensor:
    """BCO, Jung et al. 2024 ("Binary classifier optimization"), sec. 3, paired form:
    −log σ(β r_w − δ) − log σ(−(β r_l − δ)), where r is the log-ratio and δ the reward shift, a running
    mean of past rewards kept by the trainer.

    The DPO trainer mixes it in as (L_DPO + w·L_BCO) / (1 + w) with w = `pref_bco_weight` (the anchor's rule).
    """
    return -F.logsigmoid(beta * chosen_logratios - delta) - F.logsigmoid(-(beta * rejected_logratios - delta))


def ld_logps(token_logps: Tensor, mask: Tensor, public_lengths: Tensor, alpha: float) -> Tensor:
    """LD-DPO, Liu et al. 2024 ("Length desensitization in preference optimization"), sec. 3:
    log π̂(y|x) = log π(y_{≤l_p}|x) + α·log π(y_{>l_p}|x), where l_p, the public length, is the shorter
    response length of the pair; the verbose tail past it counts with weight α ∈ [0, 1].

    token_logps, mask: [batch, T] response-token log-probs and their 0/1 mask; public_lengths: [batch].
    """
    position = mask.long().cumsum(dim=1)  # 1-based index among the response tokens
    public = (position <= public_lengths[:, None]) & mask.bool()
    tail = (position > public_lengths[:, None]) & mask.bool()
    return (token_logps * public).sum(-1) + alpha * (token_logps * tail).sum(-1)


def kto_kl_estimate(policy_kl_logps: Tensor, reference_kl_logps: Tensor) -> Tensor:
    """KTO's reference point z₀ (Ethayarajh et al. 2024, sec. 4.1): the KL(π_θ‖π_ref) estimated on
    mismatched (x, y') pairs of the same batch, clamped at 0 and detached (no gradient flows through it)."""
    return (policy_kl_logps - reference_kl_logps).mean().clamp(min=0).detach()


def kto_loss(chosen_logratios: Tensor, rejected_logratios: Tensor, kl: Tensor | float, beta: float,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> Tensor:
    """KTO, Ethayarajh et al. 2024, sec. 4.1, the KTO loss: λ_y − v(x, y) with
    v = λ_D σ(β(r − z₀)) for desirable and λ_U σ(β(z₀ − r)) for undesirable examples, r the log-ratio.

    Returns the desirable losses then the undesirable ones: λ_D(1 − σ(β(r − z₀))), λ_U(1 − σ(β(z₀ − r))).
    """
    chosen = desirable_weight * (1 - torch.sigmoid(beta * (chosen_logratios - kl)))
    rejected = undesirable_weight * (1 - torch.sigmoid(beta * (kl - rejected_logratios)))
    return torch.cat((chosen, rejected), 0)


def pairwise_reward_loss(chosen_rewards: Tensor, rejected_rewards: Tensor) -> Tensor:
    """Reward-model loss, Ouyang et al. 2022 (InstructGPT), eq. 1 (Bradley–Terry): −log σ(r(x, y_w) − r(x, y_l))."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards)


def sft_loss(chosen_avg_logps: Tensor) -> Tensor:
    """The supervised term added with `pref_ftx`: the chosen response's negative average log-likelihood."""
    return -chosen_avg_logps


def preference_loss(name: str, chosen: Tensor, rejected: Tensor, *, beta: float, label_smoothing: float = 0.0,
                    simpo_gamma: float = 0.5) -> Tensor:
    """Dispatch on `pref_loss`. For reference-free losses `chosen` / `rejected` are the policy's
    average log-probs; for the others they are log-ratios against the reference."""
    if name == "sigmoid":
        return dpo_sigmoid_loss(chosen, rejected, beta, label_smoothing)
    if name == "hinge":
        return hinge_loss(chosen, rejected, beta)
    if name == "ipo":
        return ipo_loss(chosen, rejected, beta)
    if name == "kto_pair":
        return kto_pair_loss(chosen, rejected, beta)
    if name == "orpo":
        return orpo_loss(chosen, rejected, beta)
    if name == "simpo":
        return simpo_loss(chosen, rejected, beta, simpo_gamma)
    raise ValueError(f"unknown pref_loss '{name}'")
