"""Test-only: loaded by every Python process of a distributed test run (PYTHONPATH), it records the
paths under $TUNELAB_TEST_AUDIT_WATCH that this rank opens for writing or renames, and writes them to
$TUNELAB_TEST_AUDIT_OUT/writes-rank<RANK>.json at exit. This is how the tests prove that only rank 0
writes the run's outputs."""

import atexit
import json
import os
import sys

_WATCH = os.environ.get("TUNELAB_TEST_AUDIT_WATCH")
_OUT = os.environ.get("TUNELAB_TEST_AUDIT_OUT")
_RANK = os.environ.get("RANK")

if _WATCH and _OUT and _RANK is not None:
    _writes: list[str] = []
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def _hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
            target = path
        elif event in ("os.rename", "os.replace"):
            writing, target = True, args[1]
        else:
            return
        if writing and isinstance(target, str | os.PathLike) and os.fspath(target).startswith(_WATCH):
            _writes.append(os.fspath(target))

    def _dump() -> None:
        with open(os.path.join(_OUT, f"writes-rank{_RANK}.json"), "w") as handle:
            json.dump(_writes, handle)

    sys.addaudithook(_hook)
    atexit.register(_dump)
