"""losses/rl.py against direct, loop-by-loop implementations of the papers' formulas on random inputs."""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.train.losses import rl as R


def random_batch(seed: int = 0, batch: int = 5, length: int = 7):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).float()
    def rand():
        return torch.randn(batch, length, generator=g, dtype=torch.float64)
    return mask.double(), rand, lengths


def test_gae_matches_the_recursion_of_schulman_2016():
    mask, rand, lengths = random_batch()
    rewards, values = rand(), rand()
    gamma, lam = 0.9, 0.8
    adv, ret = R.gae(rewards, values, mask, gamma=gamma, lam=lam)
    for i, n in enumerate(lengths.tolist()):
        for t in range(n):
            # A_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V_{t+1} − V_t, V beyond the end = 0
            want = 0.0
            for k in range(t, n):
                v_next = float(values[i, k + 1]) if k + 1 < n else 0.0
                delta = float(rewards[i, k]) + gamma * v_next - float(values[i, k])
                want += (gamma * lam) ** (k - t) * delta
            assert float(adv[i, t]) == pytest.approx(want, abs=1e-10)
            assert float(ret[i, t]) == pytest.approx(want + float(values[i, t]), abs=1e-10)
        assert torch.all(adv[i, n:] == 0) and torch.all(ret[i, n:] == 0)


def test_gae_with_lambda_one_is_the_discounted_return_minus_value():
    mask, rand, lengths = random_batch(1)
    rewards, values = rand(), rand()
    adv, _ = R.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    for i, n in enumerate(lengths.tolist()):
        for t in range(n):
            assert float(adv[i, t]) == pytest.approx(float(rewards[i, t:n].sum() - values[i, t]), abs=1e-10)


def test_whiten_gives_zero_mean_unit_variance_on_the_mask():
    mask, rand, _ = random_batch(2)
    x = rand() * 3 + 5
    w = R.whiten(x, mask)
    picked = w[mask.bool()]
    assert float(picked.mean()) == pytest.approx(0.0, abs=1e-9)
    assert float(picked.std()) == pytest.approx(1.0, abs=1e-6)  # unbiased std, as whitening uses
    assert torch.all(w[~mask.bool()] == 0)
    kept = R.whiten(x, mask, shift_mean=False)[mask.bool()]
    assert float(kept.mean()) == pytest.approx(float(x[mask.bool()].mean()), abs=1e-9)


def test_clipped_policy_loss_matches_ppo_eq7():
    mask, rand, _ = random_batch(3)
    logps, old, adv = rand() * 0.3, rand() * 0.3, rand()
    eps = 0.2
    loss, clip_fraction = R.clipped_policy_loss(logps, old, adv, mask, eps)
    terms, clipped = [], 0
    for i, t in mask.nonzero().tolist():
        ratio = math.exp(float(logps[i, t] - old[i, t]))
        a = float(adv[i, t])
        objective = min(ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a)
        terms.append(-objective)
        clipped += objective != ratio * a
    assert float(loss) == pytest.approx(sum(terms) / len(terms), abs=1e-10)
    assert float(clip_fraction) == pytest.approx(clipped / len(terms), abs=1e-10)
    assert 0 < clipped < len(terms)  # the random ratios exercise both branches


def test_clipped_policy_loss_gradient_is_zero_where_clipped():
    logps = torch.tensor([[0.5, -0.5, 0.05]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 3, dtype=torch.float64)
    adv = torch.tensor([[1.0, -1.0, 1.0]], dtype=torch.float64)
    loss, _ = R.clipped_policy_loss(logps, old, adv, torch.ones(1, 3), 0.2)
    loss.backward()
    # ratio e^0.5 > 1.2 with A > 0 and e^-0.5 < 0.8 with A < 0: clipped, no gradient; the third is inside
    assert logps.grad[0, 0] == 0 and logps.grad[0, 1] == 0
    assert float(logps.grad[0, 2]) == pytest.approx(-math.exp(0.05) / 3, abs=1e-12)


def test_clipped_value_loss_matches_the_formula():
    mask, rand, _ = random_batch(4)
    values, old, returns = rand(), rand(), rand()
    eps = 0.2
    loss, _ = R.clipped_value_loss(values, old, returns, mask, eps)
    terms = []
    for i, t in mask.nonzero().tolist():
        v, vo, r = float(values[i, t]), float(old[i, t]), float(returns[i, t])
        vc = vo + min(max(v - vo, -eps), eps)
        terms.append(0.5 * max((v - r) ** 2, (vc - r) ** 2))
    assert float(loss) == pytest.approx(sum(terms) / len(terms), abs=1e-10)


def test_kl_estimators_and_penalised_rewards():
    mask, rand, lengths = random_batch(5)
    logps, ref = rand() * 0.5, rand() * 0.5
    k3 = R.kl_penalty(logps, ref, "k3")
    for i, t in mask.nonzero().tolist():
        log_ratio = float(ref[i, t] - logps[i, t])
        assert float(k3[i, t]) == pytest.approx(math.exp(log_ratio) - log_ratio - 1, abs=1e-10)
    assert torch.all(k3 >= 0)
    assert torch.equal(R.kl_penalty(logps, ref, "k1"), logps - ref)
    scores = torch.randn(mask.shape[0], dtype=torch.float64)
    rewards, kl = R.kl_penalised_rewards(scores, logps, ref, mask, kl_coef=0.1)
    for i, n in enumerate(lengths.tolist()):
        for t in range(n):
            want = -0.1 * float(logps[i, t] - ref[i, t]) + (float(scores[i]) if t == n - 1 else 0.0)
            assert float(rewards[i, t]) == pytest.approx(want, abs=1e-10)
        assert torch.all(rewards[i, n:] == 0) and torch.all(kl[i, n:] == 0)
    with pytest.raises(ValueError, match="k1, k3"):
        R.kl_penalty(logps, ref, "k2")


def test_adaptive_kl_controller_follows_ziegler():
    ctl = R.AdaptiveKLController(0.2, target=6.0, horizon=10000)
    assert ctl.update(12.0, 100) == pytest.approx(0.2 * (1 + 0.2 * 100 / 10000))  # error clipped at +0.2
    value = ctl.value
    assert ctl.update(5.4, 100) == pytest.approx(value * (1 - 0.1 * 100 / 10000))
    fixed = R.AdaptiveKLController(0.3, target=None)
    assert fixed.update(100.0, 10) == 0.3


def test_group_advantages_normalise_each_group():
    g = torch.Generator().manual_seed(6)
    rewards = torch.randn(12, generator=g, dtype=torch.float64)
    rewards[8:] = 0.5  # a group with equal rewards: no signal
    adv = R.group_advantages(rewards, group_size=4)
    for start in range(0, 12, 4):
        group = rewards[start:start + 4].tolist()
        mean = sum(group) / 4
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / 3)
        for k in range(4):
            assert float(adv[start + k]) == pytest.approx((group[k] - mean) / (std + 1e-4), abs=1e-10)
    assert torch.all(adv[8:] == 0)
    centred = R.group_advantages(rewards, 4, scale=False)
    assert float(centred[0]) == pytest.approx(float(rewards[0] - rewards[:4].mean()), abs=1e-12)


def test_grpo_loss_matches_deepseekmath_eq3():
    mask, rand, lengths = random_batch(7, batch=6)
    logps, old, ref = rand() * 0.3, rand() * 0.3, rand() * 0.3
    adv = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    beta, eps = 0.04, 0.2
    loss, parts = R.grpo_loss(logps, old, ref, adv, mask, beta=beta, epsilon=eps)
    objective = 0.0
    for i, n in enumerate(lengths.tolist()):
        per_seq = 0.0
        for t in range(n):
            ratio = math.exp(float(logps[i, t] - old[i, t]))
            a = float(adv[i])
            log_r = float(ref[i, t] - logps[i, t])
            kl = math.exp(log_r) - log_r - 1
            per_seq += min(ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a) - beta * kl
        objective += per_seq / n
    assert float(loss) == pytest.approx(-objective / 6, abs=1e-10)
    assert float(parts["kl"]) > 0
    no_ref, _ = R.grpo_loss(logps, old, None, adv, mask, beta=beta, epsilon=eps)
    assert float(no_ref) == pytest.approx(float(parts["policy_loss"]), abs=1e-10)


def test_grpo_gradient_at_ratio_one_is_the_advantage_weighted_score_function():
    """With π_old = π (one update per generation) the clip is inert and ∇loss = −Σ Â/|o| ∇log π / G."""
    logps = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -2.0], dtype=torch.float64)
    loss, _ = R.grpo_loss(logps, logps.detach(), None, adv, mask, beta=0.0)
    loss.backward()
    want = torch.tensor([[-0.25, -0.25], [1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(logps.grad, want)
