"""Exporting a vision-language model: a LoRA adapter trained by `tunelab train` on pictures merges into the
base, the folder loads with `AutoModelForImageTextToText` and its processor with `AutoProcessor`, the
built-in check compares a picture prompt too (and so catches a broken vision tower that text prompts
miss), the export chats like base + adapter, and GGUF / GPTQ of a VLM are refused before anything loads."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from tunelab.config.parser import parse_config
from tunelab.errors import UserError
from tunelab.export.run import ExportOptions, ExportResult, run_export
from tunelab.testing_multimodal import tiny_vlm_path

TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_vlm_path("qwen2_vl", tmp_path_factory.mktemp("vlm-base"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two conversations about two pictures, registered as the data set `mm` (sharegpt with `images`)."""
    folder = tmp_path_factory.mktemp("vlm-data")
    rows = []
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        Image.new("RGB", (56, 56), colour).save(folder / f"{name}.png")
        rows.append({"messages": [{"role": "user", "content": "<image>What colour?"},
                                  {"role": "assistant", "content": name}], "images": [f"{name}.png"]})
    (folder / "mm.json").write_text(json.dumps(rows), encoding="utf-8")
    info = {"mm": {"file_name": "mm.json", "formatting": "sharegpt",
                   "columns": {"messages": "messages", "images": "images"}, "tags": TAGS}}
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def adapter(base: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two LoRA steps of `tunelab train` on the pictures (a high learning rate, so the adapter matters)."""
    from tunelab.train.recipe import run_training

    out = tmp_path_factory.mktemp("vlm-lora") / "run"
    values = {"model_name_or_path": base, "stage": "sft", "do_train": True, "template": "qwen2_vl", "dataset": "mm",
              "dataset_dir": data_dir, "cutoff_len": 256, "per_device_train_batch_size": 2, "learning_rate": 5e-2,
              "finetuning_type": "lora", "lora_rank": 4, "max_steps": 2, "logging_steps": 1, "save_strategy": "no",
              "report_to": "none", "output_dir": out, "seed": 3, "plot_loss": False}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_CACHE", str(tmp_path_factory.mktemp("vlm-cache")))
        run_training(parse_config([f"--{key}={value}" for key, value in values.items()]))
    assert (out / "adapter_model.safetensors").is_file()
    return out


def _args(base: Path, out: Path, adapters: list[Path] | None = None, **extra: object) -> list[str]:
    values: dict[str, object] = {"model_name_or_path": base, "template": "qwen2_vl", "export_dir": out, **extra}
    if adapters:
        values.update(adapter_name_or_path=",".join(map(str, adapters)), finetuning_type="lora")
    return [f"--{key}={value}" for key, value in values.items()]


@pytest.fixture(scope="module")
def exported(base: Path, adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    out = tmp_path_factory.mktemp("vlm-export") / "merged"
    return run_export(parse_config(_args(base, out, [adapter])))


def _picture_inputs(processor: Any, picture: Path) -> Any:
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                          "text": "What colour?"}]}], add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[Image.open(picture)], return_tensors="pt")


def _logits(model: Any, inputs: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits[0]


def test_a_trained_vlm_adapter_merges_into_a_folder_transformers_loads(exported: ExportResult, base: Path,
                                                                      adapter: Path, data_dir: Path) -> None:
    import importlib.util

    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tunelab.model.multimodal import multimodal_family_of_folder
    from tunelab.model.processor import load_processor

    out = exported.export_dir
    check = exported.check
    assert check is not None and check.passed and check.media_prompts == 1 and check.adapter_effect > 0.01
    assert (out / "processor_config.json").read_bytes() == (base / "processor_config.json").read_bytes()
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    if importlib.util.find_spec("torchvision") is not None:
        processor = AutoProcessor.from_pretrained(out)
    else:  # AutoProcessor needs torchvision for Qwen-VL's video part; tunelab's loader leaves it out
        with pytest.raises((OSError, ImportError)):
            AutoProcessor.from_pretrained(base)  # the base model does not load either: the machine, not the export
        processor = load_processor(str(out), multimodal_family_of_folder(str(out)), {})
    assert type(processor).__name__ == "Qwen2VLProcessor"
    inputs = _picture_inputs(processor, data_dir / "red.png")
    reference = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), adapter).eval()
    merged = _logits(model, inputs)
    assert torch.allclose(merged, _logits(reference, inputs), atol=1e-4)
    assert (merged - _logits(AutoModelForImageTextToText.from_pretrained(base).eval(), inputs)).abs().max() > 1e-3


def test_the_export_chats_with_a_picture_like_base_plus_adapter(exported: ExportResult, base: Path, adapter: Path,
                                                               data_dir: Path) -> None:
    from tunelab.data.conversation import Message, Role
    from tunelab.infer.loader import load_chat_model
    from tunelab.infer.terminal import run_terminal_chat

    greedy = ["--template=qwen2_vl", "--do_sample=false", "--max_new_tokens=4"]
    merged = load_chat_model(parse_config([f"--model_name_or_path={exported.export_dir}", *greedy]))
    assert merged.media is not None
    unmerged = load_chat_model(parse_config([f"--model_name_or_path={base}", f"--adapter_name_or_path={adapter}",
                                             "--finetuning_type=lora", *greedy]))
    question = [Message(Role.USER, "What colour?")]
    red = str(data_dir / "red.png")
    expected = unmerged.chat(question, images=[red])
    got = merged.chat(question, images=[red])
    assert (got.text, got.prompt_tokens, got.completion_tokens) == (expected.text, expected.prompt_tokens,
                                                                    expected.completion_tokens)
    out = io.StringIO()
    run_terminal_chat(merged, stdin=io.StringIO(f"/image {red}\nWhat colour?\n"), stdout=out, stderr=io.StringIO(),
                      interactive=False)
    assert out.getvalue() == expected.text + "\n"


def _vision_only_adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter on the vision tower's first attention only, with random (non-zero) B matrices."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(5)
    model = AutoModelForImageTextToText.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=r"model\.visual\.blocks\.0\.attn\.qkv"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    peft_model.save_pretrained(out)
    return out


def test_the_check_compares_a_picture_prompt_and_catches_a_wrong_vision_tower(base: Path, tmp_path: Path) -> None:
    from tunelab.data.templates import get_template
    from tunelab.export import verify
    from tunelab.export.merge import attach_adapters, load_base

    vision = _vision_only_adapter(base, tmp_path / "vision-lora")
    config = parse_config(_args(base, tmp_path / "merged", [vision]))
    loaded = load_base(config, torch.float32)
    text_probes = verify.probe_inputs(loaded.tokenizer, get_template("qwen2_vl", loaded.tokenizer))
    before = verify.logits_of(loaded.model, text_probes)
    after = verify.logits_of(attach_adapters(loaded.model, [str(vision)]), text_probes)
    assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))  # text prompts cannot see this adapter

    result = run_export(config, ExportOptions(modelfile=False))
    assert result.check is not None and result.check.passed and result.check.adapter_effect > 1e-3  # the picture can
    wrong = tmp_path / "wrong"
    shutil.copytree(base, wrong)  # the base weights, as if they were the merge
    with pytest.raises(UserError, match="(?s)FAILED.*of which 1 with a picture.*not a correct merge"):
        run_export(parse_config(_args(base, wrong, [vision])), ExportOptions(verify_only=True))


def test_gguf_and_gptq_of_a_vlm_are_refused_before_loading(base: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    from tunelab.cli.main import main

    out = tmp_path / "never"
    assert main(["export", *_args(base, out), "--gguf", "f16"]) == 2
    err = capsys.readouterr().err
    assert f"--gguf: {base} is a qwen2_vl multimodal model" in err and "mmproj" in err
    assert main(["export", *_args(base, out, export_quantization_bit=4)]) == 2
    assert "GPTQ export quantizes text models only" in capsys.readouterr().err
    assert not out.exists()
