"""Oracle for the TeleChat2 family (Tele-AI TeleChat2-7B): runs the ORIGINAL remote code.

    .oracle/tf-4.53.3/bin/python scripts/oracle/reference_telechat2.py

Loads ../shared/fixtures/legacy/telechat2 with trust_remote_code under transformers 4.53.3 (the newest release
whose `generate` the code still runs on, NOTES.md) and writes tests/fixtures/legacy_reference/telechat2.json.

Two CPU shims, both needed only to CONSTRUCT the original model on a machine without CUDA / flash-attn; neither
changes a number it computes:
- `RotaryEmbedding.__init__` (modeling_telechat2.py) ends with `.cuda()` on an `inv_freq` that `forward`
  recomputes anyway: `torch.Tensor.cuda` is the identity while the model is built (`_cpu_cuda`);
- `FlashSelfAttention.__init__` asserts that flash-attn imported, although `config.flash_attn` is false and its
  forward is never called: the module-level `flash_attn_unpadded_func` is set to a stub that raises if called.

Besides common.model_reference (train / eval / padded-eval on the 40-token input; the fixture's training_seqlen
and base_seqlen are 32, so NTK alpha 3 and mscale 1.0223 are active) this records:
- `short_*`: eval on the first 32 ids, where the rope is plain (alpha 1, mscale 1);
- `greedy_ids`: greedy 8 tokens from the first 12 ids (KV cache); `greedy_ids_cross` from the first 28 ids (the
  cached decode steps cross training_seqlen, each new token's rope uses the then-current length while the cached
  keys keep theirs); `greedy_ids_long` from all 40 ids, with and without the cache (`*_nocache`);
- the tokenizer: `token_ids` of every probe text (encode adds no bos: add_bos_token is false), `extra_token_ids`
  of longer mixed texts, `special_tokens`, what the ORIGINAL does with special-token text inside ordinary text
  (`special_in_text`), `decode`, `len_tokenizer`, the bos / eos / pad / unk ids;
- `chat_ids`: the family's own builder, `TelechatForCausalLM.build_inputs_for_chat` of the 115B hub modeling
  file (used only as the chat-input builder), for probes.json's conversation with the assistant turn under the
  family's role name `bot`; the builder DROPS the system message (only roles user / bot make tokens).
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PROBES, columns, fixture_copy, input_ids, model_reference, write  # noqa: E402

FAMILY = "telechat2"
EXTRA_TEXT_FILES = ("PROVENANCE.md", "tokenization_telechat.py", "generation_utils.py")
SPECIAL_IN_TEXT = ("<_user>", "<_end>", "a<_end>b", "a <_end> b", "<_start>hi", "x<_pad>", "<reserve7>7__x___y")


@contextlib.contextmanager
def _cpu_cuda() -> Iterator[None]:
    """Shim 1: `.cuda()` is the identity while the original model is constructed (its rope __init__ calls it)."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = original  # type: ignore[method-assign]


def _no_flash(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("flash-attn stub: config.flash_attn is false, this is never called")


def load_original(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    cls = get_class_from_dynamic_module("modeling_telechat2.Telechat2ForCausalLM", str(folder))
    module = sys.modules[cls.__module__]
    module.flash_attn_unpadded_func = _no_flash  # shim 2: the assert in FlashSelfAttention
    with _cpu_cuda():  # the auto class (not `cls`) adds GenerationMixin, which 4.53 no longer gives PreTrainedModel
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32)
    assert sys.modules[type(model).__module__].flash_attn_unpadded_func is _no_flash
    assert not model.config.flash_attn and model.config.training_seqlen == 32 and model.config.base_seqlen == 32
    return model


def greedy(model: Any, ids: list[int], use_cache: bool = True) -> list[int]:
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=8, min_new_tokens=8, use_cache=use_cache,
                              repetition_penalty=1.0, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    # set as the model's own: a config passed to generate() gets the folder's generation_config.json values
    # (repetition_penalty 1.03, top_k 5 ...) wherever it holds a global default (4.53 merges them)
    model.generation_config = config
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out[0, len(ids):].tolist()


def chat_ids(folder: Path, tokenizer: Any) -> list[int]:
    from transformers import GenerationConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    cls = get_class_from_dynamic_module("modeling_telechat.TelechatForCausalLM", str(folder))
    history_cls = sys.modules[cls.__module__].History
    generation_config = GenerationConfig.from_pretrained(folder)
    turns = copy.deepcopy(PROBES["conversation"])
    question = turns.pop()["content"]
    history = [{"role": "bot" if t["role"] == "assistant" else t["role"], "content": t["content"]} for t in turns]
    fake_self = SimpleNamespace(config=SimpleNamespace(seq_length=8192))  # the one attribute the builder reads
    inputs = cls.build_inputs_for_chat(fake_self, tokenizer, question, history_cls(tokenizer, history),
                                       generation_config, generation_config.user_token_id,
                                       generation_config.bot_token_id)
    return inputs[0].tolist()


def main() -> None:
    from transformers import AutoTokenizer

    folder = fixture_copy(FAMILY)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = load_original(folder)
    config = model.config
    vocab = config.vocab_size
    ids = input_ids(vocab)
    reference = model_reference(model, ids, vocab)

    cols = columns(vocab, ids)
    short = ids[: config.training_seqlen]
    pad = PROBES["pad"]
    with torch.no_grad():
        model.eval()
        out = model(input_ids=torch.tensor([short]), labels=torch.tensor([short]), return_dict=True)
        short_logits = out.logits.float()[0]
        tail = short[pad:]
        batch = torch.tensor([short, [0] * pad + tail])
        mask = torch.tensor([[1] * len(short), [0] * pad + [1] * len(tail)])
        padded = model(input_ids=batch, attention_mask=mask, return_dict=True).logits.float()
        reference.update(
            training_seqlen=config.training_seqlen,
            base_seqlen=config.base_seqlen,
            short_len=len(short),
            short_eval_loss=float(out.loss),
            short_eval_logsumexp=torch.logsumexp(short_logits, -1).tolist(),
            short_eval_logits=short_logits[:, cols].tolist(),
            short_padded_logits=[padded[0][:, cols].tolist(), padded[1][pad:, cols].tolist()],
            greedy_ids=greedy(model, ids[:12]),
            greedy_ids_nocache=greedy(model, ids[:12], use_cache=False),
            greedy_ids_cross=greedy(model, ids[:28]),
            greedy_ids_cross_nocache=greedy(model, ids[:28], use_cache=False),
            greedy_ids_long=greedy(model, ids),
            greedy_ids_long_nocache=greedy(model, ids, use_cache=False),
        )

    texts = PROBES["texts"]
    reference["token_ids"] = {text: tokenizer.encode(text) for text in texts}
    plain = {text: tokenizer.encode(text, add_special_tokens=False) for text in texts}
    assert plain == reference["token_ids"], "add_bos_token / add_eos_token are false: the two must agree"
    reference["extra_token_ids"] = {
        name: tokenizer.encode((folder / name).read_text(encoding="utf-8")) for name in EXTRA_TEXT_FILES
    }
    sp = tokenizer.sp_model
    control = [i for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)]
    reference["special_tokens"] = {sp.id_to_piece(i): tokenizer.convert_tokens_to_ids(sp.id_to_piece(i))
                                   for i in control}
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((folder / "tokenizer.model").read_bytes())
    user_defined = proto.SentencePiece.Type.USER_DEFINED
    reference["user_defined_tokens"] = {p.piece: i for i, p in enumerate(proto.pieces) if p.type == user_defined}
    reference["special_in_text"] = {text: tokenizer.encode(text) for text in SPECIAL_IN_TEXT}
    reference["len_tokenizer"] = len(tokenizer)
    # what the encoder maps an unknown piece to (sentencepiece's unk), next to the configured unk_token below
    reference["unknown_piece_id"] = tokenizer.convert_tokens_to_ids("<no such piece>")
    reference["tokenizer_special"] = {
        "bos_token": tokenizer.bos_token, "bos_token_id": tokenizer.bos_token_id,
        "eos_token": tokenizer.eos_token, "eos_token_id": tokenizer.eos_token_id,
        "pad_token": tokenizer.pad_token, "pad_token_id": tokenizer.pad_token_id,
        "unk_token": tokenizer.unk_token, "unk_token_id": tokenizer.unk_token_id,
    }
    reference["decode"] = {text: tokenizer.decode(reference["token_ids"][text]) for text in texts}
    reference["chat_ids"] = chat_ids(folder, tokenizer)
    reference["chat_builder"] = (
        "modeling_telechat.py TelechatForCausalLM.build_inputs_for_chat (115B hub folder): "
        "[bos] + per turn [<_user>] + ids | [<_bot>] + ids + [eos], then [<_user>] + question + [<_bot>]; "
        "each content tokenized on its own; the assistant turn passed as role 'bot'; the system message is DROPPED"
    )
    write(FAMILY, reference)


if __name__ == "__main__":
    main()
