"""The built-in check of an export: its logits must equal those of base + adapter on a few prompts.

Merging can go wrong silently (the anchor once exported the base weights unchanged), so every
export reloads what it wrote with plain `AutoModelForCausalLM` and compares next-token logits with
the reference: the base model with its adapters applied by peft. The tolerance follows the export
dtype (rounding the merged weights to bf16 moves logits a little); the report also prints how much
the adapter moves the logits, so a check that passes only because the adapter does nothing is visible.

A multimodal model is checked on a picture prompt too (a sound for an audio model), built by its
processor as chat builds it: a merge that broke the vision tower or the projector shows there, and only
there. Its exported processor must load from the folder and process that prompt identically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.conversation import Message, Role
from tunelab.data.templates.base import Template
from tunelab.errors import UserError

if TYPE_CHECKING:
    from tunelab.data.encode_media import MediaEncoding
    from tunelab.model.multimodal import MultimodalFamily

logger = logging.getLogger("tunelab.export")

PROBE_CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    ("Hello! Who are you?",),
    ("Write a haiku about the sea.",),
    ("What is 17 * 23?", "17 * 23 = 391.", "And divided by 7?"),
)
PLAIN_PROBE = "The quick brown fox jumps over the lazy dog. 1, 2, 3, 4,"

# relative tolerance (of the largest reference logit) per export dtype
RELATIVE_TOLERANCE: dict[str, float] = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}


MEDIA_PROBE_TEXT = "Describe this in one sentence."


@dataclass(frozen=True)
class Probe:
    """One prompt of the check: its token ids and, for a picture (or sound) prompt, the processor's tensors."""

    ids: list[int]
    media: Mapping[str, Any] = field(default_factory=dict)


def probe_inputs(tokenizer: Any, template: Template | None, media: MediaEncoding | None = None) -> list[Probe]:
    """The probe prompts, as inference would build them: chat prompts, one plain text, and for a multimodal
    model one prompt with a picture (or a sound, for an audio model)."""
    from tunelab.data.encode import encode_prompt

    probes: list[Probe] = []
    if template is not None:
        for turns in PROBE_CONVERSATIONS:
            roles = [Role.USER if i % 2 == 0 else Role.ASSISTANT for i in range(len(turns))]
            messages = [Message(role, text) for role, text in zip(roles, turns, strict=True)]
            probes.append(Probe(encode_prompt(tokenizer, template, messages)))
    probes.append(Probe(tokenizer.encode(PLAIN_PROBE, add_special_tokens=True)))
    if media is not None:
        probes.append(media_probe(tokenizer, template, media))
    return probes


def probe_picture() -> Any:
    """A fixed 56 x 42 RGB picture (colour gradients): a few patches for any vision tower, no file needed."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:42, 0:56]
    pixels = np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def probe_sound(rate: int) -> Any:
    """Half a second of a 440 Hz tone at `rate`."""
    import numpy as np

    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32)


def media_probe(tokenizer: Any, template: Template | None, media: MediaEncoding) -> Probe:
    """The picture (or sound) prompt of a multimodal model: the chat prompt, or without a template the
    family's placeholder followed by text, processed by the model's own processor."""
    from tunelab.data.conversation import Example
    from tunelab.data.encode_media import MEDIA_INPUT_NAMES, encode_prompt_media
    from tunelab.data.media import MARKERS

    if MARKERS["images"] in media.placeholders:
        column, marker, item = "images", MARKERS["images"], probe_picture()
    else:
        column, marker, item = "audios", MARKERS["audios"], probe_sound(media.options.audio_sampling_rate)
    if template is not None:
        example = Example(messages=(Message(Role.USER, marker + MEDIA_PROBE_TEXT),), **{column: (item,)})
        ids, tensors = encode_prompt_media(tokenizer, template, example, media)
        return Probe(ids, tensors)
    argument = {"images": [item]} if column == "images" else {"audio": [item],
                                                               "sampling_rate": media.options.audio_sampling_rate}
    out = media.processor(text=[media.placeholders[marker] + MEDIA_PROBE_TEXT], return_tensors="pt", **argument)
    return Probe(out["input_ids"][0].tolist(), {k: v for k, v in out.items() if k in MEDIA_INPUT_NAMES})


def logits_of(model: Any, probes: list[Probe]) -> list[Any]:
    """Float32 logits of every position of every probe, on the cpu (media tensors on the model's device,
    floating ones in its dtype)."""
    import torch

    parameter = next(model.parameters())
    out = []
    with torch.no_grad():
        for probe in probes:
            tensor = torch.tensor([probe.ids], device=parameter.device)
            extra = {key: value.to(parameter.device, dtype=parameter.dtype) if value.is_floating_point()
                     else value.to(parameter.device) for key, value in probe.media.items()}
            out.append(model(input_ids=tensor, **extra).logits[0].float().cpu())
    return out


@dataclass(frozen=True)
class Check:
    """Outcome of one comparison, in words a user can read."""

    max_error: float  # largest |exported - reference| logit
    adapter_effect: float  # largest |reference - base| logit: how much the adapters change the model
    tolerance: float
    top1_agreement: float  # share of positions whose most likely next token is the same
    positions: int
    media_prompts: int = 0  # how many of the prompts carried a picture (or sound)

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance

    def describe(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        effect = (f"the adapters change them by up to {self.adapter_effect:.4g}" if self.adapter_effect > 0
                  else "the adapters do not change them (no adapter, or an untrained one)")
        prompts = f" (of which {self.media_prompts} with a picture or sound)" if self.media_prompts else ""
        return (f"export check {verdict}: over {self.positions} positions{prompts} the exported model's logits differ from "
                f"base + adapters by at most {self.max_error:.4g} (tolerance {self.tolerance:.4g}); {effect}; "
                f"same top-1 token at {100 * self.top1_agreement:.1f}% of positions")


def compare(exported: list[Any], reference: list[Any], base: list[Any] | None, dtype_name: str,
            media_prompts: int = 0) -> Check:
    """Compare exported logits with the reference; `base` (no adapters) measures the adapters' effect."""
    scale = max(float(r.abs().max()) for r in reference)
    tolerance = RELATIVE_TOLERANCE.get(dtype_name, 5e-2) * max(scale, 1.0)
    error = max(float((e - r).abs().max()) for e, r in zip(exported, reference, strict=True))
    effect = max(float((b - r).abs().max()) for b, r in zip(base, reference, strict=True)) if base is not None else 0.0
    same = sum(int((e.argmax(-1) == r.argmax(-1)).sum()) for e, r in zip(exported, reference, strict=True))
    total = sum(r.shape[0] for r in reference)
    return Check(max_error=error, adapter_effect=effect, tolerance=tolerance, top1_agreement=same / max(total, 1),
                 positions=total, media_prompts=media_prompts)


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


def processor_check(original: MediaEncoding, folder: Path, family: MultimodalFamily, probe: Probe,
                    tokenizer: Any, template: Template | None) -> None:
    """The exported processor must load from `folder` (as `AutoProcessor.from_pretrained` does) and turn the
    probe picture into the same ids and tensors as the original processor."""
    import dataclasses

    import torch

    from tunelab.model.processor import load_processor

    try:
        reloaded = load_processor(str(folder), family, {})
    except Exception as error:  # noqa: BLE001 - any failure to load is the export's fault, said in one line
        raise UserError(f"the processor saved in {folder} does not load ({type(error).__name__}: {error}); "
                        "re-run `tunelab export`.") from None
    reloaded.tokenizer = tokenizer  # the tokenizer files are checked on their own (chat_template_check)
    again = media_probe(tokenizer, template, dataclasses.replace(original, processor=reloaded))
    same = again.ids == probe.ids and set(again.media) == set(probe.media) and all(
        torch.equal(again.media[key], probe.media[key]) for key in probe.media)
    if not same:
        raise UserError(f"the processor saved in {folder} processes a picture differently from the base model's "
                        "(other sizes or normalisation); re-run `tunelab export`.")
    logger.info("export check: the exported %s loads and processes the probe like the original",
                type(reloaded).__name__)
