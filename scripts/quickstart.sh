#!/usr/bin/env bash
# Quick start, offline: set up .venv (once), fine-tune the built-in tiny model on the bundled
# identity data (about a minute on 2 CPU cores), then ask it one of the questions it learned.
set -euo pipefail
cd "$(dirname "$0")/.."
TUNELAB_EXTRAS= . scripts/_venv.sh
tunelab train examples/quickstart.yaml
echo "Who are you?" | tunelab chat examples/inference/quickstart.yaml
