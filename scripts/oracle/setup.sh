#!/usr/bin/env bash
# The oracle environments of issue 25: the transformers 4.x versions the tutorials' remote-code families were
# written for, next to torch 2.13 (CPU). Tests never need them; scripts/oracle/reference_<family>.py run in
# them and write tests/fixtures/legacy_reference/<family>.json, which the parity tests read.
#   bash scripts/oracle/setup.sh            # creates .oracle/tf-<version>/ for every version below
# Which version runs which family (../shared/fixtures/legacy/NOTES.md):
#   4.53.3  qwen, baichuan2 models, yuan2, telechat2      4.41.2  chatglm3      4.33.3  the baichuan tokenizer
set -euo pipefail
cd "$(dirname "$0")/../.."
for version in 4.53.3 4.41.2 4.33.3; do
  env=".oracle/tf-$version"
  if [ -x "$env/bin/python" ] && "$env/bin/python" -c "import transformers" 2>/dev/null; then continue; fi
  python3 -m venv "$env"
  extra=""
  case "$version" in 4.53.3) extra="numpy";; *) extra="numpy<2";; esac
  "$env/bin/pip" install -q torch==2.13.0 "transformers==$version" "$extra" tiktoken einops \
    transformers_stream_generator sentencepiece protobuf accelerate safetensors
done
echo "oracle environments ready under .oracle/"
