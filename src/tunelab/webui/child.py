"""The first process of a board job: runs the `tunelab` command and records how it ended.

`python -m tunelab.webui.child RUN_DIR -- COMMAND...` is started by the board in a new session, so
the job and everything it starts share one process group that Abort can signal at once. This
wrapper stays for the job's lifetime only to write `tunelab_run.exit.json` (exit code, end time):
that file, not the page, is how a board started later learns how a run it did not launch ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXIT_FILE = "tunelab_run.exit.json"


def write_exit(run_dir: Path, exit_code: int, signalled: int | None) -> None:
    record = {"exit_code": exit_code, "end_time": time.time(), "signal": signalled}
    tmp = run_dir / (EXIT_FILE + ".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, run_dir / EXIT_FILE)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m tunelab.webui.child RUN_DIR -- COMMAND...", file=sys.stderr)
        return 2
    run_dir, command = Path(argv[0]), argv[2:]
    received: list[int] = []

    def note(signum: int, frame: object) -> None:
        # The whole group gets the signal; the job handles it (saves a checkpoint and stops).
        # This wrapper only waits for it, so the end is still recorded.
        received.append(signum)

    signal.signal(signal.SIGTERM, note)
    signal.signal(signal.SIGINT, note)
    process = subprocess.Popen(command)
    exit_code = process.wait()
    write_exit(run_dir, exit_code, received[0] if received else None)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
