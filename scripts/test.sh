#!/usr/bin/env bash
# Set up a virtual environment in .venv (once) and run the linter and the whole test suite
# (with the small transformers-4.57 environment the export tokenizer test reads, built once).
set -euo pipefail
cd "$(dirname "$0")/.."
TUNELAB_EXTRAS=dev . scripts/_venv.sh
# the oldest transformers exported tokenizers are tested with (tests/export/test_export_tokenizer.py)
bash scripts/oracle/tf457_env.sh >/dev/null || echo "transformers 4.57 environment not built: its export test will skip"
ruff check src tests benchmarks
# one worker per core (pytest-xdist); a test file's tests stay on one worker, so its module fixtures (a trained
# run shared by many assertions) are built once
python -m pytest -q -p no:cacheprovider -n auto --dist loadfile "$@"
