"""The built-in check of an export: its logits must equal those of base + adapter on a few prompts.

Merging can go wrong silently (the anchor once exported the base weights unchanged), so every
export reloads what it wrote with plain `AutoModelForCausalLM` and compares next-token logits with
the reference: the base model with its adapters applied by peft. The tolerance follows the export
dtype (rounding the merged weights to bf16 moves logits a little); the report also prints how much
the adapter moves the logits, so a check that passes only because the adapter does nothing is visible.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.data.conversation import Message, Role
from tunelab.data.templates.base import Template
from tunelab.errors import UserError

logger = logging.getLogger("tunelab.export")

PROBE_CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    ("Hello! Who are you?",),
    ("Write a haiku about the sea.",),
    ("What is 17 * 23?", "17 * 23 = 391.", "And divided by 7?"),
)
PLAIN_PROBE = "The quick brown fox jumps over the lazy dog. 1, 2, 3, 4,"

# relative tolerance (of the largest reference logit) per export dtype
RELATIVE_TOLERANCE: dict[str, float] = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}


def probe_inputs(tokenizer: Any, template: Template | None) -> list[list[int]]:
    """Token ids of the probe prompts, as inference would build them (plus one plain-text prompt)."""
    from tunelab.data.encode import encode_prompt

    probes: list[list[int]] = []
    if template is not None:
        for turns in PROBE_CONVERSATIONS:
            roles = [Role.USER if i % 2 == 0 else Role.ASSISTANT for i in range(len(turns))]
            messages = [Message(role, text) for role, text in zip(roles, turns, strict=True)]
            probes.append(encode_prompt(tokenizer, template, messages))
    probes.append(tokenizer.encode(PLAIN_PROBE, add_special_tokens=True))
    return probes


def logits_of(model: Any, probes: list[list[int]]) -> list[Any]:
    """Float32 logits of every position of every probe, on the cpu."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for ids in probes:
            tensor = torch.tensor([ids], device=device)
            out.append(model(input_ids=tensor).logits[0].float().cpu())
    return out


@dataclass(frozen=True)
class Check:
    """Outcome of one comparison, in words a user can read."""

    max_error: float  # largest |exported - reference| logit
    adapter_effect: float  # largest |reference - base| logit: how much the adapters change the model
    tolerance: float
    top1_agreement: float  # share of positions whose most likely next token is the same
    positions: int

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance

    def describe(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        effect = (f"the adapters change them by up to {self.adapter_effect:.4g}" if self.adapter_effect > 0
                  else "the adapters do not change them (no adapter, or an untrained one)")
        return (f"export check {verdict}: over {self.positions} positions the exported model's logits differ from "
                f"base + adapters by at most {self.max_error:.4g} (tolerance {self.tolerance:.4g}); {effect}; "
                f"same top-1 token at {100 * self.top1_agreement:.1f}% of positions")


def compare(exported: list[Any], reference: list[Any], base: list[Any] | None, dtype_name: str) -> Check:
    """Compare exported logits with the reference; `base` (no adapters) measures the adapters' effect."""
    scale = max(float(r.abs().max()) for r in reference)
    tolerance = RELATIVE_TOLERANCE.get(dtype_name, 5e-2) * max(scale, 1.0)
    error = max(float((e - r).abs().max()) for e, r in zip(exported, reference, strict=True))
    effect = max(float((b - r).abs().max()) for b, r in zip(base, reference, strict=True)) if base is not None else 0.0
    same = sum(int((e.argmax(-1) == r.argmax(-1)).sum()) for e, r in zip(exported, reference, strict=True))
    total = sum(r.shape[0] for r in reference)
    return Check(max_error=error, adapter_effect=effect, tolerance=tolerance, top1_agreement=same / max(total, 1),
                 positions=total)


def require_pass(check: Check, where: str) -> None:
    """Log the check; a mismatch is an error that says what it means."""
    logger.info("%s", check.describe())
    if not check.passed:
        raise UserError(
            f"{check.describe()}.\nThe model in {where} does not compute what base + adapters compute: it is not a "
            "correct merge (wrong base model or adapter, a partial or stale export). Re-run `tunelab export`."
        )


def saved_chat_template(folder: Path) -> str | None:
    """The chat template an exported folder carries (chat_template.jinja, or tokenizer_config.json)."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(value, list):  # several named templates: transformers uses "default"
            value = next((t["template"] for t in value if t.get("name") == "default"), None)
        return value
    return None


def chat_template_check(original: Any, folder: Path) -> None:
    """The exported folder's chat template must render conversations exactly like the original tokenizer.

    Rendering uses the original tokenizer with the saved template text, which is what
    `AutoTokenizer.from_pretrained(folder)` would apply, without loading a second tokenizer.
    """
    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    own = getattr(original, "chat_template", None)
    if not own:
        return
    saved = saved_chat_template(folder)
    if not saved:
        raise UserError(f"the exported tokenizer in {folder} has no chat template, but the original has one")
    want = original.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    got = original.apply_chat_template(conversation, chat_template=saved, tokenize=False, add_generation_prompt=True)
    if want != got:
        raise UserError(f"the chat template saved in {folder} renders differently from the original tokenizer's")
    logger.info("export check: the exported chat template renders like the original's")
