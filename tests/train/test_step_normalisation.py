"""The pure pieces that make a step's loss independent of how the step is split (accumulation, processes):
each one computed over parts equals the same computation over the whole, in value and in gradient.
End to end: tests/distributed/test_accumulation_equivalence.py."""

from __future__ import annotations

import pytest
import torch

from tunelab.train.losses import preference as L
from tunelab.train.losses import rl as R
from tunelab.train.rl.seeded_sampling import PromptSeeds, SeededSampling
from tunelab.train.trainers.metrics import StepMetrics, means_of

SPLITS = [[8], [2, 2, 2, 2], [3, 1, 4], [1] * 8]


def parts(tensor: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    return list(torch.split(tensor, sizes))


@pytest.mark.parametrize("shift", [0.7, -0.7, 0.0], ids=["kl-positive", "kl-clamped", "policy-is-reference"])
@pytest.mark.parametrize("sizes", SPLITS, ids=str)
def test_kto_pair_over_parts_equals_kto_pair_over_the_whole(shift, sizes):
    g = torch.Generator().manual_seed(0)
    chosen = (torch.randn(8, generator=g, dtype=torch.float64) + shift) * (shift != 0)
    rejected = (torch.randn(8, generator=g, dtype=torch.float64) - shift) * (shift != 0)
    chosen.requires_grad_()
    rejected.requires_grad_()
    whole = L.kto_pair_loss(chosen, rejected, beta=0.4).mean()
    want = torch.autograd.grad(whole, (chosen, rejected))
    points = L.kto_pair_step_points(parts(chosen.detach(), sizes), parts(rejected.detach(), sizes), 0.4).double()
    split = sum(L.kto_pair_step_loss(c, r, 0.4, points).sum() for c, r in zip(parts(chosen, sizes),
                                                                            parts(rejected, sizes))) / 8
    got = torch.autograd.grad(split, (chosen, rejected))
    assert split.item() == pytest.approx(whole.item(), abs=1e-7)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    assert want[0].abs().max() > 0


def two_processes(work):
    """Runs work(rank, all_reduce) for ranks 0 and 1 in two threads whose all_reduce sums their tensors."""
    import threading

    barrier, slots, results = threading.Barrier(2), [None, None], [None, None]

    def all_reduce_for(rank):
        def all_reduce(t):
            slots[rank] = t
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()
            return total
        return all_reduce

    threads = [threading.Thread(target=lambda r=r: results.__setitem__(r, work(r, all_reduce_for(r))))
               for r in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_kto_pair_points_gather_every_process():
    """Two processes, each with its half of the step: the points of the whole, in both."""
    g = torch.Generator().manual_seed(1)
    chosen, rejected = torch.randn(8, generator=g) + 0.3, torch.randn(8, generator=g) + 0.3
    whole = L.kto_pair_step_points([chosen], [rejected], 0.4)
    halves = [slice(0, 4), slice(4, 8)]
    got = two_processes(lambda rank, reduce: L.kto_pair_step_points(
        parts(chosen[halves[rank]], [1, 3]), parts(rejected[halves[rank]], [1, 3]), 0.4, all_reduce=reduce))
    for points in got:
        torch.testing.assert_close(points, whole, rtol=1e-6, atol=1e-7)
    assert whole[0] > 0 and whole[2] != 0  # a KL point above the clamp, and its gradient weight


@pytest.mark.parametrize("shift_mean", [True, False])
def test_whiten_many_equals_whiten_of_the_whole(shift_mean):
    g = torch.Generator().manual_seed(2)
    values = torch.randn(6, 5, generator=g)
    mask = (torch.rand(6, 5, generator=g) > 0.3).float()
    want = R.whiten(values, mask, shift_mean=shift_mean)
    got = torch.cat(R.whiten_many(parts(values, [2, 3, 1]), parts(mask, [2, 3, 1]), shift_mean=shift_mean))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # batches of different widths (completions of different lengths) are whitened together too
    narrow = R.whiten_many([values[:3, :2], values[3:]], [mask[:3, :2], mask[3:]])
    joined = torch.cat((torch.nn.functional.pad(values[:3, :2], (0, 3)), values[3:]))
    joined_mask = torch.cat((torch.nn.functional.pad(mask[:3, :2], (0, 3)), mask[3:]))
    torch.testing.assert_close(torch.cat((torch.nn.functional.pad(narrow[0], (0, 3)), narrow[1])),
                               R.whiten(joined, joined_mask), rtol=1e-5, atol=1e-6)


def test_whiten_many_with_a_summing_all_reduce_uses_every_process():
    g = torch.Generator().manual_seed(3)
    values, mask = torch.randn(4, 6, generator=g), (torch.rand(4, 6, generator=g) > 0.2).float()
    want = R.whiten(values, mask)
    got = two_processes(lambda rank, reduce: R.whiten_many([values[2 * rank : 2 * rank + 2]],
                                                           [mask[2 * rank : 2 * rank + 2]], all_reduce=reduce))
    torch.testing.assert_close(torch.cat([got[0][0], got[1][0]]), want, rtol=1e-5, atol=1e-6)
    # a process without a batch still takes part (its statistics are zeros)
    alone = two_processes(lambda rank, reduce: R.whiten_many([values] if rank == 0 else [],
                                                             [mask] if rank == 0 else [], all_reduce=reduce))
    torch.testing.assert_close(alone[0][0], want, rtol=1e-5, atol=1e-6)
    assert alone[1] == []


def test_summed_rl_losses_divided_by_the_count_equal_the_means():
    g = torch.Generator().manual_seed(4)
    logps, old, ref = (torch.randn(4, 7, generator=g) * 0.1 for _ in range(3))
    mask = (torch.rand(4, 7, generator=g) > 0.2).float()
    advantages, values, returns = torch.randn(4, generator=g), torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    mean, _ = R.grpo_loss(logps, old, ref, advantages, mask)
    total, _ = R.grpo_loss(logps, old, ref, advantages, mask, reduction="sum")
    assert total.item() / 4 == pytest.approx(mean.item(), rel=1e-6)
    for loss in (R.clipped_policy_loss, R.clipped_value_loss):
        second = advantages[:, None].expand(4, 7) if loss is R.clipped_policy_loss else values
        third = old if loss is R.clipped_policy_loss else returns
        m, _ = loss(logps, third, second, mask) if loss is R.clipped_policy_loss else loss(values, logps, third, mask)
        s, _ = (loss(logps, third, second, mask, reduction="sum") if loss is R.clipped_policy_loss
                else loss(values, logps, third, mask, reduction="sum"))
        assert s.item() / mask.sum().item() == pytest.approx(m.item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown reduction"):
        R.grpo_loss(logps, old, ref, advantages, mask, reduction="max")


def test_seeded_sampling_draws_do_not_depend_on_the_batch():
    """A row's draw is a function of its seed and position: the same alone, in any batch, in any order."""
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(6, 50, generator=g)
    seeds = [11, 22, 33, 44, 55, 66]
    prompt = torch.zeros(6, 3, dtype=torch.long)
    together = SeededSampling(seeds, 3)(prompt, scores.clone()).argmax(-1)
    alone = torch.cat([SeededSampling([s], 3)(prompt[:1], scores[i:i + 1].clone()).argmax(-1)
                       for i, s in enumerate(seeds)])
    reversed_ = SeededSampling(seeds[::-1], 3)(prompt, scores.flip(0).clone()).argmax(-1).flip(0)
    assert torch.equal(together, alone) and torch.equal(together, reversed_)
    later = SeededSampling(seeds, 3)(torch.zeros(6, 4, dtype=torch.long), scores.clone()).argmax(-1)
    assert not torch.equal(later, together)  # the next position draws anew
    out = SeededSampling(seeds, 3)(prompt, scores.clone())
    assert (out.isfinite().sum(-1) == 1).all()  # greedy decoding emits exactly the draw


def test_seeded_sampling_follows_the_distribution():
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125, 0.0])
    scores = probs.log().expand(4000, 5).clone()
    drawn = SeededSampling(list(range(4000)), 0)(torch.zeros(4000, 0, dtype=torch.long), scores).argmax(-1)
    frequencies = torch.bincount(drawn, minlength=5).float() / 4000
    torch.testing.assert_close(frequencies, probs, atol=0.025, rtol=0)
    assert frequencies[4] == 0  # a token filtered out (-inf) is never drawn


def test_prompt_seeds_depend_on_prompt_step_and_place_not_on_padding():
    seeds = PromptSeeds(0)
    ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 1]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    first = seeds(0, "train", ids, mask, 2)
    assert len(first) == 4 and len(set(first)) == 4  # every completion of a group has its own seed
    again = seeds(0, "train", ids[:1], mask[:1], 2)
    assert again != first[:2]  # the same prompt again in the same step: other completions
    assert PromptSeeds(0)(0, "train", ids[:1], mask[:1], 2) == first[:2]  # another split of the step: the same
    unpadded = PromptSeeds(0)(0, "train", torch.tensor([[5, 6]]), torch.tensor([[1, 1]]), 2)
    assert unpadded == first[:2]  # padding does not count
    assert PromptSeeds(0)(1, "train", ids, mask, 2) != first  # another step draws anew
    assert PromptSeeds(0)(0, "eval", ids, mask, 2) != first  # evaluation draws its own
    assert PromptSeeds(1)(0, "train", ids, mask, 2) != first  # and so does another seed


def test_step_metrics_weigh_every_element_and_every_process():
    a, b = StepMetrics(), StepMetrics()
    a.add("train", {"accuracy": torch.tensor([1.0, 0.0, 1.0]), "kl": 0.5})
    a.add("train", {"accuracy": torch.tensor([1.0]), "kl": 0.1})
    b.add("train", {"accuracy": torch.tensor([0.0, 0.0, 0.0, 0.0]), "margin": None})
    assert means_of([a.pop_sums("train"), b.pop_sums("train")]) == {"accuracy": 3 / 8, "kl": 0.3}
    assert a.pop_means("train") == {}
