"""Multimodal training: padding-free batches equal padded ones, the freeze keys decide what trains, the
anchor's mllm_demo data trains on every family, and media given to a text-only model stop the run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tests.multimodal.test_encode_golden import _example, _media

from tunelab.cli.main import main
from tunelab.data.dataset_info import bundled_data_dir
from tunelab.data.encode import EncodeOptions
from tunelab.data.labels import IGNORE_INDEX
from tunelab.model.multimodal import FAMILIES

FAMILY_NAMES = [family.name for family in FAMILIES]


def _summed_loss(model, batch) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "num_tokens", "use_cache")}
    logits = model(**inputs, use_cache=False).logits.float()  # as in training: a KV cache turns packed masks off
    labels = batch["labels"]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                             ignore_index=IGNORE_INDEX, reduction="sum")


@pytest.mark.parametrize("name", [f.name for f in FAMILIES if f.padding_free])
def test_padding_free_batches_give_the_padded_loss(name: str, vlm, tmp_path) -> None:
    from transformers import AutoModelForImageTextToText

    from tunelab.data.encode_media import encode_supervised_media
    from tunelab.train.media_collator import MediaCollator, MediaPaddingFreeCollator, rope_index_of
    from tunelab.train.stages.lm import PaddingCollator

    media, template = _media(vlm, name)
    tokenizer = media.processor.tokenizer
    long, short = _example(name, tmp_path), _example(name, tmp_path, row=2)
    short = type(short)(messages=short.messages[:2], images=short.images[:2], source=short.source)
    rows = [encode_supervised_media(tokenizer, template, e, media, EncodeOptions(cutoff_len=100000)) for e in (long, short)]
    model = AutoModelForImageTextToText.from_pretrained(vlm(name)).eval()
    padded = MediaCollator(PaddingCollator(tokenizer.pad_token_id), media)(rows)
    free = MediaPaddingFreeCollator(tokenizer.pad_token_id, media, rope_index_of(model), varlen_attention=True)(rows)
    assert free["input_ids"].shape[0] == 1 and free["position_ids"].shape[0] == 4  # one row, 1-D + 3-D positions
    with torch.no_grad():
        assert torch.allclose(_summed_loss(model, free), _summed_loss(model, padded), rtol=1e-5, atol=1e-4)


def _config(tmp_path: Path, model: Path, **keys) -> Path:
    values = {"model_name_or_path": str(model), "stage": "sft", "do_train": "true", "finetuning_type": "lora",
              "dataset": "mllm_demo", "dataset_dir": str(bundled_data_dir()), "cutoff_len": 1024,
              "output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 2, "max_steps": 1,
              "save_strategy": '"no"', "report_to": "none", "check_template": "false", **keys}
    path = tmp_path / "train.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_the_anchors_mllm_demo_trains_on_every_family(name: str, vlm, tmp_path) -> None:
    family = next(f for f in FAMILIES if f.name == name)
    dataset = "mllm_audio_demo" if "<audio>" in family.placeholders else "mllm_demo"
    config = _config(tmp_path, vlm(name), template=family.templates[0], dataset=dataset)
    assert main(["train", str(config)]) == 0
    out = tmp_path / "out"
    assert (out / "adapter_model.safetensors").is_file() and (out / "processor_config.json").is_file()
    from transformers import AutoProcessor  # noqa: F401 - the output loads as the base did

    from tunelab.model.processor import load_processor

    assert load_processor(str(out), family, {}).tokenizer is not None


def test_media_for_a_text_only_model_stop_before_training(tiny_qwen, tmp_path, capsys) -> None:
    config = _config(tmp_path, tiny_qwen, template="qwen")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "mllm_demo.json:1: images:" in err and "is a text-only model" in err
    assert "dataset_info.json" in err  # the fix: remove the media columns, or use a multimodal model
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


def _trainable(model) -> dict[str, bool]:
    from tunelab.model.multimodal_tuning import multimodal_family_of, part_of

    family = multimodal_family_of(model.base_model.model if hasattr(model, "peft_config") else model)
    parts: dict[str, bool] = {}
    for name, param in model.named_parameters():
        part = part_of(family, name)
        parts[part] = parts.get(part, False) or param.requires_grad
    return parts


@pytest.mark.parametrize("method", ["full", "freeze", "lora"])
@pytest.mark.parametrize(("keys", "expected"), [
    ({}, {"tower": False, "projector": False, "language": True}),
    ({"freeze_vision_tower": False}, {"tower": True, "projector": False, "language": True}),
    ({"freeze_multi_modal_projector": False, "freeze_language_model": True},
     {"tower": False, "projector": True, "language": False}),
])
def test_the_freeze_keys_decide_what_trains(method: str, keys: dict, expected: dict, vlm) -> None:
    from transformers import AutoModelForImageTextToText

    from tunelab.config.finetuning_args import FinetuningArguments
    from tunelab.config.model_args import ModelArguments
    from tunelab.model.tuning import apply_tuning

    model = AutoModelForImageTextToText.from_pretrained(vlm("qwen2_vl"))
    ft = FinetuningArguments(finetuning_type=method, lora_target="all", freeze_trainable_layers=1, **keys)
    tuned = apply_tuning(model, ft, ModelArguments(model_name_or_path="x"))
    got = _trainable(tuned)
    assert {part: got.get(part, False) for part in expected} == expected
    if method == "lora":  # adapters only on the parts that train; no base weight trains
        names = [n for n, p in tuned.named_parameters() if p.requires_grad]
        assert names and all("lora_" in n for n in names)


def test_all_parts_frozen_is_refused(vlm) -> None:
    from transformers import AutoModelForImageTextToText

    from tunelab.config.finetuning_args import FinetuningArguments
    from tunelab.config.model_args import ModelArguments
    from tunelab.errors import UserError
    from tunelab.model.tuning import apply_tuning

    model = AutoModelForImageTextToText.from_pretrained(vlm("qwen2_vl"))
    ft = FinetuningArguments(finetuning_type="full", freeze_language_model=True)
    with pytest.raises(UserError, match="nothing would train"):
        apply_tuning(model, ft, ModelArguments(model_name_or_path="x"))


def test_packing_with_media_is_refused_with_the_fix(vlm, tmp_path, capsys) -> None:
    config = _config(tmp_path, vlm("qwen2_vl"), template="qwen2_vl", packing="true")
    assert main(["train", str(config)]) == 2
    assert "packing: true with a multimodal model" in capsys.readouterr().err


def test_the_processor_loads_without_torchvision_for_images(vlm, tmp_path) -> None:
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: the full processor loads")
    from tunelab.model.multimodal import multimodal_family
    from tunelab.model.processor import load_processor

    folder = tmp_path / "m"
    shutil.copytree(vlm("qwen2_vl"), folder)
    processor = load_processor(str(folder), multimodal_family("qwen2_vl"), {})
    assert type(processor).__name__ == "Qwen2VLProcessor" and not hasattr(processor, "video_processor")
    assert processor.image_token == "<|image_pad|>"


def test_template_auto_renders_the_models_own_chat_template(vlm, tmp_path) -> None:
    config = _config(tmp_path, vlm("qwen2_vl"), template="auto")
    assert main(["train", str(config)]) == 0
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_media_that_do_not_fit_cutoff_len_stop_the_run_naming_the_row(vlm, tmp_path, capsys) -> None:
    config = _config(tmp_path, vlm("qwen2_vl"), template="qwen2_vl", cutoff_len=16)
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "mllm_demo.json:" in err and "more than cutoff_len 16" in err and "Raise cutoff_len" in err


def test_videos_without_a_video_processor_are_refused_by_row(vlm, tmp_path) -> None:
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: the processor has its video part")
    from PIL import Image

    from tunelab.data.conversation import Example, Message, Role, Source
    from tunelab.data.encode_media import encode_supervised_media
    from tunelab.errors import UserError

    media, template = _media(vlm, "qwen2_vl")
    frames = tmp_path / "clip"
    frames.mkdir()
    for index in range(4):
        Image.new("RGB", (56, 56), (60 * index, 0, 0)).save(frames / f"{index}.png")
    example = Example(messages=(Message(Role.USER, "<video>What happens?"), Message(Role.ASSISTANT, "It turns red.")),
                      videos=(str(frames),), source=Source("v", "v.json", 3))
    with pytest.raises(UserError, match=r"v.json:3: videos: .*torchvision"):
        encode_supervised_media(media.processor.tokenizer, template, example, media, EncodeOptions(cutoff_len=4096))
