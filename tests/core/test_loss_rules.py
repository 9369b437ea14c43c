"""What tests/train_pref/test_pref_losses.py and tests/train_rl/test_rl_losses.py leave open in the losses:
default arguments, `reduction="sum"`, clip fractions, boundaries of the clamps, the dispatch by name,
and the split-batch forms (`kto_pair_step_*`, `whiten_many`), within one process and across two.

Each test states values, computed here from the formula (or by autograd on the unsplit form).
Two threads that sum their tensors at a barrier stand in for two processes' all-reduce.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from tunelab.train.losses import preference as L
from tunelab.train.losses import rl as R

D = torch.float64


def t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=D)


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def two_processes(first, second):
    """Run first(all_reduce) and second(all_reduce) at once; all_reduce sums a tensor over both."""
    barrier = threading.Barrier(2, timeout=5)  # a process that skips an all-reduce fails the test, not hangs it
    slots: list[torch.Tensor | None] = [None, None]

    def reducer(rank: int):
        def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
            slots[rank] = tensor.clone()
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()
            return total
        return all_reduce

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(fn, reducer(rank)) for rank, fn in enumerate((first, second))]
        return [f.result(timeout=20) for f in futures]


# -- preference losses --------------------------------------------------------------------------------


def test_dpo_sigmoid_defaults_to_no_label_smoothing():
    c, r = t(0.3, -1.0), t(-0.2, 0.5)
    want = [-math.log(sig(0.5 * (0.3 + 0.2))), -math.log(sig(0.5 * (-1.0 - 0.5)))]
    assert L.dpo_sigmoid_loss(c, r, 0.5).tolist() == pytest.approx(want, rel=1e-12)


def test_kto_pair_reference_points_are_the_other_sides_mean_clamped_at_zero():
    c, r = t(0.2, 0.6), t(-1.0, -3.0)  # means 0.4 (kept) and -2 (clamped to 0)
    want = [1 - sig(2 * (0.2 - 0)), 1 - sig(2 * (0.6 - 0)), 1 - sig(2 * (0.4 + 1.0)), 1 - sig(2 * (0.4 + 3.0))]
    assert L.kto_pair_loss(c, r, 2.0).tolist() == pytest.approx(want, rel=1e-12)


def kto_pair_parts():
    g = torch.Generator().manual_seed(3)
    chosen = [(torch.randn(n, generator=g, dtype=D) * 2 + 0.5).requires_grad_() for n in (3, 2)]
    rejected = [(torch.randn(n, generator=g, dtype=D) * 2 - 0.5).requires_grad_() for n in (3, 2)]
    return chosen, rejected


def grads(value: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(value, leaves))


@pytest.mark.parametrize("shift", [(0.0, 0.0), (5.0, -5.0), (-5.0, 5.0)])
def test_kto_pair_step_loss_of_the_parts_is_the_whole_batch_loss_value_and_gradient(shift):
    """Both reference points positive, or one clamped at 0: summed over the parts / pairs it is
    kto_pair_loss(...).mean() of the whole batch, value and gradient."""
    chosen, rejected = kto_pair_parts()
    chosen = [(c.detach() + shift[0]).requires_grad_() for c in chosen]
    rejected = [(r.detach() + shift[1]).requires_grad_() for r in rejected]
    beta = 0.7
    want = L.kto_pair_loss(torch.cat(chosen), torch.cat(rejected), beta).mean()
    points = L.kto_pair_step_points([c.detach() for c in chosen], [r.detach() for r in rejected], beta)
    got = sum(L.kto_pair_step_loss(c, r, beta, points).sum() for c, r in zip(chosen, rejected)) / 5
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    for a, b in zip(grads(got, chosen + rejected), grads(want, chosen + rejected)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_kto_pair_step_points_are_the_clamped_means_and_their_weights():
    chosen, rejected = [t(1.0, 2.0), t(3.0)], [t(-1.0), t(-2.0, -3.0)]
    beta = 0.5
    points = L.kto_pair_step_points(chosen, rejected, beta)
    assert points.dtype == torch.float32
    c, r = [1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]
    chosen_kl = sum(c) / 3  # 2; the rejected mean, -2, is clamped at 0, so its weight is 0

    def slope(z):
        return sig(z) * (1 - sig(z))
    chosen_weight = sum(-beta * slope(beta * (chosen_kl - x)) for x in r) / 3
    assert points.tolist() == pytest.approx([2.0, 0.0, chosen_weight, 0.0], rel=1e-6)


@pytest.mark.parametrize(("chosen", "rejected"), [((0.5, -0.5), (-1.0, 1.5)), ((-1.0, 1.5), (0.25, -0.25))])
def test_kto_pair_step_points_at_a_mean_of_exactly_zero_follow_the_clamps_gradient(chosen, rejected):
    chosen = [t(*chosen).requires_grad_()]  # a mean of 0: torch's clamp(min=0) passes the gradient there
    rejected = [t(*rejected).requires_grad_()]
    want = L.kto_pair_loss(chosen[0], rejected[0], 1.0).mean()
    points = L.kto_pair_step_points([chosen[0].detach()], [rejected[0].detach()], 1.0)
    got = L.kto_pair_step_loss(chosen[0], rejected[0], 1.0, points).sum() / 2
    for a, b in zip(grads(got, chosen + rejected), grads(want, chosen + rejected)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_kto_pair_step_points_of_one_pair():
    points = L.kto_pair_step_points([t(0.8)], [t(0.4)], 1.0)
    assert points[:2].tolist() == pytest.approx([0.8, 0.4])
    assert points[2].item() == pytest.approx(-sig(0.8 - 0.4) * (1 - sig(0.8 - 0.4)), rel=1e-6)
    assert points[3].item() == pytest.approx(sig(0.8 - 0.4) * (1 - sig(0.8 - 0.4)), rel=1e-6)


def test_kto_pair_step_points_of_a_process_without_pairs_are_zero_and_it_still_takes_part():
    assert L.kto_pair_step_points([], [], 0.3).tolist() == [0.0, 0.0, 0.0, 0.0]
    chosen, rejected = kto_pair_parts()
    chosen, rejected = [c.detach() for c in chosen], [r.detach() for r in rejected]
    whole = L.kto_pair_step_points(chosen, rejected, 0.3)
    first, second = two_processes(lambda reduce: L.kto_pair_step_points(chosen, rejected, 0.3, reduce),
                                  lambda reduce: L.kto_pair_step_points([], [], 0.3, reduce))
    torch.testing.assert_close(first, whole)
    torch.testing.assert_close(second, whole)


def test_kto_pair_step_points_across_two_processes_equal_one_process_holding_both():
    chosen, rejected = kto_pair_parts()
    chosen, rejected = [c.detach() for c in chosen], [r.detach() for r in rejected]
    whole = L.kto_pair_step_points(chosen, rejected, 0.3)
    first, second = two_processes(lambda reduce: L.kto_pair_step_points(chosen[:1], rejected[:1], 0.3, reduce),
                                  lambda reduce: L.kto_pair_step_points(chosen[1:], rejected[1:], 0.3, reduce))
    torch.testing.assert_close(first, whole)
    torch.testing.assert_close(second, whole)


def test_log1mexp_is_exact_far_from_zero():
    x = t(-50.0, -2.0, -0.7, -0.69, -0.1)
    want = [math.log1p(-math.exp(v)) for v in x.tolist()]
    want[0] = -math.exp(-50.0)  # log(1 - e^-50) = -e^-50 to double precision; the naive log(-expm1) gives 0
    assert L.log1mexp(x).tolist() == pytest.approx(want, rel=1e-12)


def test_kto_loss_weights_default_to_one():
    c, r = t(0.5, -0.5), t(1.0)
    want = [1 - sig(0.2 * (0.5 - 0.1)), 1 - sig(0.2 * (-0.5 - 0.1)), 1 - sig(0.2 * (0.1 - 1.0))]
    assert L.kto_loss(c, r, 0.1, 0.2).tolist() == pytest.approx(want, rel=1e-12)


def test_sft_loss_is_the_negative_average_log_likelihood():
    assert L.sft_loss(t(-0.5, -2.0)).tolist() == [0.5, 2.0]


@pytest.mark.parametrize(("name", "direct"), [
    ("sigmoid", lambda c, r: L.dpo_sigmoid_loss(c, r, 0.3, 0.1)),
    ("hinge", lambda c, r: L.hinge_loss(c, r, 0.3)),
    ("ipo", lambda c, r: L.ipo_loss(c, r, 0.3)),
    ("kto_pair", lambda c, r: L.kto_pair_loss(c, r, 0.3)),
    ("orpo", lambda c, r: L.orpo_loss(c, r, 0.3)),
    ("simpo", lambda c, r: L.simpo_loss(c, r, 0.3, 0.7)),
])
def test_preference_loss_dispatches_each_name_with_its_arguments(name, direct):
    c, r = t(-0.4, -1.3), t(-0.9, -0.2)
    got = L.preference_loss(name, c, r, beta=0.3, label_smoothing=0.1, simpo_gamma=0.7)
    assert got.tolist() == pytest.approx(direct(c, r).tolist(), rel=1e-12)


def test_preference_loss_defaults_no_smoothing_and_a_simpo_margin_of_one_half():
    c, r = t(-0.4, -1.3), t(-0.9, -0.2)
    assert L.preference_loss("sigmoid", c, r, beta=0.3).tolist() == L.dpo_sigmoid_loss(c, r, 0.3, 0.0).tolist()
    assert L.preference_loss("simpo", c, r, beta=0.3).tolist() == L.simpo_loss(c, r, 0.3, 0.5).tolist()
    with pytest.raises(ValueError, match="^unknown pref_loss 'dpo'$"):
        L.preference_loss("dpo", c, r, beta=0.3)


# -- RL: masked statistics ----------------------------------------------------------------------------

VALUES = t(1.0, 2.0, 4.0, 8.0, 100.0).reshape(1, 5)
MASK = t(1, 1, 1, 1, 0).reshape(1, 5)


def test_masked_mean_over_everything_and_along_a_dimension():
    assert R.masked_mean(VALUES, MASK).item() == 3.75
    rows = torch.cat((VALUES, VALUES))
    masks = torch.cat((MASK, t(0, 0, 1, 0, 0).reshape(1, 5)))
    assert R.masked_mean(rows, masks, dim=-1).tolist() == [3.75, 4.0]  # one entry: its own value
    assert R.masked_mean(rows, masks, dim=0).tolist() == [1.0, 2.0, 4.0, 8.0, 0.0]  # none: 0
    assert R.masked_mean(VALUES, torch.zeros(1, 5)).item() == 0.0
    assert R.masked_mean(VALUES, t(0, 0, 0, 1, 0).reshape(1, 5)).item() == 8.0


def test_masked_var_is_bessel_corrected_unless_asked_not_to():
    # mean 3.75; squared deviations 7.5625, 3.0625, 0.0625, 18.0625: sum 28.75
    assert R.masked_var(VALUES, MASK).item() == pytest.approx(28.75 / 3)
    assert R.masked_var(VALUES, MASK, unbiased=False).item() == pytest.approx(28.75 / 4)
    assert R.masked_var(VALUES, t(0, 1, 1, 0, 0).reshape(1, 5)).item() == pytest.approx(2.0)  # (1 + 1) / 1
    assert R.masked_var(VALUES, t(0, 0, 1, 0, 0).reshape(1, 5)).item() == 0.0  # one entry: no spread


def test_whiten_values():
    x = t(1.0, 2.0, 3.0, 50.0).reshape(1, 4)
    mask = t(1, 1, 1, 0).reshape(1, 4)  # mean 2, unbiased variance 1
    scale = 1 / math.sqrt(1 + 1e-8)
    assert R.whiten(x, mask).tolist() == [pytest.approx([-scale, 0.0, scale, 0.0], rel=1e-12)]
    assert R.whiten(x, mask, shift_mean=False).tolist() == [pytest.approx([2 - scale, 2.0, 2 + scale, 0.0], rel=1e-12)]
    assert R.whiten(x, mask, eps=3.0).tolist() == [pytest.approx([-0.5, 0.0, 0.5, 0.0], rel=1e-12)]


def whiten_batches():
    g = torch.Generator().manual_seed(11)
    values = [torch.randn(2, 5, generator=g, dtype=D) * 3 + 1, torch.randn(3, 2, generator=g, dtype=D) - 2]
    masks = [t(1, 1, 1, 0, 0, 1, 1, 1, 1, 1).reshape(2, 5), t(1, 1, 1, 0, 0, 0).reshape(3, 2)]
    return values, masks


def reference_whiten(values, masks, shift_mean=True, eps=1e-8):
    picked = torch.cat([v[m.bool()] for v, m in zip(values, masks)])
    mean, var = picked.mean(), picked.var()  # unbiased, as masked_var
    out = []
    for v, m in zip(values, masks):
        w = (v - mean) / torch.sqrt(var + eps) + (0 if shift_mean else mean)
        out.append(w * m)
    return out


@pytest.mark.parametrize("shift_mean", [True, False])
def test_whiten_many_uses_the_statistics_of_all_batches_together(shift_mean):
    values, masks = whiten_batches()
    got = R.whiten_many(values, masks, shift_mean=shift_mean)
    for a, b in zip(got, reference_whiten(values, masks, shift_mean)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(R.whiten_many(values, masks, eps=4.0), reference_whiten(values, masks, eps=4.0)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_whiten_many_of_one_batch_is_whiten():
    x, mask = VALUES.clone(), MASK.clone()
    torch.testing.assert_close(R.whiten_many([x], [mask])[0], R.whiten(x, mask), rtol=1e-12, atol=1e-12)


def test_whiten_many_of_one_and_of_two_entries():
    one = R.whiten_many([t(5.0, 9.0).reshape(1, 2)], [t(1, 0).reshape(1, 2)], shift_mean=False)
    assert one[0].tolist() == [[5.0, 0.0]]  # mean 5, no spread
    two = R.whiten_many([t(1.0, 3.0).reshape(1, 2)], [torch.ones(1, 2, dtype=D)])  # mean 2, unbiased variance 2
    assert two[0].tolist() == [pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], rel=1e-6)]


def test_whiten_many_of_a_process_without_batches_still_takes_part():
    assert R.whiten_many([], []) == []
    values, masks = whiten_batches()
    want = reference_whiten(values, masks)
    first, second = two_processes(lambda reduce: R.whiten_many(values, masks, all_reduce=reduce),
                                  lambda reduce: R.whiten_many([], [], all_reduce=reduce))
    assert second == []
    for a, b in zip(first, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_whiten_many_refuses_masks_that_do_not_pair_with_the_values_before_any_all_reduce():
    values, masks = whiten_batches()
    calls = []
    with pytest.raises(ValueError):
        R.whiten_many(values, masks[:1], all_reduce=lambda tensor: calls.append(tensor) or tensor)
    assert calls == []


def test_whiten_many_across_two_processes_equals_one_process_holding_both():
    values, masks = whiten_batches()
    want = reference_whiten(values, masks)
    first, second = two_processes(lambda reduce: R.whiten_many(values[:1], masks[:1], all_reduce=reduce),
                                  lambda reduce: R.whiten_many(values[1:], masks[1:], all_reduce=reduce))
    torch.testing.assert_close(first[0], want[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second[0], want[1], rtol=1e-12, atol=1e-12)


# -- RL: advantages and rewards -----------------------------------------------------------------------


def test_gae_defaults_are_gamma_one_and_lambda_095():
    rewards, values, mask = t(1.0, 0.0, 2.0).reshape(1, 3), t(0.5, 0.25, 1.0).reshape(1, 3), torch.ones(1, 3)
    advantages, returns = R.gae(rewards, values, mask)
    d2 = 2.0 - 1.0
    d1 = 0.0 + 1.0 - 0.25
    d0 = 1.0 + 0.25 - 0.5
    a2, a1 = d2, d1 + 0.95 * d2
    a0 = d0 + 0.95 * a1
    assert advantages.tolist() == [pytest.approx([a0, a1, a2], rel=1e-12)]
    assert returns.tolist() == [pytest.approx([a0 + 0.5, a1 + 0.25, a2 + 1.0], rel=1e-12)]


def test_gae_of_one_token_responses():
    advantages, returns = R.gae(t(2.0, 1.0).reshape(2, 1), t(0.5, 3.0).reshape(2, 1), t(1, 0).reshape(2, 1))
    assert advantages.tolist() == [[1.5], [0.0]] and returns.tolist() == [[2.0], [0.0]]


def test_kl_estimators_abs_mse_and_the_k1_default():
    logps, ref = t(-1.0, -2.0), t(-1.5, -1.0)  # k1 = 0.5, -1
    assert R.kl_penalty(logps, ref).tolist() == [0.5, -1.0]
    assert R.kl_penalty(logps, ref, "abs").tolist() == [0.5, 1.0]
    assert R.kl_penalty(logps, ref, "mse").tolist() == [0.125, 0.5]


def test_kl_penalised_rewards_score_the_last_token_and_skip_empty_rows():
    logps = t(-1.0, -2.0, -3.0, -1.0, -1.0, -1.0).reshape(2, 3)
    ref = t(-1.5, -1.0, -3.0, -2.0, -2.0, -2.0).reshape(2, 3)
    mask = t(1, 1, 0, 0, 0, 0).reshape(2, 3)  # the second response is empty
    rewards, kl = R.kl_penalised_rewards(t(3.0, 7.0), logps, ref, mask, kl_coef=0.1)
    assert kl.tolist() == [[0.5, -1.0, 0.0], [0.0, 0.0, 0.0]]
    assert rewards.tolist() == [pytest.approx([-0.05, 0.1 + 3.0, 0.0]), [0.0, 0.0, 0.0]]
    _, k3 = R.kl_penalised_rewards(t(3.0, 7.0), logps, ref, mask, kl_coef=0.1, kind="k3")
    assert k3[0, :2].tolist() == pytest.approx([math.exp(-0.5) + 0.5 - 1, math.exp(1.0) - 1.0 - 1])


def test_kl_penalised_rewards_score_a_one_token_response_on_that_token():
    rewards, _ = R.kl_penalised_rewards(t(3.0, 5.0), torch.zeros(2, 3, dtype=D), torch.zeros(2, 3, dtype=D),
                                        t(1, 0, 0, 1, 1, 0).reshape(2, 3), kl_coef=0.1)
    assert rewards.tolist() == [[3.0, 0.0, 0.0], [0.0, 5.0, 0.0]]


def test_reduce_tokens_means_or_sums_the_masked_entries():
    assert R.reduce_tokens(VALUES, MASK, "mean").item() == 3.75
    assert R.reduce_tokens(VALUES, MASK, "sum").item() == 15.0
    with pytest.raises(ValueError, match=r"^unknown reduction 'max' \(mean, sum\)$"):
        R.reduce_tokens(VALUES, MASK, "max")


def test_clipped_policy_loss_default_clip_range_sum_and_clip_fraction():
    # ratios e^0.1 (inside 0.2), e^0.5 (above 1.2, A > 0: clipped), e^-0.5 (below 0.8, A > 0: not clipped)
    logps, old = t(0.1, 0.5, -0.5, 9.0).reshape(1, 4), torch.zeros(1, 4, dtype=D)
    adv = t(1.0, 2.0, 1.0, 5.0).reshape(1, 4)
    mask = t(1, 1, 1, 0).reshape(1, 4)
    terms = [-math.exp(0.1), -2.0 * 1.2, -math.exp(-0.5)]
    loss, fraction = R.clipped_policy_loss(logps, old, adv, mask)
    assert loss.item() == pytest.approx(sum(terms) / 3, rel=1e-12)
    assert fraction.item() == pytest.approx(1 / 3, rel=1e-12) and fraction.dtype == D
    summed, _ = R.clipped_policy_loss(logps, old, adv, mask, reduction="sum")
    assert summed.item() == pytest.approx(sum(terms), rel=1e-12)


def test_clipped_value_loss_default_clip_range_sum_and_clip_fraction():
    values, old, returns = t(1.0, 0.5, 3.0).reshape(1, 3), t(0.0, 0.4, 0.0).reshape(1, 3), t(2.0, 0.0, 3.0).reshape(1, 3)
    mask = torch.ones(1, 3, dtype=D)
    # V - V_old = 1 (clipped to 0.2), 0.1 (inside), 3 (clipped): clipped values 0.2, 0.5, 0.2
    terms = [max((1 - 2) ** 2, (0.2 - 2) ** 2), max(0.25, 0.25), max(0.0, (0.2 - 3) ** 2)]
    loss, fraction = R.clipped_value_loss(values, old, returns, mask)
    assert loss.item() == pytest.approx(0.5 * sum(terms) / 3, rel=1e-12)
    assert fraction.item() == pytest.approx(2 / 3, rel=1e-12)  # the clipped error is larger for the first and last
    assert fraction.dtype == D
    summed, _ = R.clipped_value_loss(values, old, returns, mask, reduction="sum")
    assert summed.item() == pytest.approx(0.5 * sum(terms), rel=1e-12)


def test_adaptive_kl_controller_defaults_and_lower_clip():
    ctl = R.AdaptiveKLController()
    assert (ctl.value, ctl.target, ctl.horizon) == (0.2, 6.0, 10000)
    assert ctl.update(0.0, 500) == pytest.approx(0.2 * (1 - 0.2 * 500 / 10000))  # error -1 clipped to -0.2
    assert R.AdaptiveKLController(0.2, target=4.0, horizon=100).update(4.0, 50) == 0.2  # on target: unchanged


def test_group_advantages_of_single_completions_and_the_default_eps():
    assert R.group_advantages(t(1.0, 5.0), group_size=1).tolist() == [0.0, 0.0]
    adv = R.group_advantages(t(1.0, 3.0), group_size=2)  # mean 2, unbiased std sqrt(2)
    assert adv.tolist() == pytest.approx([-1 / (math.sqrt(2) + 1e-4), 1 / (math.sqrt(2) + 1e-4)], rel=1e-12)
    assert R.group_advantages(t(1.0, 3.0), 2, eps=1.0).tolist() == pytest.approx([-1 / (math.sqrt(2) + 1), 1 / (math.sqrt(2) + 1)])


def grpo_inputs():
    """Responses of 4 and 5 tokens (one padding slot). Ratios: e^0.1, e^0.5 and e^0.4 (above the clip, A > 0),
    e^-0.5 | e^0.3, e^-0.5 (below the clip, A < 0), e^0.25, 1, e^0.2 (above 1 + ε, A < 0: not clipped)."""
    logps = t(0.1, 0.5, -0.5, 0.4, 7.0, 0.3, -0.5, 0.25, 0.0, 0.2).reshape(2, 5)
    old = torch.zeros(2, 5, dtype=D)
    ref = t(0.0, 0.2, -0.3, 0.1, 0.0, 0.1, 0.0, 0.4, 0.3, -0.2).reshape(2, 5)
    adv = t(1.5, -2.0)
    mask = t(1, 1, 1, 1, 0, 1, 1, 1, 1, 1).reshape(2, 5)
    return logps, old, ref, adv, mask


def grpo_reference(logps, ref, adv, mask, beta, eps):
    """Per sequence: mean over its tokens of −min(ρA, clip(ρ)A) + β·k3; plus the clip counts."""
    per_sequence, kls, policy, clipped, count = [], [], [], 0, 0
    for i in range(logps.shape[0]):
        n = int(mask[i].sum())
        terms, kl_terms, pol = [], [], []
        for j in range(n):
            ratio, a = math.exp(float(logps[i, j])), float(adv[i])
            surrogate = min(ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a)
            k3 = math.exp(float(ref[i, j] - logps[i, j])) - float(ref[i, j] - logps[i, j]) - 1
            terms.append(-surrogate + beta * k3)
            kl_terms.append(k3)
            pol.append(-surrogate)
            clipped += ratio * a > min(max(ratio, 1 - eps), 1 + eps) * a
            count += 1
        per_sequence.append(sum(terms) / n)
        kls.append(sum(kl_terms) / n)
        policy.append(sum(pol) / n)
    return per_sequence, kls, policy, clipped / count


def test_grpo_loss_defaults_parts_and_sum_reduction():
    logps, old, ref, adv, mask = grpo_inputs()
    per_sequence, kls, policy, clip_fraction = grpo_reference(logps, ref, adv, mask, beta=0.04, eps=0.2)
    loss, parts = R.grpo_loss(logps, old, ref, adv, mask)
    assert loss.item() == pytest.approx(sum(per_sequence) / 2, rel=1e-12)
    assert parts["kl"].item() == pytest.approx(sum(kls) / 2, rel=1e-12)
    assert parts["policy_loss"].item() == pytest.approx(sum(policy) / 2, rel=1e-12)
    assert clip_fraction == 3 / 9 and parts["clip_fraction"].item() == pytest.approx(clip_fraction, rel=1e-12)
    assert parts["clip_fraction"].dtype == D
    assert not any(p.requires_grad for p in parts.values())
    summed, _ = R.grpo_loss(logps, old, ref, adv, mask, reduction="sum")
    assert summed.item() == pytest.approx(sum(per_sequence), rel=1e-12)
    with pytest.raises(ValueError, match=r"^unknown reduction 'max' \(mean, sum\)$"):
        R.grpo_loss(logps, old, ref, adv, mask, reduction="max")


def test_grpo_loss_without_kl_when_beta_is_zero():
    logps, old, ref, adv, mask = grpo_inputs()
    per_sequence, _, _, _ = grpo_reference(logps, ref, adv, mask, beta=0.0, eps=0.5)
    loss, parts = R.grpo_loss(logps, old, ref, adv, mask, beta=0.0, epsilon=0.5)
    assert loss.item() == pytest.approx(sum(per_sequence) / 2, rel=1e-12)
    assert parts["kl"].item() == 0.0


# -- dtypes and devices -------------------------------------------------------------------------------


def test_a_mask_of_another_dtype_changes_neither_the_dtype_nor_the_values_of_the_results():
    """Masks arrive as bool, long or float64; the statistics stay in the values' dtype (float32 here)."""
    values = VALUES.float()
    for mask in (MASK, MASK.bool(), MASK.long()):
        assert R.masked_mean(values, mask).dtype == torch.float32 and R.masked_mean(values, mask).item() == 3.75
        assert R.masked_var(values, mask).dtype == torch.float32
        assert R.masked_var(values, mask).item() == pytest.approx(28.75 / 3, rel=1e-6)
        assert R.whiten(values, mask).dtype == torch.float32
        assert R.reduce_tokens(values, mask, "sum").dtype == torch.float32
        assert R.reduce_tokens(values, mask, "sum").item() == 15.0
        advantages, returns = R.gae(values, values, mask)
        assert advantages.dtype == returns.dtype == torch.float32
        rewards, kl = R.kl_penalised_rewards(t(1.0), values, values / 2, mask, kl_coef=0.1)
        assert rewards.dtype == kl.dtype == torch.float32
        assert R.whiten_many([values], [mask])[0].dtype == torch.float32


def test_the_split_batch_statistics_stay_on_the_inputs_device():
    """The meta device stands in for a GPU: nothing may be created on the CPU next to the inputs."""
    meta = torch.device("meta")
    chosen, rejected = [torch.zeros(3, dtype=D, device=meta)], [torch.zeros(2, dtype=D, device=meta)]
    assert L.kto_pair_step_points(chosen, rejected, 0.3).device == meta
    assert R.whiten_many([torch.zeros(2, 3, device=meta)], [torch.ones(2, 3, device=meta)])[0].device == meta
    devices = []
    R.whiten_many([], [], all_reduce=lambda tensor: devices.append(tensor.device) or tensor, device=meta)
    assert devices == [meta, meta]  # a process without batches: where the caller says
    rewards, _ = R.kl_penalised_rewards(torch.zeros(2, device=meta), torch.zeros(2, 3, device=meta),
                                        torch.zeros(2, 3, device=meta), torch.ones(2, 3, device=meta), kl_coef=0.1)
    assert rewards.device == meta
