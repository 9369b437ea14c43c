"""Two gloo processes under DDP train exactly like one process with twice the per-device batch.

Why the two runs see the same examples at every step: with `seed: 0` accelerate's seedable sampler
draws the same permutation of the 16 examples in every process, and its batch sharding hands batch
2k to rank 0 and batch 2k+1 to rank 1 (4 examples each), so optimizer step k uses exactly
permutation[8k : 8k+8], the 8 examples the one-process run puts in its batch k (also across the
epoch boundary at step 3: both reshuffle with the same seed). The losses agree because
`average_tokens_across_devices` (transformers' default) divides each rank's summed token loss by
the label tokens of the whole global batch, so DDP's gradient average equals the one-process
gradient. Padding differs (each rank pads to its own longest row) but padded positions are masked
and right of every real token, so they change nothing beyond float rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _dist_helpers import losses, run, run_env, train_args, tunelab, writes_by_rank
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch built without gloo")


@pytest.fixture(scope="module")
def launched(tiny_qwen: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """`tunelab train ... --nproc_per_node 2` with FORCE_TORCHRUN=1: the launcher starts torchrun."""
    tmp = tmp_path_factory.mktemp("two")
    out = tmp / "out"
    args = train_args(tiny_qwen, out, per_device_train_batch_size=4, ddp_backend="gloo")
    done = run(tunelab("train", *args, "--nproc_per_node", "2"), run_env(tmp, audit=out, FORCE_TORCHRUN="1"), tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, tmp, done.stdout + done.stderr


def test_two_processes_match_one_process_with_twice_the_batch(reference, launched, tiny_qwen):
    out, _, log = launched
    assert "launching 2 processes" in log and "--nproc_per_node=2" in log
    one, two = losses(reference), losses(out)
    assert len(one) == len(two) == 3
    assert two == pytest.approx(one, rel=1e-5, abs=1e-5)
    assert two[-1] < two[0]
    a, b = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    initial = load_file(tiny_qwen / "model.safetensors")
    assert all(not torch.equal(initial[n], a[n]) for n in a)  # every weight moved, so agreeing is not trivial
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert json.loads((out / "train_results.json").read_text())["num_input_tokens_seen"] == \
        json.loads((reference / "train_results.json").read_text())["num_input_tokens_seen"]


def test_only_rank_zero_writes_the_run_outputs(launched):
    out, tmp, log = launched
    # one set of outputs: one log line per step, one model, checkpoints with both ranks' RNG state
    records = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    assert sorted(p.name for p in out.glob("model*.safetensors")) == ["model.safetensors"]
    for name in ("tunelab_config.yaml", "tokenizer_config.json", "training_loss.png", "train_results.json"):
        assert (out / name).is_file(), name
    assert {p.name for p in (out / "checkpoint-2").glob("rng_state*")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert not any((out / ".tunelab-staging").glob("*")), "a checkpoint was left in the staging folder"
    assert log.count("training finished; outputs in") == 1
    assert log.count("loss curve saved to") == 1
    # the audit hook saw what each rank wrote under output_dir
    writes = writes_by_rank(tmp)
    assert set(writes) == {0, 1}
    # rank 1 writes its RNG state into each checkpoint (torch.save, which the hook does not see) and
    # output_dir's write probe; nothing else
    rank1 = {Path(p).name for p in writes[1] if not Path(p).is_dir()} - {p.name for p in out.glob(".tunelab-write-test-*")}
    assert {n for n in rank1 if not n.startswith(".tunelab-write-test-")} == set(), rank1
    assert any(p.endswith("tunelab_config.yaml") for p in writes[0])
