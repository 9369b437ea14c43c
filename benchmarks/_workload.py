"""Where the reference workload's builder lives, and building a workload with it (shared by the scripts here).

`../shared/bench` beside the checkout; on the GPU machine, where `../shared` does not travel, a copy
inside the repo (`shared/bench` or `shared-bench`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_bench(given: str | Path | None = None) -> Path:
    """The folder holding make_workload.py and reference_sft_lora.yaml."""
    candidates = [Path(given)] if given else []
    candidates += [REPO.parent / "shared" / "bench", REPO / "shared" / "bench", REPO / "shared-bench"]
    for candidate in candidates:
        if (candidate / "make_workload.py").is_file():
            return candidate
    raise SystemExit("shared/bench/make_workload.py not found; pass --workload DIR (or --bench, a copy of shared/bench)")


def make_workload(folder: Path, sizes: str, n: int = 200, bench: Path | None = None) -> Path:
    """Build the workload (data, tokenizer, random-init models of `sizes`) into `folder`."""
    subprocess.run([sys.executable, str((bench or shared_bench()) / "make_workload.py"), str(folder), "--sizes", sizes,
                    "--n", str(n)], check=True, capture_output=True)
    return folder
