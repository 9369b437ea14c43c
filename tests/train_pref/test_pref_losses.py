"""Every loss of `tunelab.train.losses.preference` against its paper's formula (written out element by element
with `math`), and against trl's implementation as an oracle where trl has one (trl is a test-only
dependency: those tests skip without it)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tunelab.train.losses import preference as L

BATCH = 6


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture
def pairs() -> dict[str, torch.Tensor]:
    """Random summed log-probs of policy and reference, chosen and rejected (float64 for exactness)."""
    g = torch.Generator().manual_seed(0)
    return {k: -torch.rand(BATCH, generator=g, dtype=torch.float64) * 40 - 1
            for k in ("pc", "pr", "rc", "rr")}


@pytest.fixture
def averages() -> tuple[torch.Tensor, torch.Tensor]:
    """Random per-token average log-probs in (−3, 0) (ORPO's odds need P < 1)."""
    g = torch.Generator().manual_seed(1)
    return (-torch.rand(BATCH, generator=g, dtype=torch.float64) * 3 - 1e-3,
            -torch.rand(BATCH, generator=g, dtype=torch.float64) * 3 - 1e-3)


def ratios(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return p["pc"] - p["rc"], p["pr"] - p["rr"]


# -- the papers' formulas, element by element ---------------------------------------------------------


@pytest.mark.parametrize("beta", [0.1, 0.5])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_dpo_sigmoid_is_rafailov_eq7_with_cdpo_smoothing(pairs, beta, eps):
    got = L.dpo_sigmoid_loss(*ratios(pairs), beta, eps)
    for i in range(BATCH):
        h = (pairs["pc"][i] - pairs["rc"][i]) - (pairs["pr"][i] - pairs["rr"][i])
        want = -(1 - eps) * math.log(sig(beta * h)) - eps * math.log(sig(-beta * h))
        assert got[i].item() == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_hinge_is_slic_margin(pairs):
    got = L.hinge_loss(*ratios(pairs), 0.1)
    for i in range(BATCH):
        h = (pairs["pc"][i] - pairs["rc"][i]) - (pairs["pr"][i] - pairs["rr"][i])
        assert got[i].item() == pytest.approx(max(0.0, 1 - 0.1 * float(h)), abs=1e-12)
    assert (got >= 0).all() and (got > 0).any() and (got == 0).any()  # the random pairs hit both sides


def test_ipo_is_azar_eq17(pairs):
    c, r = ratios(pairs)
    got = L.ipo_loss(c, r, 0.25)
    for i in range(BATCH):
        assert got[i].item() == pytest.approx((float(c[i] - r[i]) - 1 / (2 * 0.25)) ** 2, rel=1e-12)


def test_kto_pair_uses_the_other_side_as_reference_point(pairs):
    c, r = ratios(pairs)
    got = L.kto_pair_loss(c, r, 0.1)
    zc, zr = max(0.0, c.mean().item()), max(0.0, r.mean().item())
    want = [1 - sig(0.1 * (c[i].item() - zr)) for i in range(BATCH)] + [1 - sig(0.1 * (zc - r[i].item())) for i in range(BATCH)]
    assert got.tolist() == pytest.approx(want, rel=1e-12)


def test_orpo_is_hong_eq6(averages):
    c, r = averages
    got = L.orpo_loss(c, r, 0.2)
    for i in range(BATCH):
        pw, pl = math.exp(c[i].item()), math.exp(r[i].item())
        odds_ratio = (pw / (1 - pw)) / (pl / (1 - pl))
        want = -c[i].item() - 0.2 * math.log(sig(math.log(odds_ratio)))
        assert got[i].item() == pytest.approx(want, rel=1e-10)


def test_log1mexp_is_stable_near_zero():
    x = torch.tensor([-1e-12, -1e-6, -0.5, -5.0, -50.0], dtype=torch.float64)
    want = [math.log(-math.expm1(v)) for v in x.tolist()]
    assert L.log1mexp(x).tolist() == pytest.approx(want, rel=1e-12)
    assert torch.isfinite(L.log1mexp(torch.tensor([-1e-9], dtype=torch.float32))).all()


def test_simpo_is_meng_eq6(averages):
    c, r = averages
    got = L.simpo_loss(c, r, 2.0, 0.5)
    for i in range(BATCH):
        assert got[i].item() == pytest.approx(-math.log(sig(2.0 * (c[i].item() - r[i].item()) - 0.5)), rel=1e-12)


def test_bco_pair_is_two_binary_classifiers_around_the_shift(pairs):
    c, r = ratios(pairs)
    got = L.bco_pair_loss(c, r, 0.1, 0.3)
    for i in range(BATCH):
        want = -math.log(sig(0.1 * c[i].item() - 0.3)) - math.log(sig(-(0.1 * r[i].item() - 0.3)))
        assert got[i].item() == pytest.approx(want, rel=1e-12)


def test_ld_logps_weights_the_tail_past_the_shorter_response():
    token_logps = torch.tensor([[0.0, -1.0, -2.0, -3.0, -4.0, 0.0], [-5.0, -6.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]])
    public = torch.tensor([2, 2])  # min(4, 2)
    got = L.ld_logps(token_logps, mask, public, 0.5)
    assert got.tolist() == pytest.approx([(-1 - 2) + 0.5 * (-3 - 4), -5 - 6])
    assert L.ld_logps(token_logps, mask, public, 1.0).tolist() == pytest.approx([-10, -11])  # α = 1: plain sums


def test_kto_is_ethayarajh_with_clamped_detached_kl(pairs):
    c, r = ratios(pairs)
    policy_kl, ref_kl = pairs["pc"].clone().requires_grad_(), pairs["rc"]
    z0 = L.kto_kl_estimate(policy_kl, ref_kl)
    assert not z0.requires_grad and z0.item() == max(0.0, (pairs["pc"] - pairs["rc"]).mean().item())
    got = L.kto_loss(c[:4], r[:2], 0.05, 0.1, 1.0, 1.5)
    want = [1 - sig(0.1 * (c[i].item() - 0.05)) for i in range(4)] + [1.5 * (1 - sig(0.1 * (0.05 - r[i].item())))
                                                                      for i in range(2)]
    assert got.tolist() == pytest.approx(want, rel=1e-12)


def test_pairwise_reward_loss_is_bradley_terry(pairs):
    got = L.pairwise_reward_loss(pairs["pc"] / 10, pairs["pr"] / 10)
    for i in range(BATCH):
        assert got[i].item() == pytest.approx(-math.log(sig((pairs["pc"][i] - pairs["pr"][i]).item() / 10)), rel=1e-12)


def test_dispatch_names_every_pref_loss_of_the_config():
    from typing import get_args

    from tunelab.config.finetuning_args import FinetuningArguments

    names = get_args(FinetuningArguments.__dataclass_fields__["pref_loss"].type)
    x, y = torch.tensor([-1.0]), torch.tensor([-2.0])
    for name in names:
        assert torch.isfinite(L.preference_loss(name, x, y, beta=0.1)).all(), name
    with pytest.raises(ValueError):
        L.preference_loss("nope", x, y, beta=0.1)


# -- trl as an oracle ---------------------------------------------------------------------------------


def _accelerator() -> SimpleNamespace:
    return SimpleNamespace(device=torch.device("cpu"), gather=lambda t: t, gather_for_metrics=lambda t: t)


def _fake_lm(per_token_logps: dict[int, torch.Tensor]) -> object:
    """A model whose forward returns fixed per-token log-probs, looked up by each row's first input id."""
    def forward(input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
        logps = torch.stack([per_token_logps[int(i)] for i in input_ids[:, 0]])
        zeros = torch.zeros_like(logps)
        return SimpleNamespace(log_probs=logps, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())
    return forward


def _token_split(total: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs on `mask` that add up to `total` per row."""
    weights = mask / mask.sum(-1, keepdim=True)
    return total[:, None] * weights


def _trl_dpo_loss(loss_type: str, pairs: dict[str, torch.Tensor], lengths: torch.Tensor, beta: float) -> float:
    """trl.DPOTrainer._compute_loss (trl 1.x computes the loss inline there, so it is called on a stand-in
    trainer with precomputed reference log-probs and a model returning fixed per-token log-probs)."""
    trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer")
    width = int(lengths.max()) + 2
    completion = torch.zeros(2 * BATCH, width + 1, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        completion[row, 2 : 2 + n] = 1
    shifted = completion[:, 1:].double()
    per_token = _token_split(torch.cat((pairs["pc"], pairs["pr"])), shifted)
    input_ids = torch.arange(2 * BATCH)[:, None].repeat(1, width + 1)
    stand_in = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=_accelerator(), aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0],
        beta=beta, label_smoothing=0.0, use_weighting=False, _metrics={"train": __import__("collections").defaultdict(list)},
        _total_train_tokens=0, _tp_size=1, args=SimpleNamespace(),
    )
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "completion_mask": completion,
              "ref_chosen_logps": pairs["rc"], "ref_rejected_logps": pairs["pr"] * 0 + pairs["rr"]}
    model = _fake_lm({i: per_token[i] for i in range(2 * BATCH)})
    return float(trl_dpo.DPOTrainer._compute_loss(stand_in, model, inputs, return_outputs=False))


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_dpo_family_matches_trl(pairs, loss_type):
    lengths = torch.tensor([3, 5, 7, 2, 4, 6, 5, 3, 8, 2, 6, 4])
    beta = 0.1
    want = _trl_dpo_loss(loss_type, pairs, lengths, beta)
    c, r = ratios(pairs)
    if loss_type in L.LENGTH_AVERAGED:
        c, r = c / lengths[:BATCH], r / lengths[BATCH:]
    got = L.preference_loss(loss_type, c, r, beta=beta).mean().item()
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothed_sigmoid_matches_trl_cdpo_form(pairs, eps):
    """trl's CPO `sigmoid` loss is the cDPO form on (chosen − rejected); fed log-ratios it is DPO's."""
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
    stand_in = SimpleNamespace(alpha=0.0, loss_type="sigmoid", beta=0.1, label_smoothing=eps, simpo_gamma=0.0,
                               accelerator=_accelerator())
    c, r = ratios(pairs)
    want, _, _ = cpo.CPOTrainer.cpo_loss(stand_in, c, r)
    assert torch.allclose(L.dpo_sigmoid_loss(c, r, 0.1, eps), want, rtol=1e-12)


def test_orpo_matches_trl(averages):
    orpo = pytest.importorskip("trl.experimental.orpo.orpo_trainer")
    stand_in = SimpleNamespace(beta=0.2, accelerator=_accelerator())
    c, r = averages
    trl_terms, _, _, _, _ = orpo.ORPOTrainer.odds_ratio_loss(stand_in, c, r)  # = β·log σ(log odds ratio)
    trl_terms = trl_terms.double()  # trl computes in float32
    assert torch.allclose(-0.2 * L.odds_ratio_loss(c, r), trl_terms, rtol=1e-6)
    # trl's total is nll − mean(terms); per example, with nll = −average chosen log-prob, that is ours
    assert torch.allclose(L.orpo_loss(c, r, 0.2), -c - trl_terms, rtol=1e-6)


def test_simpo_matches_trl(averages):
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
    stand_in = SimpleNamespace(alpha=0.0, loss_type="simpo", beta=2.0, label_smoothing=0.0, simpo_gamma=0.5,
                               accelerator=_accelerator())
    c, r = averages
    want, _, _ = cpo.CPOTrainer.cpo_loss(stand_in, c, r)
    assert torch.allclose(L.simpo_loss(c, r, 2.0, 0.5), want, rtol=1e-12)


def test_kto_matches_trl(pairs):
    """trl.KTOTrainer._compute_loss on a stand-in trainer (the loss is inline there in trl 1.x)."""
    trl_kto = pytest.importorskip("trl.trainer.kto_trainer")
    tags = torch.tensor([True, False, True, True, False, False])
    logps, ref_logps = pairs["pc"], pairs["rc"]
    kl_logps, ref_kl_logps = pairs["pr"] / 2, pairs["rr"] / 2 - 1.0  # a positive KL estimate
    width = 6
    completion = torch.zeros(BATCH, width, dtype=torch.long)
    completion[:, 2:] = 1
    shifted = completion[:, 1:].double()
    table = {i: t for i, t in enumerate(_token_split(logps, shifted))}
    table.update({100 + i: t for i, t in enumerate(_token_split(kl_logps, shifted))})
    ids = torch.arange(BATCH)[:, None].repeat(1, width)
    stand_in = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=_accelerator(), aux_loss_enabled=False, calculate_KL=True,
        precompute_ref_logps=True, loss_type="kto", beta=0.1, desirable_weight=1.0, undesirable_weight=1.3,
        _metrics={"train": __import__("collections").defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )
    stand_in._compute_kl_logps = lambda model, batch: trl_kto.KTOTrainer._compute_kl_logps(stand_in, model, batch)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion,
             "KL_input_ids": ids + 100, "KL_attention_mask": torch.ones_like(ids), "KL_completion_mask": completion,
             "label": tags.long(), "ref_logps": ref_logps, "ref_KL_logps": ref_kl_logps}
    want = float(trl_kto.KTOTrainer._compute_loss(stand_in, _fake_lm(table), batch, return_outputs=False))
    kl = L.kto_kl_estimate(kl_logps, ref_kl_logps)
    assert kl.item() > 0
    r = logps - ref_logps
    got = L.kto_loss(r[tags], r[~tags], kl, 0.1, 1.0, 1.3).mean().item()
    assert got == pytest.approx(want, rel=1e-9)
