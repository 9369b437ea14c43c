"""THE MULTIMODAL FAMILY TABLE: what tunelab must know about a vision / audio language model family.

Everything else comes from transformers itself: the model class (`AutoModelForImageTextToText`, or
`AutoModelForMultimodalLM` for audio), the processor (`AutoProcessor`), how many tokens a picture becomes
(the processor's own `replace_image_token`, called through its `__call__`, is the only expansion tunelab
uses), and which tensors the forward pass takes (whatever the processor returns besides the text).
What is left is one frozen record per family:

- the text a data set's `<image>` / `<video>` / `<audio>` marker becomes before the processor expands it
  (each family's official chat template writes it: Qwen wraps the pad token in vision start / end);
- where its vision (or audio) tower, its projector and its language model sit, for the freeze keys and
  for keeping LoRA on the language model unless asked otherwise;
- whether its position scheme lets examples share a row (padding-free): Qwen's 3-D rope positions are
  computed per example, so they can; a 1-D position scheme with bidirectional image attention (Gemma 3)
  or tiles (LLaVA-NeXT, InternVL) is batched with padding.

Adding a family is adding one record to `FAMILIES` (and a tiny model in `testing_multimodal.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.data.media import MARKERS

#: the anchor's markers in data sets: one per image / video / audio file, in order
IMAGE, VIDEO, AUDIO = MARKERS["images"], MARKERS["videos"], MARKERS["audios"]  # the data's markers (data/media.py)

_QWEN_VISION = {IMAGE: "<|vision_start|><|image_pad|><|vision_end|>",
                VIDEO: "<|vision_start|><|video_pad|><|vision_end|>"}


@dataclass(frozen=True)
class MultimodalFamily:
    """One family of multimodal models, as tunelab trains them (see the module docstring)."""

    name: str
    model_types: tuple[str, ...]  # config.json's model_type values of the family
    placeholders: dict[str, str]  # data marker -> the text the processor expects (and expands) in its place
    tower: tuple[str, ...]  # parameter-name prefixes of the vision / audio encoder
    projector: tuple[str, ...]  # prefixes of what maps encoder features into the language model
    language: tuple[str, ...] = ("model.language_model", "lm_head")
    auto_class: str = "AutoModelForImageTextToText"
    padding_free: bool = False  # examples may share a row (positions computed per example)
    templates: tuple[str, ...] = ()  # the anchor's template names for the family
    notes: str = ""
    processor_keys: tuple[tuple[str, str], ...] = ()  # (tunelab key, the processor's keyword) the family reads

    @property
    def markers(self) -> tuple[str, ...]:
        """The data markers this family takes (`<image>`, `<video>`, `<audio>`)."""
        return tuple(self.placeholders)

    def component_of(self, parameter_name: str) -> str:
        """'projector', 'tower', 'language' or 'other' for a parameter name of the bare model (no peft prefix).

        The projector is tested first: Qwen's merger lives inside its vision tower's module."""
        for kind, prefixes in (("projector", self.projector), ("tower", self.tower), ("language", self.language)):
            if any(parameter_name == p or parameter_name.startswith(p + ".") for p in prefixes):
                return kind
        return "other"


FAMILIES: tuple[MultimodalFamily, ...] = (
    MultimodalFamily(
        "qwen2_vl", ("qwen2_vl",), _QWEN_VISION, tower=("model.visual",), projector=("model.visual.merger",),
        padding_free=True, templates=("qwen2_vl",),
    ),
    MultimodalFamily(
        "qwen2_5_vl", ("qwen2_5_vl",), _QWEN_VISION, tower=("model.visual",), projector=("model.visual.merger",),
        padding_free=True, templates=("qwen2_vl",),
    ),
    MultimodalFamily(
        "qwen3_vl", ("qwen3_vl", "qwen3_vl_moe"), _QWEN_VISION, tower=("model.visual",),
        projector=("model.visual.merger", "model.visual.deepstack_merger_list"), padding_free=True,
        templates=("qwen3_vl", "qwen3_vl_nothink"),
    ),
    MultimodalFamily(
        "llava", ("llava",), {IMAGE: IMAGE}, tower=("model.vision_tower",), projector=("model.multi_modal_projector",),
        templates=("llava",),
    ),
    MultimodalFamily(
        "llava_next", ("llava_next",), {IMAGE: IMAGE}, tower=("model.vision_tower",),
        projector=("model.multi_modal_projector", "model.image_newline"), templates=("llava_next",),
        notes="anyres tiles: one image is several crops",
    ),
    MultimodalFamily(
        "gemma3", ("gemma3",), {IMAGE: "<start_of_image>"}, tower=("model.vision_tower",),
        projector=("model.multi_modal_projector",), templates=("gemma3",),
        notes="image tokens attend to each other both ways (token_type_ids)",
        processor_keys=(("image_do_pan_and_scan", "do_pan_and_scan"),),
    ),
    MultimodalFamily(
        "internvl", ("internvl",), {IMAGE: "<IMG_CONTEXT>", VIDEO: VIDEO}, tower=("model.vision_tower",),
        projector=("model.multi_modal_projector",), templates=("intern_vl",),
        processor_keys=(("crop_to_patches", "crop_to_patches"),),
    ),
    MultimodalFamily(
        "qwen2_audio", ("qwen2_audio",), {AUDIO: "<|audio_bos|><|AUDIO|><|audio_eos|>"},
        tower=("model.audio_tower",), projector=("model.multi_modal_projector",), auto_class="AutoModelForMultimodalLM",
        templates=("qwen2_audio",),
    ),
)

_BY_MODEL_TYPE: dict[str, MultimodalFamily] = {t: family for family in FAMILIES for t in family.model_types}


def multimodal_family(model_type: str | None) -> MultimodalFamily | None:
    """The family of a config.json `model_type`, or None for a text-only (or unknown multimodal) model."""
    return _BY_MODEL_TYPE.get(model_type or "")


def multimodal_family_of_folder(path: str) -> MultimodalFamily | None:
    """The family of the model in a local folder (reads config.json only; None when it has none)."""
    import json
    from pathlib import Path

    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
    return multimodal_family(model_type)
