"""`tunelab train cfg.yaml [key=value ...] [--key value ...]`: fine-tune a model.

The launch step comes first: with several GPUs (or nproc_per_node / nnodes / FORCE_TORCHRUN) this
command re-runs itself under torchrun (tunelab.train.launch) and returns torchrun's exit code;
otherwise, and inside every worker torchrun / accelerate launch / deepspeed start, it trains here.
"""

from __future__ import annotations

import logging
import os
import sys

USAGE = """usage: tunelab train CONFIG.yaml [key=value ...] [--key value ...]
       tunelab train --stage sft --do_train True --model_name_or_path PATH --dataset NAME ... --output_dir DIR

Fine-tune a model as the config says (stages pt and sft; finetuning_type full, freeze or lora).
Every key is listed in docs/config.md; `tunelab check` validates a config without loading weights.

Distributed (docs/distributed.md): several visible GPUs launch one process per GPU under torchrun.
  --nproc_per_node N   processes on this machine (env NPROC_PER_NODE; FORCE_TORCHRUN=1 forces torchrun)
  --nnodes N --node_rank R --master_addr HOST --master_port PORT
                       many machines (env NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT)"""

logger = logging.getLogger("tunelab.train")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.train.launch import inside_launcher, plan_launch, split_launch_flags, visible_gpu_count

    flags, train_argv = split_launch_flags(argv)
    if inside_launcher(os.environ):
        if flags:
            logger.warning("ignoring %s: this process was already started by a launcher (torchrun, accelerate "
                           "or deepspeed), which decided the process layout", ", ".join(f"--{k}" for k in flags))
        return _train_in_worker(train_argv)
    plan = plan_launch(flags, os.environ, visible_gpu_count())
    if plan is None:
        return _train(train_argv)
    return _launch(plan, train_argv)


def _launch(plan: object, train_argv: list[str]) -> int:
    """Check the config once here, as `tunelab check` does (every problem fails once with exit code 2,
    not once per rank), then torchrun."""
    from tunelab.cli.cmd_check import find_all_problems
    from tunelab.config.parser import parse_config
    from tunelab.errors import raise_problems
    from tunelab.train.launch import run_command, torchrun_command

    config = parse_config(train_argv)
    raise_problems(find_all_problems(config, for_training=True, rows=False), config.source_file)  # ranks read rows
    command = torchrun_command(plan, train_argv)  # type: ignore[arg-type]
    logger.info("launching %d processes (%d per node x %d nodes): %s", plan.world_size,  # type: ignore[attr-defined]
                plan.nproc_per_node, plan.nnodes, " ".join(command))  # type: ignore[attr-defined]
    code = run_command(command)
    if code != 0:
        print(f"tunelab train: torchrun exited with code {code}; the lines with [rank R/W] above name "
              "the rank that failed first (see docs/distributed.md, troubleshooting).", file=sys.stderr)
    return code


def _train(train_argv: list[str]) -> int:
    from tunelab.config.parser import parse_config
    from tunelab.train.launch import is_main_process
    from tunelab.train.recipe import run_training

    run = run_training(parse_config(train_argv))
    if is_main_process():
        print(f"training finished; outputs in {run.output_dir}")
    return 0


def _train_in_worker(train_argv: list[str]) -> int:
    """Train in a distributed worker: a fatal error names its rank, and torchrun records its traceback."""
    from torch.distributed.elastic.multiprocessing.errors import record

    from tunelab.errors import UserError
    from tunelab.train.launch import quiet_other_ranks, rank_label

    label = rank_label()
    quiet_other_ranks()
    user_errors: list[UserError] = []

    def train_or_keep_user_error(argv: list[str]) -> int:
        try:
            return _train(argv)
        except UserError as error:  # a message, not a crash: kept out of torchrun's traceback report
            user_errors.append(error)
            return error.exit_code

    try:
        code = int(record(train_or_keep_user_error)(train_argv))
    except BaseException as error:
        if label and not isinstance(error, KeyboardInterrupt | SystemExit):
            print(f"tunelab train: [{label}] fatal: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        raise
    if user_errors:
        error = user_errors[0]
        if label:
            error.message = f"[{label}] {error.message}"
        raise error
    return code
