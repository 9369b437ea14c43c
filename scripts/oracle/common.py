"""Shared by scripts/oracle/reference_<family>.py: these run in an oracle environment (transformers 4.x,
scripts/oracle/setup.sh), load a family's ORIGINAL checkpoint from ../shared/fixtures/legacy/<family> with its
own code, and write what the original computes into tests/fixtures/legacy_reference/<family>.json.

Only stdlib + torch + the oracle's transformers: this file must not import tunelab (which needs transformers 5).

What a model reference holds, for a fixed 40-token input (seeded ids) and the same input left-padded in a batch:
- `loss`: the causal-LM loss with labels = input ids (train mode, no dropout);
- `logsumexp`: per position, over the whole vocabulary (pins the full distribution without storing it);
- `logits`: per position, the logits at `columns` (every k-th vocabulary id plus the input ids);
- the same in eval mode (`eval_*`), where some families differ (long-context rope, cached ALiBi, NormHead);
- `padded_logits`: eval mode, batch of 2 (the input, and its tail left-padded by `pad`), non-pad positions.
Parity tests compare tunelab's native model with atol 1e-4 in float32.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT.parent / "shared" / "fixtures" / "legacy"
OUT = ROOT / "tests" / "fixtures" / "legacy_reference"
PROBES = json.loads((Path(__file__).with_name("probes.json")).read_text(encoding="utf-8"))


def fixture_copy(family: str) -> Path:
    """A private copy of the family's fixture folder (remote-code loading writes next to the files)."""
    target = Path(tempfile.mkdtemp(prefix=f"oracle-{family}-")) / family
    shutil.copytree(LEGACY / family, target)
    return target


def input_ids(vocab_size: int, low: int = 1000, high: int | None = None) -> list[int]:
    import torch

    generator = torch.Generator().manual_seed(PROBES["seed"])
    high = min(high or vocab_size, vocab_size)
    return torch.randint(low, high, (PROBES["seq_len"],), generator=generator).tolist()


def columns(vocab_size: int, ids: list[int], count: int = 97) -> list[int]:
    return sorted(set(range(0, vocab_size, max(1, vocab_size // count))) | set(ids))


def _forward(model: Any, ids: Any, mask: Any = None, labels: Any = None) -> Any:
    kwargs: dict[str, Any] = {"input_ids": ids, "return_dict": True}
    if mask is not None:
        kwargs["attention_mask"] = mask
    if labels is not None:
        kwargs["labels"] = labels
    return model(**kwargs)


def model_reference(model: Any, ids: list[int], vocab_size: int, forward: Any = None) -> dict[str, Any]:
    """The numbers above; `forward(model, ids, mask, labels)` overrides the plain call where a family needs it."""
    import torch

    forward = forward or _forward
    cols = columns(vocab_size, ids)
    x = torch.tensor([ids])
    result: dict[str, Any] = {"input_ids": ids, "columns": cols}
    with torch.no_grad():
        model.train()
        out = forward(model, x, None, x)
        logits = out.logits.float()[0]
        result.update(loss=float(out.loss), logsumexp=torch.logsumexp(logits, -1).tolist(),
                      logits=logits[:, cols].tolist())
        model.eval()
        out = forward(model, x, None, x)
        logits = out.logits.float()[0]
        result.update(eval_loss=float(out.loss), eval_logsumexp=torch.logsumexp(logits, -1).tolist(),
                      eval_logits=logits[:, cols].tolist())
        pad = PROBES["pad"]
        tail = ids[pad:]
        batch = torch.tensor([ids, [0] * pad + tail])
        mask = torch.tensor([[1] * len(ids), [0] * pad + [1] * len(tail)])
        out = forward(model, batch, mask, None)
        result.update(padded_pad=pad, padded_logits=[out.logits.float()[0][:, cols].tolist(),
                                                     out.logits.float()[1][pad:, cols].tolist()])
    return result


def write(family: str, reference: dict[str, Any]) -> Path:
    import torch
    import transformers

    reference = {"family": family, "transformers": transformers.__version__, "torch": torch.__version__,
                 "python": sys.version.split()[0], **reference}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{family}.json"
    path.write_text(json.dumps(reference, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return path
