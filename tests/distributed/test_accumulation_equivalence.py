"""Every stage trains alike however an optimizer step's 8 examples are split: batch 8 × accumulation 1,
batch 2 × accumulation 4, and 2 gloo processes × batch 2 × accumulation 2 log the same losses and
end with the same weights, after two steps (pt, sft, rm, each dpo `pref_loss`, dpo + `pref_ftx`, dpo +
`pref_bco_weight`, kto, grpo, ppo). Also when the micro-batches differ in size (7 examples as 2 + 2 + 2 + 1).

The runs train full weights with plain SGD at a large learning rate and no gradient clipping
(`_accumulation_driver.COMMON`), so the weights after a step are the initial weights minus lr × the
gradient: a loss or gradient off by any factor, or computed on other samples, moves them elsewhere.
The second step starts from moved weights, so what is a statistic of the batch (kto's KL reference
point z0, kto_pair's KL points, BCO's reward shift, ppo's whitening and adaptive KL) is non-zero there
and checked too.
docs/training.md ("Accumulation and multi-process equivalence") gives the reasons stage by stage.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _accumulation_driver import CASES, LOSSES_FILE, run_case, trained_weights
from _dist_helpers import run, run_env
from safetensors.torch import load_file

from tunelab.train.launch import free_port

ALL_CASES = list(CASES)
UNEVEN_CASES = ["sft", "rm", "dpo_sigmoid", "kto", "grpo", "ppo"]  # one per way of normalising the loss
gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                          reason="torch built without gloo")

Result = tuple[dict[str, Any], dict[str, torch.Tensor]]


def case_keys(case: str, reward_model: Path) -> dict[str, Any]:
    return {"reward_model": reward_model} if case == "ppo" else {}


@pytest.fixture(scope="module")
def one_process(tiny_qwen: Path, reward_model: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Callable[..., Result]:
    """Runs a case in this process (one torch thread, a private cache), each configuration once per module."""
    done: dict[tuple[Any, ...], Result] = {}
    home = tmp_path_factory.mktemp("one-process")

    def train(case: str, batch: int, accumulation: int, **extra: Any) -> Result:
        key = (case, batch, accumulation, tuple(sorted(extra.items())))
        if key not in done:
            out = home / f"{case}-{batch}x{accumulation}-{len(done)}"
            threads = torch.get_num_threads()
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("TUNELAB_CACHE", str(home / "cache"))
                patch.chdir(home)
                torch.set_num_threads(1)
                try:
                    result = run_case(tiny_qwen, out, case, per_device_train_batch_size=batch,
                                      gradient_accumulation_steps=accumulation, **case_keys(case, reward_model),
                                      **extra)
                finally:
                    torch.set_num_threads(threads)
            done[key] = (result, trained_weights(out))
        return done[key]

    return train


def assert_same_training(got: Result, want: Result, initial: dict[str, torch.Tensor], steps: int = 2) -> None:
    (got_log, got_weights), (want_log, want_weights) = got, want
    assert len(want_log["losses"]) == steps
    assert got_log["losses"] == pytest.approx(want_log["losses"], rel=1e-5, abs=1e-5)
    assert got_log["tokens_seen"] == want_log["tokens_seen"] > 0
    assert got_weights.keys() == want_weights.keys()
    for name, weight in want_weights.items():
        torch.testing.assert_close(got_weights[name], weight, rtol=1e-4, atol=1e-5, msg=name)
    # agreeing is not trivial: every weight moved, and by far more than the tolerance
    moved = [(want_weights[name] - initial[name]).abs().max().item() for name in initial]
    assert min(moved) > 0, "a weight did not move"
    assert max(moved) > 1e-2


@pytest.fixture(scope="module")
def initial(tiny_qwen: Path) -> dict[str, torch.Tensor]:
    return load_file(str(tiny_qwen / "model.safetensors"))


@pytest.mark.parametrize("case", ALL_CASES)
def test_batch_8_equals_batch_2_with_4_accumulation_steps(case, one_process, initial):
    assert_same_training(one_process(case, 2, 4), one_process(case, 8, 1), initial)


@pytest.mark.parametrize("case", UNEVEN_CASES)
def test_uneven_micro_batches_weigh_every_example_alike(case, one_process, initial):
    """7 examples: one batch of 7, or micro-batches of 2, 2, 2 and 1 (a mean of micro-batch means would
    count the last example twice as much as the others)."""
    assert_same_training(one_process(case, 2, 4, max_samples=7, max_steps=1),
                         one_process(case, 8, 1, max_samples=7, max_steps=1), initial, steps=1)


def test_the_batch_statistics_are_exercised(one_process):
    """The second step's z0 / KL / advantages are not zero, so the equalities above cover them."""
    kto = one_process("kto", 8, 1)[0]["logs"]
    assert kto[0]["kl"] == 0 and kto[1]["kl"] > 0.01  # z0: policy == reference at step 1 only
    ppo = one_process("ppo", 8, 1)[0]["logs"]
    assert ppo[0]["kl"] == 0 and ppo[0]["reward_normalised"] == 0  # first rollout: KL 0, scores normalised
    assert ppo[1]["policy_loss"] != 0  # the second pass reuses the rollout: the ratio moved off 1
    grpo = one_process("grpo", 8, 1)[0]["logs"]
    assert all(line["reward_std"] > 0 for line in grpo)  # completions differ within groups: advantages ≠ 0
    for case in ("dpo_kto_pair", "dpo_bco"):
        assert one_process(case, 8, 1)[0]["logs"][1]["rewards/margins"] != 0, case  # log-ratios ≠ 0 at step 2


@pytest.fixture(scope="module")
def two_processes(tiny_qwen: Path, reward_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One torchrun launch (2 gloo processes) that trains every case with batch 2 × accumulation 2."""
    tmp = tmp_path_factory.mktemp("two-processes")
    specs = [case + (f":reward_model={reward_model}" if case == "ppo" else "") for case in ALL_CASES]
    driver = Path(__file__).with_name("_accumulation_driver.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", str(driver), str(tiny_qwen), str(tmp / "runs"), *specs]
    env = run_env(tmp, PYTHONPATH=os.pathsep.join(filter(None, (str(driver.parent), os.environ.get("PYTHONPATH")))))
    done = run(command, env, tmp, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return tmp / "runs"


@gloo
@pytest.mark.parametrize("case", ALL_CASES)
def test_two_processes_equal_one_process_with_the_whole_batch(case, two_processes, one_process, initial):
    out = two_processes / str(ALL_CASES.index(case))
    got = json.loads((out / LOSSES_FILE).read_text()), trained_weights(out)
    want = one_process(case, 8, 1)
    assert_same_training(got, want, initial)
    # the logged metrics are every process's, combined (not rank 0's alone)
    for got_line, want_line in zip(got[0]["logs"], want[0]["logs"], strict=True):
        for key in ("accuracy", "rewards/accuracies", "rewards/chosen", "kl", "reward", "reward_std"):
            if key in want_line:
                assert got_line[key] == pytest.approx(want_line[key], rel=1e-4, abs=1e-5), key
