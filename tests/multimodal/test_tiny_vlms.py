"""The tiny multimodal test kit (tunelab/testing_multimodal.py): every family's folder loads offline as its
real transformers classes, its processor's expansion agrees with its model, it trains (finite loss and
gradients on both towers), and the same seed writes the same weights."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tunelab.testing import fixture_tokenizer_path
from tunelab.testing_multimodal import (
    GEMMA3_CHAT_TEMPLATE,
    TINY_VLMS,
    TinyVlmSpec,
    build_tiny_vlm,
    init_tiny_vlm,
    tiny_vlm_path,
)

FAMILIES = list(TINY_VLMS)
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
QWEN_VOCAB = 151665  # len() of the Qwen2.5 fixture tokenizer: every added token's id is at or past it

# tokens one 56x56 picture becomes in input_ids (the model's image token, counted)
TOKENS_OF_56PX = {
    "qwen2_vl": 4,  # 56x56 = 4x4 patches of 14, merged 2x2
    "qwen2_5_vl": 4,
    "qwen3_vl": 4,  # resized to 64x64 = 4x4 patches of 16, merged 2x2
    "llava": 4,  # cropped to 28x28 = 2x2 patches (CLS dropped)
    "llava_next": 24,  # base 2x2 + anyres 56x56 = 4x4, plus one newline per row of 4
    "gemma3": 4,  # mm_tokens_per_image
    "internvl": 4,  # one tile: 4x4 patches pixel-shuffled to 2x2
}
AUDIO_TOKENS_OF_1S = 25  # 100 mel frames, halved by the conv stride and by the pooling


def _processor(spec: TinyVlmSpec, folder: Path):
    """AutoProcessor; where torchvision is missing a processor that holds a video processor cannot load
    (asserted), and the same class without its video part reads the same files for images."""
    import transformers
    from transformers import AutoProcessor, AutoVideoProcessor

    if HAS_TORCHVISION or not spec.needs_torchvision:
        return AutoProcessor.from_pretrained(folder)
    # AutoProcessor loads every part the processor class names, the video processor too, and that one
    # is torchvision's (asserted on the part alone: loading the whole one first reads the tokenizer, ~1 s)
    processor_class = getattr(transformers, spec.processor_class)
    assert "video_processor" in processor_class.get_attributes()
    with pytest.raises(ImportError, match="requires the Torchvision library"):
        AutoVideoProcessor.from_pretrained(folder)

    class ImagesOnly(processor_class):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [name for name in super().get_attributes() if name != "video_processor"]

    ImagesOnly.__name__ = spec.processor_class
    return ImagesOnly.from_pretrained(folder)


@pytest.fixture(scope="module")
def processor_of(vlm):
    """`processor_of(family)`: its processor, loaded once for this module (a tokenizer load is ~1 s here)."""
    loaded: dict[str, object] = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = _processor(TINY_VLMS[family], vlm(family))
        return loaded[family]

    return get


@pytest.fixture(scope="module")
def qwen_vocab() -> dict[str, int]:
    """The Qwen2.5 fixture tokenizer's vocabulary, added tokens included."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(fixture_tokenizer_path("qwen2.5")).get_vocab()


def _model_class(spec: TinyVlmSpec):
    import transformers

    return getattr(transformers, spec.auto_class)


def _pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((30, 40), (56, 56))]


def _sine() -> np.ndarray:
    return np.sin(2 * math.pi * 440 * np.arange(16000) / 16000).astype(np.float32)  # 1 s at 16 kHz


def _inputs(spec: TinyVlmSpec, processor, media_count: int = 2, media=None):
    """The processor's tensors for a conversation rendered by the folder's own chat template."""
    part = spec.modalities[0]
    parts = [{"type": part}, {"type": "text", "text": "What is this?"}, {"type": part}][: 2 * media_count - 1]
    if media_count == 1:
        parts.append({"type": "text", "text": "And this?"})
    messages = [{"role": "user", "content": parts},
                {"role": "assistant", "content": [{"type": "text", "text": "Noise, twice."}]}]
    text = processor.apply_chat_template(messages, tokenize=False)
    assert text.count(spec.placeholder) == media_count, text
    if part == "audio":
        return processor(text=[text], audio=media or [_sine()] * media_count, sampling_rate=16000,
                         return_tensors="pt")
    return processor(text=[text], images=[media or _pictures()[:media_count]], return_tensors="pt")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_folder_loads_offline_as_its_family(family: str, vlm, processor_of, qwen_vocab) -> None:
    from transformers import AutoConfig

    spec, folder = TINY_VLMS[family], vlm(family)
    config = AutoConfig.from_pretrained(folder)
    assert config.architectures == [spec.model_class]
    model = _model_class(spec).from_pretrained(folder)
    assert type(model).__name__ == spec.model_class
    processor = processor_of(family)
    assert type(processor).__name__ == spec.processor_class
    tok = processor.tokenizer  # as AutoTokenizer loads it from the folder
    assert processor.chat_template == tok.chat_template == spec.chat_template()

    new = [token for token in spec.added_tokens if token not in qwen_vocab]  # "</s>" is a Qwen BPE piece already
    assert len(qwen_vocab) == QWEN_VOCAB and len(tok) == QWEN_VOCAB + len(new)
    assert [tok.convert_tokens_to_ids(token) for token in new] == list(range(QWEN_VOCAB, len(tok)))
    for token in spec.added_tokens:  # each one special token: never split, never merged with its neighbours
        assert tok.tokenize(f"a{token}b") == ["a", token, "b"]
    for attribute, token in spec.tokenizer_attributes:
        assert getattr(tok, attribute) == token
    assert config.text_config.vocab_size == len(tok) == model.get_input_embeddings().num_embeddings
    assert _media_token_id(config) == tok.convert_tokens_to_ids(spec.media_token)
    total = sum(p.numel() for p in model.parameters())
    assert total < 10_500_000  # the Qwen2.5 vocabulary at width 32 (once or twice), plus towers of ~100k


def _media_token_id(config) -> int:
    for key in ("image_token_id", "image_token_index", "audio_token_index"):
        if getattr(config, key, None) is not None:
            return getattr(config, key)
    raise AssertionError(f"{type(config).__name__} names no media token")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_forward_and_backward_pass_trains_both_towers(family: str, vlm, processor_of) -> None:
    spec, folder = TINY_VLMS[family], vlm(family)
    processor = processor_of(family)
    model = _model_class(spec).from_pretrained(folder)
    model.train()
    inputs = _inputs(spec, processor)
    ids = inputs["input_ids"]
    media_tokens = int((ids == _media_token_id(model.config)).sum())
    assert media_tokens > 2  # two pictures (clips), each more than one token

    # a vision model raises unless its tower's features fill those tokens exactly (audio: the test below)
    out = model(**inputs, labels=ids.clone())
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    unused = [name for name, g in grads.items() if g is None]  # only what the real checkpoints leave unread
    assert unused == [name for name in grads if name.startswith(spec.unused_parameters)]
    grads = {name: g for name, g in grads.items() if g is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    # the tower's first layer (patch embedding, audio conv1): the gradient went through the whole tower
    first = [name for name in grads if "patch_embed" in name or "audio_tower.conv1." in name]
    assert first and all(grads[name].abs().sum() > 0 for name in first), sorted(grads)
    language = [name for name in grads if "language_model" in name and ".layers.0." in name]
    assert language and all(grads[name].abs().sum() > 0 for name in language)


@pytest.mark.parametrize("family", [f for f in FAMILIES if TINY_VLMS[f].modalities == ("image",)])
def test_a_56px_picture_becomes_the_documented_token_count(family: str, processor_of) -> None:
    spec, processor = TINY_VLMS[family], processor_of(family)
    inputs = _inputs(spec, processor, media_count=1, media=[_pictures()[1]])
    media_token = processor.tokenizer.convert_tokens_to_ids(spec.media_token)
    assert int((inputs["input_ids"] == media_token).sum()) == TOKENS_OF_56PX[family]


def test_a_second_of_audio_becomes_as_many_tokens_as_the_encoder_outputs(vlm, processor_of) -> None:
    spec, folder = TINY_VLMS["qwen2_audio"], vlm("qwen2_audio")
    processor = processor_of("qwen2_audio")
    model = _model_class(spec).from_pretrained(folder)
    inputs = _inputs(spec, processor, media_count=1)
    count = int((inputs["input_ids"] == model.config.audio_token_index).sum())
    # the audio forward scatters features into audio tokens without a count check: compare here
    _, lengths = model.model.audio_tower._get_feat_extract_output_lengths(inputs["feature_attention_mask"].sum(-1))
    assert count == int(lengths.sum()) == AUDIO_TOKENS_OF_1S
    assert inputs["input_features"].shape[1:] == (128, 200)  # 128 mel bins, padded to 2 s


@pytest.mark.parametrize("family", FAMILIES)
def test_the_weights_are_those_of_the_seed(family: str, vlm) -> None:
    """The saved weights are the family's model initialised from its config with seed 0, another seed
    initialises other weights, and no weight matrix is left at zero."""
    from transformers import AutoConfig

    spec, folder = TINY_VLMS[family], vlm(family)
    model = _model_class(spec).from_pretrained(folder)
    assert all(p.any() for p in model.parameters() if p.ndim >= 2)
    saved = model.state_dict()
    for seed in (0, 1):
        fresh = init_tiny_vlm(family, AutoConfig.from_pretrained(folder), seed=seed).state_dict()
        assert fresh.keys() == saved.keys()
        same = [torch.equal(value, fresh[name]) for name, value in saved.items()]
        assert all(same) if seed == 0 else not all(same)
    assert (folder / "model.safetensors").is_file()  # one file, no shards


def test_a_cached_folder_is_built_once(vlm) -> None:
    folder = vlm("llava")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert tiny_vlm_path("llava", folder.parent) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p.name for p in folder.parent.iterdir() if p.name.endswith(".partial")]


def test_building_twice_with_one_seed_writes_the_same_files(vlm, tmp_path) -> None:
    from safetensors.torch import load_file

    family = "gemma3"  # the family that adds the most tokens: tokenizer and processor files compared too
    first, again = vlm(family), build_tiny_vlm(family, tmp_path / "again", seed=0)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        if name == "model.safetensors":
            a, b = load_file(first / name), load_file(again / name)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        else:
            assert (first / name).read_bytes() == (again / name).read_bytes(), name


def test_the_gemma3_template_is_the_official_one() -> None:
    trl = pytest.importorskip("trl", reason="TRL (a dev dependency) keeps the official copy")
    official = Path(trl.__file__).parent / "chat_templates" / "gemma3.jinja"
    assert GEMMA3_CHAT_TEMPLATE == official.read_text(encoding="utf-8")


def test_an_unknown_family_is_named() -> None:
    with pytest.raises(ValueError, match="unknown family 'pixtral'; known: qwen2_vl"):
        build_tiny_vlm("pixtral", Path("unused"))
