"""Wall time of `tunelab --help` and `tunelab version` (target: under 0.5 s each).

Run: python benchmarks/cli_startup.py [repeats]. Prints the median and the slowest of the runs.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time


def time_command(argv: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    exe = shutil.which("tunelab")
    if exe is None:
        print("tunelab is not installed in this environment (pip install -e .)", file=sys.stderr)
        return 1
    for args in (["--help"], ["version"]):
        times = time_command([exe, *args], repeats)
        print(f"tunelab {' '.join(args):<8} median {statistics.median(times) * 1000:6.1f} ms, "
              f"max {max(times) * 1000:6.1f} ms over {repeats} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
