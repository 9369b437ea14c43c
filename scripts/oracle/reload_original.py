"""Loads an `export_format: original` export with the family's OWN code in an oracle environment and prints
its logits for the given ids (eval mode, float32) as JSON: the check that the original layout tunelab writes
is what the family's code reads. Run by tests/tutorials/test_legacy_families.py when .oracle/ exists:

    .oracle/tf-4.53.3/bin/python scripts/oracle/reload_original.py <family> <export_dir> '[1, 2, 3]'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def load(family: str, folder: Path):
    from transformers import AutoModelForCausalLM

    if family == "telechat2":  # its two CPU shims (see reference_telechat2.py)
        from reference_telechat2 import load_original

        return load_original(folder)
    return AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32)


def main() -> None:
    family, folder, ids = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    model = load(family, folder).float().eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    print(json.dumps(logits.tolist()))


if __name__ == "__main__":
    main()
