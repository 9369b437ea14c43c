#!/usr/bin/env bash
# Set up a virtual environment in .venv (once) and run the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
TUNELAB_EXTRAS=dev . scripts/_venv.sh
ruff check src tests benchmarks
python -m pytest -q -p no:cacheprovider "$@"
