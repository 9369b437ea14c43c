"""The other ways in: torchrun and `accelerate launch` run by hand start the same recipe (the launcher
sees their environment and does not re-launch), and a fatal error names every failing rank."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from _dist_helpers import losses, run, run_env, train_args, tunelab

from tunelab.train.launch import free_port

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch built without gloo")

# one optimizer step, 4 examples per process: the 8 examples of the one-process run's first batch
ONE_STEP = {"max_steps": 1, "per_device_train_batch_size": 4, "plot_loss": False}


@pytest.fixture
def one_process_first_loss(reference: Path) -> float:
    """The first step of the one-process batch-8 run (conftest) saw the same 8 examples."""
    return losses(reference)[0]


def test_torchrun_by_hand(tiny_qwen, tmp_path, one_process_first_loss):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", "-m", "tunelab.cli.main", "train",
               *train_args(tiny_qwen, tmp_path / "out", ddp_backend="gloo", **ONE_STEP)]
    done = run(command, run_env(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "launching" not in done.stderr  # already inside torchrun: no second launch
    assert losses(tmp_path / "out") == pytest.approx([one_process_first_loss], rel=1e-5)


@pytest.mark.skipif(shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists(),
                    reason="accelerate's launcher is not installed")
def test_accelerate_launch_by_hand(tiny_qwen, tmp_path, one_process_first_loss):
    # --multi_gpu is accelerate's name for "one process per device under torch.distributed.run"; with
    # use_cpu the devices are CPU processes on gloo
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes=2", "--num_machines=1",
               "--mixed_precision=no", "--dynamo_backend=no", "--main_process_ip=127.0.0.1",
               f"--main_process_port={free_port()}", "-m", "tunelab.cli.main", "train",
               *train_args(tiny_qwen, tmp_path / "out", **ONE_STEP)]
    done = run(command, run_env(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "launching" not in done.stderr
    assert losses(tmp_path / "out") == pytest.approx([one_process_first_loss], rel=1e-5)
    assert (done.stdout + done.stderr).count("training finished") == 1


def test_a_config_mistake_fails_once_before_the_launch(tiny_qwen, tmp_path):
    args = train_args(tiny_qwen, tmp_path / "out", dataset="no_such_data")
    done = run(tunelab("train", *args, "--nproc_per_node=2"), run_env(tmp_path, FORCE_TORCHRUN="1"), tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("unknown data set 'no_such_data'") == 1 and "launching" not in done.stderr
    assert "tunelab.errors.UserError" not in done.stderr  # a user's mistake is a message, not a traceback


def test_a_fatal_error_in_the_ranks_names_each_rank_and_fails_the_launch(tiny_qwen, tmp_path):
    """Rows are read by the ranks (not before the launch): a bad row fails every rank, each named."""
    import json

    (tmp_path / "bad.json").write_text(json.dumps([{"instruction": 5, "output": "x"}]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"bad": {"file_name": "bad.json"}}))
    args = train_args(tiny_qwen, tmp_path / "out", dataset="bad", dataset_dir=tmp_path)
    done = run(tunelab("train", *args, "--nproc_per_node=2"), run_env(tmp_path, FORCE_TORCHRUN="1"), tmp_path)
    assert done.returncode == 1
    for rank in (0, 1):
        assert f"tunelab train: error: [rank {rank}/2] " in done.stderr
    assert "bad.json:1: instruction" in done.stderr
    assert "torchrun exited with code 1" in done.stderr
    assert "tunelab.errors.UserError" not in done.stderr  # a user's mistake is a message, not a traceback
