#!/usr/bin/env bash
# Mutation testing of the code that decides what is trained (issue #20, item 4; docs/testing.md).
#
#   scripts/mutation.sh MODULE [--before]
#
# MODULE: batching | truncation | labels | preference | rl  (mutmut's mutants of that module)
#         handwritten  (the statement deletions mutmut does not generate, listed below)
#         all          (each of the above, one after the other)
# --before: without tests/core/ (the tests written to kill mutants), to measure what the rest catches.
#
# mutmut (installed into .venv on first use: pip install mutmut==3.8.1) is configured by setup.cfg's [mutmut]
# section: what is mutated and the fast tests it runs. This script runs it in a scratch copy of src/
# and tests/ ($MUTATION_DIR, default /tmp/tunelab-mutation), so the working tree gets no mutants/
# folder and edits made meanwhile do not mix into a run; one worker (--max-children 1) on one torch
# thread; a summary per module at the end. Not part of CI: a module takes 4-9 minutes of one core.
set -euo pipefail
# the whole script is one function, read before it runs: editing the file meanwhile cannot derail a run
main() {

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${MUTATION_DIR:-${TMPDIR:-/tmp}/tunelab-mutation}"
MUTMUT="${MUTMUT:-$ROOT/.venv/bin/mutmut}"
[[ -x "$MUTMUT" ]] || "$ROOT/.venv/bin/pip" install -q mutmut==3.8.1  # a tool of this script, not of the test suite
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SHARED="${TUNELAB_SHARED:-$(cd "$ROOT/.." && pwd)/shared}"  # tokenizer fixtures, found as ../shared by the tests

module="${1:-}"
before=0
[[ "${2:-}" == "--before" ]] && before=1

# the mutants of each module: mutmut names them <module>.x_<function>__mutmut_<n> (methods: xǁClassǁmethod)
globs_of() {
  case "$1" in
    batching) echo "tunelab.data.batching.*" ;;
    truncation) echo "tunelab.data.encode_truncate.*" ;;
    # encode.py: the label rules only (rendering, prompts and stop tokens are not what decides training)
    labels) echo "tunelab.data.encode.x__labels__* tunelab.data.encode.x_encode_supervised__*" \
                 "tunelab.data.encode.x_encode_pairwise__* tunelab.data.encode.x_encode_kto__*" \
                 "tunelab.data.encode.x_trained_tokens__*" ;;
    preference) echo "tunelab.train.losses.preference.*" ;;
    rl) echo "tunelab.train.losses.rl.*" ;;
    *) return 1 ;;
  esac
}

if [[ "$module" == "all" ]]; then
  for m in batching truncation labels preference rl handwritten; do
    "$0" "$m" "${@:2}"
  done
  exit 0
fi
if [[ "$module" != "handwritten" ]] && ! globs_of "$module" >/dev/null; then
  echo "usage: scripts/mutation.sh batching|truncation|labels|preference|rl|handwritten|all [--before]" >&2
  exit 2
fi
[[ -x "$MUTMUT" ]] || { echo "mutmut not found at $MUTMUT: pip install mutmut==3.8.1" >&2; exit 2; }

copy="$WORK/repo"
rm -rf "$copy"
mkdir -p "$copy"
cp -r "$ROOT/src" "$ROOT/tests" "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$copy/"
find "$copy" -name __pycache__ -type d -prune -exec rm -rf {} +
ln -s "$SHARED" "$copy/shared"  # mutmut runs the tests from mutants/, whose ../shared is this link
ln -sfn "$SHARED" "$WORK/shared"  # and the hand-written mutants from the copy itself
if (( before )); then
  rm -rf "$copy/tests/core"
  "$PYTHON" - "$copy/setup.cfg" <<'EOF'
import sys
from pathlib import Path
path = Path(sys.argv[1])
path.write_text("".join(line for line in path.read_text().splitlines(True) if line.strip() != "tests/core/"))
EOF
fi

cd "$copy"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1

if [[ "$module" == "handwritten" ]]; then
  # Deletions of one rule each, applied to the copy one at a time; each must make the fast tests fail.
  PYTHONPATH="$copy/src" "$PYTHON" - <<'EOF'
import configparser
import shutil
import subprocess
import sys
from pathlib import Path

MUTANTS = [  # (name, file under src/tunelab, the rule's code, the code without the rule)
    ("first label of a packed example not ignored (issue #20)", "data/batching.py",
     '            labels.append(IGNORE_INDEX)\n            labels.extend(example["labels"][1:])\n',
     '            labels.extend(example["labels"])\n'),
    ("position ids do not restart in a packed row", "data/batching.py",
     "= torch.arange(seg_len)", "= torch.arange(start, start + seg_len)"),
    ("sequence index not written", "data/batching.py",
     "            sequence_index[row, start : start + lengths[index]] = index\n", ""),
    ("text after a cut last answer kept", "data/encode_truncate.py",
     "            kept = {n: part for n, part in kept.items() if n <= last_answer}\n", "            pass\n"),
    ("a turn whose answer was cut to nothing kept", "data/encode_truncate.py",
     "        if response and not cut_response:\n            break\n", ""),
    ("a markup unit split by the cut kept", "data/encode_truncate.py",
     "        while result and result[-1].unit == unit:\n            result.pop()\n", "        pass\n"),
    ("train_on_prompt ignored", "data/encode.py",
     "    if train_on_prompt:\n        return [token.id for token in tokens]\n", ""),
    ("mask_history ignored", "data/encode.py",
     " and (not last_turn_only or token.turn == last)", ""),
    ("position 0 counted as a trained token", "data/encode.py",
     'encoded["labels"][1:])', 'encoded["labels"])'),
    ("KTO trains every answer", "data/encode.py", "        mask_history=True,\n", ""),
    ("pair truncation without the longer answer's share", "data/encode.py", ", response_len=longest", ""),
    ("cDPO smoothing term dropped", "train/losses/preference.py",
     " - label_smoothing * F.logsigmoid(-beta * h)", ""),
    ("KTO KL reference point not clamped at 0", "train/losses/preference.py",
     "(policy_kl_logps - reference_kl_logps).mean().clamp(min=0).detach()",
     "(policy_kl_logps - reference_kl_logps).mean().detach()"),
    ("KTO KL reference point not detached", "train/losses/preference.py",
     "(policy_kl_logps - reference_kl_logps).mean().clamp(min=0).detach()",
     "(policy_kl_logps - reference_kl_logps).mean().clamp(min=0)"),
    ("whitened padding not zeroed", "train/losses/rl.py",
     "    return out * mask.to(values.dtype)\n", "    return out\n"),
    ("GRPO KL penalty dropped", "train/losses/rl.py", "        per_token = per_token + beta * kl\n", ""),
]

config = configparser.ConfigParser()
config.read("setup.cfg")
tests = [t for t in config.get("mutmut", "pytest_add_cli_args_test_selection").split("\n") if t]
src = Path("src/tunelab")
where = subprocess.run([sys.executable, "-c", "import tunelab; print(tunelab.__file__)"], capture_output=True, text=True)
assert where.stdout.startswith(str(src.resolve())), f"tests would import {where.stdout.strip()}, not the copy"
survived = 0
for name, file, rule, without in MUTANTS:
    path = src / file
    original = path.read_text()
    if original.count(rule) != 1:
        print(f"  NOT APPLIED  {name}: the rule's code is not (once) in {file}; update scripts/mutation.sh")
        survived += 1
        continue
    path.write_text(original.replace(rule, without))
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                             capture_output=True, text=True)
    finally:
        path.write_text(original)
    if run.returncode == 1:
        failed = next((line for line in run.stdout.splitlines() if line.startswith("FAILED")), "")
        print(f"  killed       {name}: {failed[7:]}")
    else:
        survived += 1
        print(f"  {'SURVIVED' if run.returncode == 0 else f'ERROR rc={run.returncode}'}     {name}")
print(f"handwritten: {len(MUTANTS) - survived} killed, {survived} not killed, {len(MUTANTS)} total")
EOF
  exit 0
fi

read -r -a globs <<<"$(globs_of "$module")"
status=0
"$MUTMUT" run --max-children 1 "${globs[@]}" >"$WORK/$module.log" 2>&1 || status=$?
"$MUTMUT" results --all true >"$WORK/$module.results" 2>&1 || true

"$PYTHON" - "$module" "$WORK/$module.results" "${globs[@]}" <<'EOF'
import fnmatch
import sys
from collections import Counter

module, results, globs = sys.argv[1], sys.argv[2], sys.argv[3:]
statuses = {}
for line in open(results, encoding="utf-8"):
    name, _, status = line.strip().rpartition(": ")
    if name and any(fnmatch.fnmatch(name, g) for g in globs):
        statuses[name] = status
counts = Counter(statuses.values())
total = len(statuses)
killed = counts["killed"] + counts["timeout"]
print(f"{module}: {killed} killed, {total - killed} not killed, {total} total "
      f"({100 * killed / max(total, 1):.1f}%) {dict(counts)}")
for name, status in sorted(statuses.items()):
    if status not in ("killed", "timeout"):
        print(f"    {status}: {name}")
EOF
if (( status != 0 )); then
  echo "mutmut exited with $status: see $WORK/$module.log" >&2
  exit "$status"
fi
echo "diff of a mutant: cd $copy && $MUTMUT show NAME"
}
main "$@"
exit
