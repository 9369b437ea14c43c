#!/usr/bin/env bash
# The transformers 4.x environment the export's tokenizer is checked against (issue 24 point 3): llama.cpp's
# convert_hf_to_gguf.py pins transformers 4.x, and many users still run 4.57. Tokenizers only, no torch
# (a few hundred MB less than the other oracle environments of setup.sh).
#   bash scripts/oracle/tf457_env.sh        # creates .oracle/tf-4.57.1/
# tests/export/test_export_tokenizer_tf4.py runs its python when present (or $TUNELAB_TF4_PYTHON), else skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
env=".oracle/tf-4.57.1"
if [ -x "$env/bin/python" ] && "$env/bin/python" -c "import transformers, tokenizers" 2>/dev/null; then
  echo "$env is ready"; exit 0
fi
python3 -m venv "$env"
"$env/bin/pip" install -q "transformers==4.57.1" tokenizers sentencepiece protobuf jinja2
echo "$env is ready"
