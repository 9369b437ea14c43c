"""The launcher's decisions and command line, without starting any process."""

from __future__ import annotations

import sys

import pytest

from tunelab.cli import cmd_train
from tunelab.errors import UserError
from tunelab.train import launch
from tunelab.train.launch import (
    LaunchPlan,
    inside_launcher,
    plan_launch,
    split_launch_flags,
    torchrun_command,
)


def test_split_launch_flags_takes_every_spelling_and_keeps_the_rest_in_order():
    argv = ["cfg.yaml", "--nproc_per_node", "2", "learning_rate=1e-4", "--nnodes=2", "node_rank=1",
            "--output_dir", "out", "--master_addr", "10.0.0.1", "--master_port=29501"]
    flags, rest = split_launch_flags(argv)
    assert flags == {"nproc_per_node": "2", "nnodes": "2", "node_rank": "1", "master_addr": "10.0.0.1",
                     "master_port": "29501"}
    assert rest == ["cfg.yaml", "learning_rate=1e-4", "--output_dir", "out"]


def test_split_launch_flags_leaves_lookalikes_alone_and_refuses_a_missing_value():
    flags, rest = split_launch_flags(["nproc_per_node", "--dataset", "nnodes_demo"])
    assert flags == {} and rest == ["nproc_per_node", "--dataset", "nnodes_demo"]
    with pytest.raises(UserError, match="--nnodes needs a value"):
        split_launch_flags(["cfg.yaml", "--nnodes"])


@pytest.mark.parametrize("env", [{"LOCAL_RANK": "0"}, {"WORLD_SIZE": "4"}, {"TORCHELASTIC_RUN_ID": "x"},
                                 {"ACCELERATE_MIXED_PRECISION": "no"}])
def test_inside_a_launcher_nothing_is_relaunched(env):
    assert inside_launcher(env)
    assert plan_launch({"nproc_per_node": "8"}, {**env, "FORCE_TORCHRUN": "1"}, gpu_count=8) is None


def test_one_device_trains_in_process():
    assert not inside_launcher({"WORLD_SIZE": "1"})
    assert plan_launch({}, {}, gpu_count=0) is None
    assert plan_launch({}, {}, gpu_count=1) is None
    # MASTER_ADDR / MASTER_PORT alone are only an address (schedulers set them for single jobs too)
    assert plan_launch({}, {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"}, gpu_count=1) is None


def test_several_gpus_launch_one_process_each_on_a_free_local_port():
    plan = plan_launch({}, {}, gpu_count=4)
    assert plan is not None
    assert (plan.nproc_per_node, plan.nnodes, plan.node_rank, plan.master_addr) == (4, 1, 0, "127.0.0.1")
    assert 1024 < plan.master_port < 65536 and plan.master_port != launch.DEFAULT_MASTER_PORT


def test_force_torchrun_and_nproc_per_node():
    plan = plan_launch({}, {"FORCE_TORCHRUN": "true", "MASTER_PORT": "4000"}, gpu_count=0)
    assert plan == LaunchPlan(1, 1, 0, "127.0.0.1", 4000)
    assert plan_launch({}, {"NPROC_PER_NODE": "3", "MASTER_PORT": "4000"}, 8) == LaunchPlan(3, 1, 0, "127.0.0.1", 4000)
    # a flag wins over the environment
    assert plan_launch({"nproc_per_node": "2"}, {"NPROC_PER_NODE": "3", "MASTER_PORT": "4000"}, 8).nproc_per_node == 2
    assert plan_launch({}, {"FORCE_TORCHRUN": "0"}, gpu_count=1) is None


def test_many_machines_from_the_anchors_environment_variables():
    env = {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29600"}
    assert plan_launch({}, env, gpu_count=8) == LaunchPlan(8, 2, 1, "node0", 29600)
    assert plan_launch({}, env, gpu_count=8).world_size == 16
    # the default port is torchrun's on many nodes (every node must agree without talking first)
    assert plan_launch({"nnodes": "2", "master_addr": "node0"}, {}, 1).master_port == 29500


@pytest.mark.parametrize(("flags", "env", "message"), [
    ({"nnodes": "2"}, {}, "needs the address of node 0"),
    ({"nnodes": "2", "node_rank": "2", "master_addr": "h"}, {}, "node_rank 2 is not below nnodes 2"),
    ({"nproc_per_node": "two"}, {}, "nproc_per_node: expected a whole number"),
    ({"nproc_per_node": "0"}, {}, "at least 1"),
    ({}, {"NNODES": "-1"}, "nnodes: expected a number >= 0"),
])  # fmt: skip
def test_bad_launch_settings_are_user_errors(flags, env, message):
    with pytest.raises(UserError, match=message):
        plan_launch(flags, env, gpu_count=1)


def test_torchrun_command_reruns_the_same_train_arguments():
    command = torchrun_command(LaunchPlan(2, 2, 1, "node0", 29600), ["cfg.yaml", "lr=1"], python="/py")
    assert command == ["/py", "-m", "torch.distributed.run", "--nnodes=2", "--node_rank=1", "--nproc_per_node=2",
                       "--master_addr=node0", "--master_port=29600", "-m", "tunelab.cli.main", "train", "cfg.yaml",
                       "lr=1"]
    assert torchrun_command(LaunchPlan(2), [])[0] == sys.executable


def test_rank_label_and_main_process():
    assert launch.rank_label({}) == "" and launch.is_main_process({})
    assert launch.rank_label({"RANK": "3", "WORLD_SIZE": "4"}) == "rank 3/4"
    assert not launch.is_main_process({"RANK": "3", "WORLD_SIZE": "4"})


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
                 "NPROC_PER_NODE", "FORCE_TORCHRUN", "TORCHELASTIC_RUN_ID", "ACCELERATE_MIXED_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(launch, "visible_gpu_count", lambda: 0)


def test_train_command_strips_the_flags_and_returns_torchruns_exit_code(clean_env, monkeypatch, tmp_path, tiny_qwen):
    seen: list[list[str]] = []
    monkeypatch.setattr(launch, "run_command", lambda command: seen.append(command) or 7)
    monkeypatch.setenv("MASTER_PORT", "4321")
    argv = ["--stage", "sft", "--do_train", "true", "--model_name_or_path", str(tiny_qwen), "--dataset", "identity",
            "--output_dir", str(tmp_path), "--nproc_per_node", "2"]
    assert cmd_train.main(argv) == 7
    (command,) = seen
    assert command[command.index("train") + 1:] == argv[:-2]
    assert "--nproc_per_node=2" in command and "--master_port=4321" in command


def test_a_config_error_stops_before_torchrun_starts(clean_env, monkeypatch):
    monkeypatch.setattr(launch, "run_command", lambda command: pytest.fail("torchrun must not start"))
    monkeypatch.setenv("FORCE_TORCHRUN", "1")
    with pytest.raises(UserError, match="unknown key 'learning_rat'"):
        cmd_train.main(["--stage", "sft", "--learning_rat", "1", "--nproc_per_node", "2"])


def test_every_problem_tunelab_check_finds_stops_before_torchrun(clean_env, monkeypatch, tmp_path):
    """Checked once in the launching process, as `tunelab check` checks (not once per rank)."""
    from tunelab.cli.cmd_check import find_all_problems
    from tunelab.config.parser import parse_config

    monkeypatch.setattr(launch, "run_command", lambda command: pytest.fail("torchrun must not start"))
    argv = ["--stage", "sft", "--do_train", "true", "--model_name_or_path", str(tmp_path / "missing"),
            "--dataset", "identiti", "--output_dir", str(tmp_path / "out")]
    with pytest.raises(UserError) as caught:
        cmd_train.main([*argv, "--nproc_per_node", "2"])
    assert caught.value.problems == find_all_problems(parse_config(argv), for_training=True, rows=False)
    assert len(caught.value.problems) == 2


def test_inside_a_worker_the_flags_are_ignored_with_a_warning(clean_env, monkeypatch, caplog):
    monkeypatch.setenv("LOCAL_RANK", "0")
    ran: list[list[str]] = []
    monkeypatch.setattr(cmd_train, "_train_in_worker", lambda argv: ran.append(argv) or 0)
    with caplog.at_level("WARNING", logger="tunelab.train"):
        assert cmd_train.main(["cfg.yaml", "--nproc_per_node", "4"]) == 0
    assert ran == [["cfg.yaml"]]
    assert "ignoring --nproc_per_node" in caplog.text
