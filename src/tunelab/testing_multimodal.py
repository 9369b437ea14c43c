"""Test kit: tiny random-initialised vision-language (and one audio-language) models of real architectures.

Multimodal tuning is tested end to end on folders that load like real checkpoints: `AutoConfig`, the
family's model class and `AutoProcessor` read them offline, and a training run can name one as
`model_name_or_path`. Each family is one row of `TINY_VLMS`; `build_tiny_vlm` writes it (config,
safetensors weights, tokenizer, processor config, chat template). All families share the real
Qwen2.5 tokenizer of `shared/fixtures/tokenizers/`, extended with the special tokens the family's
processor expects, so the processor's placeholder expansion and the model's "image features and image
tokens match" check count the same ids. The weights are random: these folders test plumbing
(placeholders, processors, shapes, gradients), never what a model says.

The embedding table is the Qwen2.5 vocabulary (~152k rows) at width 32, tied with the output layer, so
each folder holds about 20 MB of float32 weights (Qwen2-Audio, whose class does not tie, 39 MB); the
towers and projectors are 37k-110k parameters. Where torchvision is missing, the processors that hold a
video processor (Qwen-VL, InternVL) cannot be built, so the processor files are written directly, in
the layout `ProcessorMixin.save_pretrained` writes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tunelab.testing import fixture_tokenizer_path

# the language model of every family: as testing.TinyModelSpec (hidden 32, 2 layers, 4 heads, 2 kv heads)
LM: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}
# the vision / audio towers: as small as the language model
TOWER: dict[str, Any] = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}

# The official Gemma 3 chat template (google/gemma-3-*-it), byte for byte as TRL 1.16 keeps it in
# trl/chat_templates/gemma3.jinja (TRL is a test-only dependency, so the kit carries its own copy;
# tests/multimodal/test_tiny_vlms.py compares the two).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)


def _chatml_template(placeholder: str, part: str) -> str:
    """A minimal ChatML template that writes `placeholder` for each `{"type": part}` content part.

    Written here for the families whose official template is not shipped by any installed package
    (LLaVA-1.5, InternVL): Qwen2.5's turn markup, which the shared tokenizer's special tokens spell.
    """
    return (
        "{%- for message in messages -%}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['content'] is string -%}{{ message['content'] }}"
        "{%- else -%}{%- for content in message['content'] -%}"
        f"{{%- if content['type'] == '{part}' -%}}{{{{ '{placeholder}' }}}}"
        "{%- elif content['type'] == 'text' -%}{{ content['text'] }}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{ '<|im_end|>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
    )


def _shipped_template(name: str) -> Callable[[], str]:
    """An official template tunelab ships in resources/chat_templates/ (see data/templates/official_jinja.py)."""

    def read() -> str:
        path = resources.files("tunelab.resources").joinpath("chat_templates").joinpath(f"{name}.jinja")
        return path.read_text(encoding="utf-8")

    return read


def _qwen2_audio_template() -> str:
    """Qwen2-Audio-7B-Instruct's template, as transformers ships it (`Qwen2AudioProcessor.default_chat_template`)."""
    from transformers import Qwen2AudioProcessor

    return Qwen2AudioProcessor.default_chat_template.fget(None)


@dataclass(frozen=True)
class TinyVlmSpec:
    """One family: which transformers classes it is, how its tiny config and processor are made, and the
    placeholder its official chat template writes where the data says `<image>` / `<audio>`."""

    model_class: str  # the transformers class the weights are saved from (config.json's architectures)
    auto_class: str  # the class that loads the folder: AutoModelForImageTextToText, or the model class itself
    processor_class: str  # processor_config.json's processor_class
    modalities: tuple[str, ...]  # "image" or "audio"
    data_marker: str  # the marker a data set writes in text: "<image>" / "<audio>"
    placeholder: str  # what the official chat template writes for one image / audio part
    media_token: str  # the token the processor repeats, one per feature the tower outputs (the model's id)
    build_config: Callable[[Any], Any]  # the extended tokenizer -> the model's config (token ids read from it)
    build_feature_processor: Callable[[], Any]  # -> the image processor or feature extractor
    chat_template: Callable[[], str]
    chat_template_source: str
    # (tokenizer attribute, token): special tokens added to the Qwen2.5 tokenizer and the attribute the
    # family's processor reads them from (transformers' model-specific special tokens)
    tokenizer_attributes: tuple[tuple[str, str], ...] = ()
    extra_tokens: tuple[str, ...] = ()  # special tokens added without an attribute (chat markup)
    bos_token: str | None = None  # a BOS the official template writes ({{ bos_token }}), added as a token
    processor_kwargs: dict[str, Any] = field(default_factory=dict)  # the processor's own init keys
    # nested video processor config for processors that hold one (Qwen-VL, InternVL): transformers loads
    # such a processor only with torchvision installed, whatever the images need
    video_processor: dict[str, Any] | None = None
    # parameter-name prefixes the forward never reads, as in the real checkpoints (LLaVA takes the
    # penultimate CLIP layer: the last one and the final norm get no gradient; DDP must be told)
    unused_parameters: tuple[str, ...] = ()

    @property
    def needs_torchvision(self) -> bool:
        """AutoProcessor of this family loads only where torchvision is installed (its video processor)."""
        return self.video_processor is not None

    @property
    def added_tokens(self) -> tuple[str, ...]:
        """Every special token this family adds to the shared tokenizer; the new ones take ids from 151665 in
        this order ("</s>", a Qwen BPE piece already, keeps its id and becomes special)."""
        bos = (self.bos_token,) if self.bos_token else ()
        return tuple(token for _, token in self.tokenizer_attributes) + self.extra_tokens + bos


def _ids(tok: Any) -> dict[str, Any]:
    """Special ids of the text model, and a vocabulary that covers every added token."""
    return {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id}


def _tok_id(tok: Any, token: str) -> int:
    return tok.convert_tokens_to_ids(token)


def _qwen_vl_config(config_class: str, vision: dict[str, Any], text: dict[str, Any]) -> Callable[[Any], Any]:
    def build(tok: Any) -> Any:
        import transformers

        return getattr(transformers, config_class)(
            text_config={**LM, **_ids(tok), **text}, vision_config=vision, tie_word_embeddings=True,
            image_token_id=_tok_id(tok, "<|image_pad|>"), video_token_id=_tok_id(tok, "<|video_pad|>"),
            vision_start_token_id=_tok_id(tok, "<|vision_start|>"), vision_end_token_id=_tok_id(tok, "<|vision_end|>"),
        )

    return build


def _qwen_vl_images(patch_size: int, **normalisation: Any) -> Callable[[], Any]:
    """Qwen-VL's dynamic resolution, bounded to 2x2..4x4 merged tokens (one token per 2 x patch_size px)."""

    def build() -> Any:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        side = patch_size * 2
        return Qwen2VLImageProcessorPil(size={"shortest_edge": (2 * side) ** 2, "longest_edge": (4 * side) ** 2},
                                        patch_size=patch_size, merge_size=2, temporal_patch_size=2, **normalisation)

    return build


def _qwen_vl_video(video_processor_type: str, patch_size: int) -> dict[str, Any]:
    side = patch_size * 2
    return {"video_processor_type": video_processor_type, "patch_size": patch_size, "merge_size": 2,
            "temporal_patch_size": 2, "size": {"shortest_edge": (2 * side) ** 2, "longest_edge": (4 * side) ** 2}}


def _clip_vision(image_size: int) -> dict[str, Any]:
    return {"model_type": "clip_vision_model", **TOWER, "image_size": image_size, "patch_size": 14, "projection_dim": 32}


def _llava_config(config_class: str, text_type: str, **extra: Any) -> Callable[[Any], Any]:
    def build(tok: Any) -> Any:
        import transformers

        return getattr(transformers, config_class)(
            text_config={"model_type": text_type, **LM, **_ids(tok)}, vision_config=_clip_vision(LLAVA_IMAGE),
            image_token_index=tok.image_token_id, image_seq_length=(LLAVA_IMAGE // 14) ** 2,
            vision_feature_select_strategy="default", vision_feature_layer=-2, tie_word_embeddings=True, **extra,
        )

    return build


LLAVA_IMAGE = 28  # LLaVA's vision tower sees 28x28 crops: 2x2 patches of 14 px, 4 tokens (CLS dropped)
LLAVA_NEXT_PINPOINTS = [[28, 56], [56, 28], [56, 56]]  # anyres: up to 2x2 crops of 28 px beside the base image
GEMMA3_IMAGE = 56  # SigLIP at 56 px: 4x4 patches, average-pooled to 2x2 = mm_tokens_per_image 4
INTERNVL_IMAGE = 56  # InternViT at 56 px: 4x4 patches, pixel-shuffled (downsample 0.5) to 4 tokens per tile


def _llava_images() -> Any:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": LLAVA_IMAGE}, crop_size={"height": LLAVA_IMAGE, "width": LLAVA_IMAGE})


def _llava_next_images() -> Any:
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    return LlavaNextImageProcessorPil(size={"shortest_edge": LLAVA_IMAGE},
                                      crop_size={"height": LLAVA_IMAGE, "width": LLAVA_IMAGE},
                                      image_grid_pinpoints=LLAVA_NEXT_PINPOINTS)


def _gemma3_config(tok: Any) -> Any:
    from transformers import Gemma3Config

    text = {**LM, **_ids(tok), "head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 64,
            "layer_types": ["sliding_attention", "full_attention"]}
    vision = {"model_type": "siglip_vision_model", **TOWER, "image_size": GEMMA3_IMAGE, "patch_size": 14,
              "vision_use_head": False}  # as Gemma 3's own config: the pooling head is never used
    return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, tie_word_embeddings=True,
                        boi_token_index=tok.boi_token_id, eoi_token_index=tok.eoi_token_id,
                        image_token_index=tok.image_token_id)


def _gemma3_images() -> Any:
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    return Gemma3ImageProcessorPil(size={"height": GEMMA3_IMAGE, "width": GEMMA3_IMAGE}, do_pan_and_scan=False)


def _internvl_config(tok: Any) -> Any:
    from transformers import InternVLConfig

    vision = {"model_type": "internvl_vision", **TOWER, "image_size": INTERNVL_IMAGE, "patch_size": 14}
    return InternVLConfig(text_config={"model_type": "qwen2", **LM, **_ids(tok)}, vision_config=vision,
                          image_token_id=tok.context_image_token_id, image_seq_length=4, downsample_ratio=0.5,
                          tie_word_embeddings=True)


def _internvl_images() -> Any:
    """InternVL tiles images (crop_to_patches, which its processor turns on): at most 4 tiles plus a thumbnail."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    return GotOcr2ImageProcessorPil(size={"height": INTERNVL_IMAGE, "width": INTERNVL_IMAGE}, crop_to_patches=True,
                                    min_patches=1, max_patches=4)


AUDIO_SECONDS = 2  # the feature extractor pads every clip to 2 s (Qwen2-Audio: 30 s): 200 mel frames, 50 tokens


def _qwen2_audio_config(tok: Any) -> Any:
    from transformers import Qwen2AudioConfig

    audio = {"model_type": "qwen2_audio_encoder", "d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 4,
             "encoder_ffn_dim": 64, "num_mel_bins": 128, "max_source_positions": AUDIO_SECONDS * 50}
    # untied, as Qwen2-Audio-7B is: its class does not tie lm_head to the embeddings (twice the other sizes)
    text = {"model_type": "qwen2", **LM, **_ids(tok), "tie_word_embeddings": False}
    return Qwen2AudioConfig(audio_config=audio, text_config=text, audio_token_index=tok.audio_token_id,
                            tie_word_embeddings=False)


def _qwen2_audio_features() -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, n_fft=400,
                                   chunk_length=AUDIO_SECONDS, return_attention_mask=True)


_QWEN_VL = {"processor_kwargs": {}, "modalities": ("image",), "data_marker": "<image>",
            "placeholder": "<|vision_start|><|image_pad|><|vision_end|>",
            "media_token": "<|image_pad|>", "auto_class": "AutoModelForImageTextToText"}
_QWEN2_VL_VISION = {"depth": 2, "embed_dim": 32, "hidden_size": 32, "mlp_ratio": 2, "num_heads": 4, "patch_size": 14}
_QWEN2_5_VL_VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4, "out_hidden_size": 32,
                      "patch_size": 14, "window_size": 56, "fullatt_block_indexes": [1]}
_QWEN3_VL_VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4, "out_hidden_size": 32,
                    "patch_size": 16, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}
_MROPE = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 2]}  # sums to head_dim / 2
_LLAVA_PROCESSOR = {"patch_size": 14, "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1}
_CLIP_UNUSED = ("model.vision_tower.encoder.layers.1.", "model.vision_tower.post_layernorm.")  # vision_feature_layer -2
_TRL = "TRL 1.16 trl/chat_templates/"

TINY_VLMS: dict[str, TinyVlmSpec] = {
    "qwen2_vl": TinyVlmSpec(
        model_class="Qwen2VLForConditionalGeneration", processor_class="Qwen2VLProcessor", **_QWEN_VL,
        build_config=_qwen_vl_config("Qwen2VLConfig", _QWEN2_VL_VISION, {"rope_parameters": _MROPE}),
        build_feature_processor=_qwen_vl_images(14), video_processor=_qwen_vl_video("Qwen2VLVideoProcessor", 14),
        chat_template=_shipped_template("qwen2_vl"), chat_template_source="official: " + _TRL + "qwen2_5_vl.jinja"),
    "qwen2_5_vl": TinyVlmSpec(
        model_class="Qwen2_5_VLForConditionalGeneration", processor_class="Qwen2_5_VLProcessor", **_QWEN_VL,
        build_config=_qwen_vl_config("Qwen2_5_VLConfig", _QWEN2_5_VL_VISION, {"rope_parameters": _MROPE}),
        build_feature_processor=_qwen_vl_images(14), video_processor=_qwen_vl_video("Qwen2VLVideoProcessor", 14),
        chat_template=_shipped_template("qwen2_vl"), chat_template_source="official: " + _TRL + "qwen2_5_vl.jinja"),
    "qwen3_vl": TinyVlmSpec(
        model_class="Qwen3VLForConditionalGeneration", processor_class="Qwen3VLProcessor", **_QWEN_VL,
        build_config=_qwen_vl_config("Qwen3VLConfig", _QWEN3_VL_VISION, {
            "head_dim": 8, "rope_parameters": {**_MROPE, "mrope_section": [2, 1, 1], "mrope_interleaved": True}}),
        build_feature_processor=_qwen_vl_images(16, image_mean=[0.5] * 3, image_std=[0.5] * 3), video_processor=_qwen_vl_video("Qwen3VLVideoProcessor", 16),
        chat_template=_shipped_template("qwen3_vl_nothink"), chat_template_source="official: " + _TRL + "qwen3_vl.jinja"),
    "llava": TinyVlmSpec(
        model_class="LlavaForConditionalGeneration", auto_class="AutoModelForImageTextToText",
        processor_class="LlavaProcessor", modalities=("image",), data_marker="<image>", placeholder="<image>",
        media_token="<image>", build_config=_llava_config("LlavaConfig", "llama"),
        build_feature_processor=_llava_images, tokenizer_attributes=(("image_token", "<image>"),),
        processor_kwargs=_LLAVA_PROCESSOR, unused_parameters=_CLIP_UNUSED,
        chat_template=lambda: _chatml_template("<image>\\n", "image"),
        chat_template_source="minimal ChatML written in tunelab.testing_multimodal (llava-1.5's is not shipped)"),
    "llava_next": TinyVlmSpec(
        model_class="LlavaNextForConditionalGeneration", auto_class="AutoModelForImageTextToText",
        processor_class="LlavaNextProcessor", modalities=("image",), data_marker="<image>",
        placeholder="<image>",  # the template writes "<image>\n" before the text of the turn
        media_token="<image>",
        build_config=_llava_config("LlavaNextConfig", "mistral", image_grid_pinpoints=LLAVA_NEXT_PINPOINTS),
        build_feature_processor=_llava_next_images, tokenizer_attributes=(("image_token", "<image>"),),
        extra_tokens=("</s>",),  # written after answers by the template: Mistral's eos, made one token here
        processor_kwargs=_LLAVA_PROCESSOR, unused_parameters=_CLIP_UNUSED,
        chat_template=_shipped_template("llava_next_mistral"),
        chat_template_source="official (llava-hf/llava-v1.6-mistral-7b-hf): " + _TRL + "llava_next.jinja"),
    "gemma3": TinyVlmSpec(
        model_class="Gemma3ForConditionalGeneration", auto_class="AutoModelForImageTextToText",
        processor_class="Gemma3Processor", modalities=("image",), data_marker="<image>",
        placeholder="<start_of_image>", media_token="<image_soft_token>", build_config=_gemma3_config,
        build_feature_processor=_gemma3_images,
        tokenizer_attributes=(("boi_token", "<start_of_image>"), ("eoi_token", "<end_of_image>"),
                              ("image_token", "<image_soft_token>")),
        extra_tokens=("<start_of_turn>", "<end_of_turn>"), bos_token="<bos>", processor_kwargs={"image_seq_length": 4},
        chat_template=lambda: GEMMA3_CHAT_TEMPLATE, chat_template_source="official: " + _TRL + "gemma3.jinja"),
    "internvl": TinyVlmSpec(
        model_class="InternVLForConditionalGeneration", auto_class="AutoModelForImageTextToText",
        processor_class="InternVLProcessor", modalities=("image",), data_marker="<image>",
        placeholder="<IMG_CONTEXT>", media_token="<IMG_CONTEXT>", build_config=_internvl_config,
        build_feature_processor=_internvl_images,
        tokenizer_attributes=(("start_image_token", "<img>"), ("end_image_token", "</img>"),
                              ("context_image_token", "<IMG_CONTEXT>"), ("video_token", "<video>")),
        processor_kwargs={"image_seq_length": 4},
        video_processor={"video_processor_type": "InternVLVideoProcessor",
                         "size": {"height": INTERNVL_IMAGE, "width": INTERNVL_IMAGE}},
        chat_template=lambda: _chatml_template("<IMG_CONTEXT>\\n", "image"),
        chat_template_source="minimal ChatML written in tunelab.testing_multimodal (InternVL3-hf's is not shipped)"),
    "qwen2_audio": TinyVlmSpec(
        model_class="Qwen2AudioForConditionalGeneration", auto_class="Qwen2AudioForConditionalGeneration",
        processor_class="Qwen2AudioProcessor", modalities=("audio",), data_marker="<audio>",
        placeholder="<|audio_bos|><|AUDIO|><|audio_eos|>", media_token="<|AUDIO|>",
        build_config=_qwen2_audio_config, build_feature_processor=_qwen2_audio_features,
        tokenizer_attributes=(("audio_token", "<|AUDIO|>"), ("audio_bos_token", "<|audio_bos|>"),
                              ("audio_eos_token", "<|audio_eos|>")),
        chat_template=_qwen2_audio_template,
        chat_template_source="official: transformers' Qwen2AudioProcessor.default_chat_template"),
}


def tiny_vlm_tokenizer(family: str) -> Any:
    """The Qwen2.5 fixture tokenizer with `family`'s special tokens added and its chat template set."""
    from transformers import AutoTokenizer

    spec = _spec(family)
    tok = AutoTokenizer.from_pretrained(fixture_tokenizer_path("qwen2.5"),
                                        extra_special_tokens=dict(spec.tokenizer_attributes))
    tok.add_special_tokens({"additional_special_tokens": list(spec.extra_tokens)} if spec.extra_tokens else {})
    if spec.bos_token:
        tok.add_special_tokens({"bos_token": spec.bos_token})
    tok.chat_template = spec.chat_template()
    return tok


def init_tiny_vlm(family: str, config: Any, *, seed: int = 0) -> Any:
    """`family`'s model from `config` in float32, its weights a function of `seed` alone.

    transformers leaves some weight matrices at zero for real checkpoints to overwrite (Gemma 3's
    projector matrix, InternViT's class token and position embeddings); left so in a random model,
    Gemma 3 would not see its pictures at all (a zero projector passes no image and no gradient). Every
    such parameter of two or more dimensions is drawn from N(0, 0.02) instead; biases and Gemma's
    norm offsets (zero means a scale of one) stay as initialised."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, _spec(family).model_class)(config).to(torch.float32)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2 and not param.any():
                param.normal_(0.0, 0.02)
    return model


def build_tiny_vlm(family: str, folder: Path, *, seed: int = 0) -> Path:
    """Write `family`'s tiny model to `folder` and return it; the same seed writes the same weights.

    The processor's files are written as `ProcessorMixin.save_pretrained` lays them out (one
    processor_config.json nesting the image processor / feature extractor, chat_template.jinja), without
    building the processor: a processor that holds a video processor cannot be built without torchvision.
    """

    spec = _spec(family)
    tok = tiny_vlm_tokenizer(family)
    model = init_tiny_vlm(family, spec.build_config(tok), seed=seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    features = spec.build_feature_processor()
    kind = "feature_extractor" if "audio" in spec.modalities else "image_processor"
    processor_config: dict[str, Any] = {kind: json.loads(features.to_json_string()), **spec.processor_kwargs}
    if spec.video_processor is not None:
        processor_config["video_processor"] = spec.video_processor
    processor_config["processor_class"] = spec.processor_class
    (folder / "processor_config.json").write_text(json.dumps(processor_config, indent=2, sort_keys=True) + "\n",
                                                  encoding="utf-8")
    (folder / "chat_template.jinja").write_text(spec.chat_template(), encoding="utf-8")
    return folder


def tiny_vlm_path(family: str, cache_root: Path) -> Path:
    """`family`'s folder under `cache_root`, built on first use (tests pass a session-wide tmp dir).

    Built beside its place and renamed into it, so a folder that exists is complete, also when two test
    processes share `cache_root`."""
    folder = Path(cache_root) / family
    if not folder.is_dir():
        staging = build_tiny_vlm(family, Path(cache_root) / f".{family}.{os.getpid()}.partial")
        try:
            staging.rename(folder)
        except OSError:  # another process renamed its copy first: the same seed wrote the same files
            shutil.rmtree(staging)
    return folder


def _spec(family: str) -> TinyVlmSpec:
    if family not in TINY_VLMS:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(TINY_VLMS)}")
    return TINY_VLMS[family]
