"""Tiny built-in models for the offline quick start and for demos: `model_name_or_path: tunelab/tiny-chat`.

Nothing can be downloaded on a machine without network, so the quick start needs a model it can make
itself: a real architecture (Qwen2) with random weights and a byte-level BPE tokenizer trained on
the bundled demo data, with a ChatML chat template. It is built once and cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("tunelab.model")

PREFIX = "tunelab/"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


@dataclass(frozen=True)
class BuiltinModel:
    """Shape of one built-in model; the version is part of the cache key, bump it when anything changes."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    version: int = 1


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "tiny-chat": BuiltinModel("tiny-chat", vocab_size=3000, hidden_size=128, intermediate_size=384,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}


def is_builtin(name_or_path: str) -> bool:
    return name_or_path.startswith(PREFIX) and name_or_path[len(PREFIX):] in BUILTIN_MODELS and not Path(name_or_path).exists()


def cache_root() -> Path:
    """`$TUNELAB_CACHE`, by default `~/.cache/tunelab` (the tokenized-data cache lives there too)."""
    return Path(os.environ.get("TUNELAB_CACHE", Path.home() / ".cache" / "tunelab")).expanduser()


def _corpus() -> list[str]:
    """Every string of the bundled demo data, so the tokenizer covers the quick start's text compactly."""
    from importlib.resources import files

    folder = files("tunelab") / "resources" / "data"
    texts: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        # the registry, media folders, and the multimodal demos (added later: reading them would change the
        # built-in tokenizer, and every figure measured with tunelab/tiny-chat) are not the corpus
        if entry.name == "dataset_info.json" or entry.is_dir() or entry.name.startswith("mllm_"):
            continue
        text = entry.read_text(encoding="utf-8")
        if entry.name.endswith(".json"):
            collect(json.loads(text))
        elif entry.name.endswith(".jsonl"):
            for line in text.splitlines():
                if line.strip():
                    collect(json.loads(line))
        else:
            texts.append(text)
    return texts


def _train_tokenizer(spec: BuiltinModel, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out)


def _build(spec: BuiltinModel, out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    _train_tokenizer(spec, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):  # its own seed, and the caller's global RNG left as it was: a run
        torch.manual_seed(0)  # that builds the model first must train exactly as every later run with its seed
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)


def materialize_builtin(name_or_path: str) -> Path:
    """Build the named tiny model on first use (seconds) and return its cached folder."""
    spec = BUILTIN_MODELS[name_or_path[len(PREFIX):]]
    key = hashlib.sha256(json.dumps(spec.__dict__, sort_keys=True).encode()).hexdigest()[:12]
    out = cache_root() / "models" / f"{spec.name}-{key}"
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    logger.info("building the built-in model %s in %s (first use only)", name_or_path, out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    _build(spec, tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process (a second test worker, a second board job) built it meanwhile: same model
        if not (out / "config.json").is_file():
            raise
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return out
