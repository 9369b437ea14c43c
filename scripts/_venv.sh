# Sourced by quickstart.sh and test.sh: create .venv once, activate it, install torch's CPU build
# first (a plain `torch` requirement could pull a CUDA build of several GB), then tunelab with the
# extras given in $TUNELAB_EXTRAS.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q torch==2.13.0
pip install -q -e ".${TUNELAB_EXTRAS:+[$TUNELAB_EXTRAS]}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
