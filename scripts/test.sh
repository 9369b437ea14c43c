#!/usr/bin/env bash
# Set up a virtual environment in .venv (once) and run the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q torch==2.13.0          # the CPU build; a plain `torch` requirement could pull a CUDA build of several GB
pip install -q -e ".[dev]"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check src tests benchmarks
python -m pytest -q -p no:cacheprovider "$@"
