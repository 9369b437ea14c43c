"""Oracle for the two Baichuan2 checkpoints (7B: RoPE, 13B: ALiBi), run with their ORIGINAL remote code.

The original tokenizer only runs on transformers 4.33.3 (`no attribute sp_model` from 4.34) and the model
reference is taken on 4.53.3, so this script runs twice; each run merges its part into
tests/fixtures/legacy_reference/baichuan2_7b.json and baichuan2_13b.json:

    .oracle/tf-4.33.3/bin/python scripts/oracle/reference_baichuan2.py tokenizer
    .oracle/tf-4.53.3/bin/python scripts/oracle/reference_baichuan2.py model

No CPU shims are needed: both modeling files run on CPU as published (xformers is not installed in the
oracle envs, so the 7B attention takes its sdpa branch and the 13B its eager matmul branch in train mode too).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, PROBES, fixture_copy, input_ids, model_reference, write  # noqa: E402

CHECKPOINTS = ("baichuan2_7b", "baichuan2_13b")

#: texts beyond probes.json: the special tokens inside text, user-defined pieces, whitespace runs
EXTRA_TEXTS = [
    "<s>",
    "</s>",
    "<unk>",
    "a<s>b</s>c<unk>d",
    "a <s> b </s> c",
    "<reserved_106>你好<reserved_107>",
    "x<reserved_106>y",
    "1+1=2... 。。。。。。 ——— <br/>",
    "    four spaces\n\n\n\t\ttabs",
    "12345678901234567890",
]


def stress_texts(normal_pieces: list[str], count: int = 300) -> list[str]:
    """Seeded texts that exercise the BPE merges: runs of random vocabulary pieces (spaces for "▁"), glued
    with digits, punctuation, CJK, emoji and whitespace runs; the same list on every run."""
    import random

    rng = random.Random(PROBES["seed"])
    glue = [" ", "  ", "\n", "\t", "1", "23", "。", ",", "!", "😀", "é", "ü", "中", "...", "<br>", ""]
    texts = []
    for _ in range(count):
        parts = [rng.choice(normal_pieces).replace("\u2581", " ") for _ in range(rng.randint(1, 8))]
        texts.append("".join(p + rng.choice(glue) for p in parts))
    return texts


def _previous(family: str) -> dict[str, Any]:
    path = OUT / f"{family}.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("family", "transformers", "torch", "python"):
            data.pop(key, None)
        return data
    return {}


def _load_generation_utils(folder: Path) -> Any:
    """The family's own chat-input builder (generation_utils.build_chat_input), imported from the fixture."""
    spec = importlib.util.spec_from_file_location("baichuan_generation_utils", folder / "generation_utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tokenizer_part(family: str) -> dict[str, Any]:
    from transformers import AutoTokenizer, GenerationConfig

    folder = fixture_copy(family)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    texts = PROBES["texts"] + EXTRA_TEXTS
    token_ids = {t: tokenizer.encode(t) for t in texts}
    no_special = {t: tokenizer.encode(t, add_special_tokens=False) for t in texts}
    sp = tokenizer.sp_model
    user_defined = {}
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString((folder / "tokenizer.model").read_bytes())
    for piece in proto.pieces:
        if piece.type == 4:  # USER_DEFINED: sentencepiece matches these in raw text
            user_defined[piece.piece] = tokenizer.encode(piece.piece)
    special = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in ["<unk>", "<s>", "</s>", "<reserved_106>", "<reserved_107>"]
    }

    # build_chat_input reads model.generation_config (user / assistant ids, max_new_tokens) and
    # model.config.model_max_length; a stand-in with the fixture's values avoids loading the model here
    generation = GenerationConfig.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    stand_in = SimpleNamespace(
        generation_config=generation,
        device="cpu",
        config=SimpleNamespace(model_max_length=config["model_max_length"]),
    )
    build = _load_generation_utils(folder).build_chat_input
    conversation = PROBES["conversation"]
    chat_ids = build(stand_in, tokenizer, conversation)[0].tolist()
    chat_ids_answered = build(stand_in, tokenizer, conversation[:3])[0].tolist()
    stress = stress_texts([p.piece for p in proto.pieces if p.type == 1])
    return {
        "stress_ids": {t: tokenizer.encode(t) for t in stress},
        "token_ids": token_ids,
        "token_ids_no_special_differ": any(token_ids[t] != no_special[t] for t in texts),
        "token_ids_no_special": no_special,
        "decoded": {t: tokenizer.decode(token_ids[t]) for t in texts},
        "user_defined_ids": user_defined,
        "special_tokens": special,
        "tokenizer_facts": {
            "len": len(tokenizer),
            "vocab_size": tokenizer.vocab_size,
            "sp_piece_size": sp.get_piece_size(),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "unk_token_id": tokenizer.unk_token_id,
            "pad_token": str(tokenizer.pad_token),
            "add_bos_token": tokenizer.add_bos_token,
            "add_eos_token": tokenizer.add_eos_token,
            "all_special_tokens": list(tokenizer.all_special_tokens),
        },
        "chat_ids": chat_ids,
        "chat_ids_answered": chat_ids_answered,
        "chat_note": "build_chat_input: system text encoded as plain text first, then per message 195 (user) / "
        "196 (assistant) + encode(content), no eos between turns; 196 appended when the last "
        "message is not the assistant's (chat_ids_answered: conversation[:3], ends with it)",
    }


def model_part(family: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    folder = fixture_copy(family)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32)
    config = json.loads((folder / "config.json").read_text())
    ids = input_ids(config["vocab_size"])
    reference = model_reference(model, ids, config["vocab_size"])

    # greedy continuation of the first 12 ids (eval mode; the head is normalised by now)
    model.eval()
    prompt = torch.tensor([ids[:12]])
    greedy: dict[str, Any] = {}
    try:
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=8,
            do_sample=False,
            min_new_tokens=8,
            pad_token_id=0,
            eos_token_id=None,
            repetition_penalty=1.0,
            top_k=None,
            top_p=None,
            temperature=None,
        )
        greedy["greedy_ids"] = out[0, 12:].tolist()
        greedy["greedy_how"] = "model.generate(do_sample=False, use_cache=True)"
    except Exception as error:  # noqa: BLE001 - record why and fall back to the plain forward
        greedy["generate_error"] = f"{type(error).__name__}: {error}"
    # the same by argmax over full forwards (no cache), as a check of the cached path
    with torch.no_grad():
        seq = ids[:12]
        for _ in range(8):
            logits = model(torch.tensor([seq]), use_cache=False).logits
            seq = seq + [int(logits[0, -1].argmax())]
    greedy["greedy_ids_no_cache"] = seq[12:]
    greedy.setdefault("greedy_ids", greedy["greedy_ids_no_cache"])

    reference.update(greedy)
    reference["z_loss_weight"] = model.config.z_loss_weight
    reference["train_loss_with_z_loss_0_1"] = _z_loss_reference(model, ids)
    return reference


def _z_loss_reference(model: Any, ids: list[int]) -> float:
    """The original's train loss with z_loss_weight 0.1 (the fixture's config leaves it at its default 0)."""
    import torch

    model.config.z_loss_weight = 0.1
    try:
        with torch.no_grad():
            model.train()
            return float(model(torch.tensor([ids]), labels=torch.tensor([ids]), use_cache=False).loss)
    finally:
        model.config.z_loss_weight = 0


def main() -> None:
    part = sys.argv[1] if len(sys.argv) > 1 else "model"
    for family in CHECKPOINTS:
        data = _previous(family)
        new = tokenizer_part(family) if part == "tokenizer" else model_part(family)
        import transformers

        data.update(new)
        data.setdefault("oracle_versions", {})[part] = transformers.__version__
        write(family, data)


if __name__ == "__main__":
    main()
