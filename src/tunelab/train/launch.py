"""One launcher: `tunelab train` decides whether to re-run itself under torchrun.

Why: the anchor's users juggle four launch paths (`python`, `torchrun`, `accelerate launch`,
`deepspeed`) that differ in small ways. tunelab keeps one command: on one device it trains in this
process; with several visible GPUs, `nproc_per_node`, `FORCE_TORCHRUN=1` or a multi-node setting it
starts `python -m torch.distributed.run ... -m tunelab.cli.main train <same args>` and waits for it.
torchrun does the process management and rendezvous; this module only builds its command line
(DESIGN decision 9: no home-made distribution layer).

Inside a launched worker (torchrun, `accelerate launch`, `deepspeed` all set LOCAL_RANK / WORLD_SIZE)
nothing is re-launched, so hand-run launchers work as they always did.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# command-line flag -> the anchor's environment variable for the same value
LAUNCH_KEYS: dict[str, str] = {
    "nproc_per_node": "NPROC_PER_NODE",
    "nnodes": "NNODES",
    "node_rank": "NODE_RANK",
    "master_addr": "MASTER_ADDR",
    "master_port": "MASTER_PORT",
}
_TRUE = ("1", "true", "yes", "on")
DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class LaunchPlan:
    """How torchrun is to be started on this node."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def split_launch_flags(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Take the launcher's own flags out of argv, so the config parser never sees them.

    Accepts `--key value`, `--key=value` and `key=value` for the keys in LAUNCH_KEYS; every other
    argument is returned unchanged and in order.
    """
    flags: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, sep, value = arg.lstrip("-").partition("=")
        dashed = arg.startswith("--")
        if name in LAUNCH_KEYS and (dashed or sep):
            if not sep:
                if i + 1 >= len(argv):
                    from tunelab.errors import UserError

                    raise UserError(f"--{name} needs a value (e.g. --{name} 2).")
                value = argv[i + 1]
                i += 1
            flags[name] = value
        else:
            rest.append(arg)
        i += 1
    return flags, rest


def inside_launcher(env: Mapping[str, str]) -> bool:
    """True in a process started by torchrun / accelerate launch / deepspeed (never re-launch there).

    torchrun and deepspeed set LOCAL_RANK / WORLD_SIZE; `accelerate launch` with one process sets none of
    them but always exports ACCELERATE_MIXED_PRECISION: its user chose the layout, so we keep it.
    """
    return ("LOCAL_RANK" in env or "TORCHELASTIC_RUN_ID" in env or "ACCELERATE_MIXED_PRECISION" in env
            or int(env.get("WORLD_SIZE", "1") or 1) > 1)


def _int(name: str, raw: str) -> int:
    from tunelab.errors import UserError

    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name}: expected a whole number, got '{raw}'.") from None
    if value < 0:
        raise UserError(f"{name}: expected a number >= 0, got {value}.")
    return value


def plan_launch(flags: Mapping[str, str], env: Mapping[str, str], gpu_count: int) -> LaunchPlan | None:
    """Decide whether to launch torchrun, and with what; None means: train in this process.

    Flags win over the environment. torchrun is used when more than one GPU is visible, when
    FORCE_TORCHRUN is set, when nproc_per_node / nnodes / node_rank ask for it, or when any launch
    flag was given on the command line. MASTER_ADDR / MASTER_PORT alone do not trigger a launch:
    schedulers set them on single-process jobs too; they are only the rendezvous address.
    """
    if inside_launcher(env):
        return None
    from tunelab.errors import UserError

    def value(key: str) -> str | None:
        return flags.get(key) if key in flags else env.get(LAUNCH_KEYS[key]) or None

    nnodes = _int("nnodes", value("nnodes") or "1")
    node_rank = _int("node_rank", value("node_rank") or "0")
    force = env.get("FORCE_TORCHRUN", "").lower() in _TRUE
    explicit_nproc = value("nproc_per_node")
    nproc = _int("nproc_per_node", explicit_nproc) if explicit_nproc else max(gpu_count, 1)
    if nproc == 0 or nnodes == 0:
        raise UserError("nproc_per_node and nnodes must be at least 1.")
    if not (nproc > 1 or nnodes > 1 or node_rank > 0 or force or flags):
        return None
    if node_rank >= nnodes:
        raise UserError(f"node_rank {node_rank} is not below nnodes {nnodes} (ranks count from 0).")
    master_addr = value("master_addr")
    if nnodes > 1 and not master_addr:
        raise UserError("a multi-node run needs the address of node 0: set MASTER_ADDR (or --master_addr) to the "
                        "same host name or IP on every node.")
    port = value("master_port")
    if port:
        master_port = _int("master_port", port)
    else:
        master_port = DEFAULT_MASTER_PORT if nnodes > 1 else free_port()
    return LaunchPlan(nproc, nnodes, node_rank, master_addr or "127.0.0.1", master_port)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now, so two single-node runs on one machine do not collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def torchrun_command(plan: LaunchPlan, train_argv: Sequence[str], python: str | None = None) -> list[str]:
    """`python -m torch.distributed.run <plan> -m tunelab.cli.main train <train_argv>`."""
    return [
        python or sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={plan.nnodes}", f"--node_rank={plan.node_rank}", f"--nproc_per_node={plan.nproc_per_node}",
        f"--master_addr={plan.master_addr}", f"--master_port={plan.master_port}",
        "-m", "tunelab.cli.main", "train", *train_argv,
    ]  # fmt: skip


def run_command(command: Sequence[str]) -> int:
    """Run torchrun and return its exit code; SIGTERM sent to us is passed on so no worker is orphaned
    (SIGINT reaches the workers by itself: they share the terminal's process group)."""
    child = subprocess.Popen(list(command))

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # torchrun got the same SIGINT and stops its workers; wait for its exit code
    finally:
        signal.signal(signal.SIGTERM, previous)


def visible_gpu_count() -> int:
    """CUDA devices this process may use (CUDA_VISIBLE_DEVICES respected); 0 without torch CUDA."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def rank_label(env: Mapping[str, str] | None = None) -> str:
    """`rank R/W` inside a distributed worker, '' otherwise (prefixes fatal errors with their rank)."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1") or 1)
    return f"rank {env.get('RANK', '0')}/{world}" if world > 1 else ""


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """Global rank 0 (or no distributed launch at all)."""
    env = os.environ if env is None else env
    return int(env.get("RANK", "0") or 0) == 0


def quiet_other_ranks(env: Mapping[str, str] | None = None) -> None:
    """In a worker other than rank 0, tunelab logs warnings and errors only, each labelled with its rank:
    N copies of every info line hide the one line that matters."""
    import logging

    env = os.environ if env is None else env
    if is_main_process(env) or not rank_label(env):
        return
    root = logging.getLogger("tunelab")
    root.setLevel(logging.WARNING)
    for handler in root.handlers:
        if getattr(handler, "_tunelab", False):
            handler.setFormatter(logging.Formatter(f"[tunelab {rank_label(env)}] %(message)s"))
