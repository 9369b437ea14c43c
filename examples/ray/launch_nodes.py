"""Start `tunelab train` on every node of a Ray cluster: one Ray task per node sets the anchor's
NNODES / NODE_RANK / MASTER_ADDR / MASTER_PORT and runs the same launcher, which starts torchrun
there. Ray only places the processes; torchrun's rendezvous and the training are unchanged.

    pip install "ray[default]"
    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python examples/ray/launch_nodes.py --nodes 2 --gpus-per-node 8 examples/train/qwen2.5_full_sft_ds3.yaml
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--gpus-per-node", type=int, required=True)
    parser.add_argument("--master-port", type=int, default=29500)
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="what follows `tunelab train`")
    options = parser.parse_args()
    try:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    except ImportError:
        print('this helper needs Ray: pip install "ray[default]"', file=sys.stderr)
        return 2

    ray.init()
    group = placement_group([{"CPU": 2, "GPU": options.gpus_per_node}] * options.nodes, strategy="STRICT_SPREAD")
    ray.get(group.ready())

    @ray.remote(num_cpus=1, num_gpus=options.gpus_per_node)
    def node(rank: int, master_addr: str) -> int:
        env = dict(os.environ, NNODES=str(options.nodes), NODE_RANK=str(rank), MASTER_ADDR=master_addr,
                   MASTER_PORT=str(options.master_port), NPROC_PER_NODE=str(options.gpus_per_node))
        return subprocess.call([sys.executable, "-m", "tunelab.cli.main", "train", *options.train_args], env=env)

    @ray.remote(num_cpus=1, num_gpus=0)
    def address() -> str:
        return ray.util.get_node_ip_address()

    def on(index: int) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=index)

    master = ray.get(address.options(scheduling_strategy=on(0)).remote())
    codes = ray.get([node.options(scheduling_strategy=on(i)).remote(i, master) for i in range(options.nodes)])
    print(f"exit codes per node: {codes}")
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
