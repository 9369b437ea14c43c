#!/usr/bin/env bash
# Quick start, offline: set up .venv (once), fine-tune the built-in tiny model on the bundled
# identity data (about a minute on 2 CPU cores), then ask it one of the questions it learned.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q torch==2.13.0          # the CPU build; a plain `torch` requirement could pull a CUDA build of several GB
pip install -q -e .
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
tunelab train examples/quickstart.yaml
echo "Who are you?" | tunelab chat examples/inference/quickstart.yaml
