"""Helpers shared by the export tests: adapters with non-zero weights and independent reference logits."""

from __future__ import annotations

from pathlib import Path

import torch


def write_adapter(base: Path, out: Path, seed: int, *, dora: bool = False, rank: int = 4,
                  targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "down_proj")) -> Path:
    """A LoRA (or DoRA) adapter whose B matrices are random, not zero, so it changes the logits."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), use_dora=dora))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)
            if "lora_magnitude" in name:
                param.mul_(1.0 + 0.1 * torch.randn_like(param))
    peft_model.save_pretrained(out)
    return out


def export_args(base: Path, out: Path, adapters: list[Path] | None = None, **extra: object) -> list[str]:
    values: dict[str, object] = {"model_name_or_path": base, "template": "qwen", "export_dir": out}
    if adapters:
        values["adapter_name_or_path"] = ",".join(str(a) for a in adapters)
        values["finetuning_type"] = "lora"
    values.update(extra)
    return [f"--{key}={value}" for key, value in values.items()]


def probe_ids() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 150000, (2, 12), generator=generator)


def reference_logits(base: Path, adapters: list[Path], ids: torch.Tensor) -> torch.Tensor:
    """Logits of base + adapters computed by peft without merging: every adapter active at once.

    For LoRA, active adapters add up, which equals merging them in order.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    if adapters:
        model = PeftModel.from_pretrained(model, adapters[0], adapter_name="a0")
        for index, path in enumerate(adapters[1:], start=1):
            model.load_adapter(path, adapter_name=f"a{index}")
        model.base_model.set_adapter([f"a{i}" for i in range(len(adapters))])
    with torch.no_grad():
        return model(input_ids=ids).logits


def exported_logits(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        return model(input_ids=ids).logits
