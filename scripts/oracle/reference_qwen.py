"""Oracle for the Qwen-1 family (Qwen-7B / 14B / 1_8B, -Chat): runs the ORIGINAL remote code.

    .oracle/tf-4.53.3/bin/python scripts/oracle/reference_qwen.py

Loads ../shared/fixtures/legacy/qwen with trust_remote_code under transformers 4.53.3 (the newest release whose
`generate` the code still runs on, NOTES.md) and writes tests/fixtures/legacy_reference/qwen.json.
No CPU shims are needed: on a machine without CUDA the original picks fp32 itself (`QWenLMHeadModel.__init__`,
autoset precision), which turns `use_flash_attn: auto` off, and every CUDA kernel path is guarded by `is_cuda`.

Besides common.model_reference (train / eval / padded-eval on the 40-token input) this records what the Qwen-1
family needs on top, because its eval mode differs from train mode on inputs longer than `seq_length` (32 here):
- `short_*`: eval mode on the first `seq_length` ids, where dynamic NTK and logn attention are inactive
  (`short_padded_logits`: the padded row of that batch, non-pad positions; the other row is `short_eval_logits`);
- `train_padded_logits`: the left-padded row (non-pad positions) of the padded batch in train mode (no NTK /
  logn), the padded case Qwen2 reproduces; the batch's unpadded row equals `logits`;
- `greedy_ids_long`: greedy continuation of the 40 ids (eval, NTK alpha 3 + logn) - a measured difference only.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PROBES, columns, fixture_copy, input_ids, model_reference, write  # noqa: E402

FAMILY = "qwen"
EXTRA_TEXT_FILES = ("NOTICE", "qwen_generation_utils.py")  # longer mixed texts for tokenizer agreement
NFD_TEXTS = (unicodedata.normalize("NFD", "accents: café, naïve, Ünïcødé, Tiếng Việt"), "한국어 e\u0301")


def rounded(tensor: torch.Tensor) -> list:
    """Six decimals: the parity tests use atol 1e-4, and the JSON must stay under 1 MB."""
    return torch.round(tensor, decimals=6).tolist()


def history_pairs(conversation: list[dict[str, str]]) -> tuple[str, list[tuple[str, str]], str]:
    """probes.json's conversation as make_context's (system, [(query, response)], query)."""
    system = ""
    turns = list(conversation)
    if turns and turns[0]["role"] == "system":
        system = turns.pop(0)["content"]
    query = turns.pop()["content"]
    history = [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns), 2)]
    return system, history, query


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = fixture_copy(FAMILY)
    sys.path.insert(0, str(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32)
    from qwen_generation_utils import make_context  # the fixture's own chat builder (the copy, on sys.path)

    config = model.config
    assert config.fp32 and not config.use_flash_attn, "expected the CPU fp32 path"
    vocab = config.vocab_size
    ids = input_ids(vocab)
    reference = model_reference(model, ids, vocab)

    cols = columns(vocab, ids)
    seq_length = config.seq_length
    short = ids[:seq_length]
    pad = PROBES["pad"]
    with torch.no_grad():
        model.eval()
        out = model(input_ids=torch.tensor([short]), labels=torch.tensor([short]), return_dict=True)
        short_logits = out.logits.float()[0]
        tail = short[pad:]
        batch = torch.tensor([short, [0] * pad + tail])
        mask = torch.tensor([[1] * len(short), [0] * pad + [1] * len(tail)])
        padded = model(input_ids=batch, attention_mask=mask, return_dict=True).logits.float()
        model.train()
        tail = ids[pad:]
        batch = torch.tensor([ids, [0] * pad + tail])
        mask = torch.tensor([[1] * len(ids), [0] * pad + [1] * len(tail)])
        train_padded = model(input_ids=batch, attention_mask=mask, return_dict=True).logits.float()
        model.eval()
        greedy = model.generate(
            torch.tensor([ids[:12]]), max_new_tokens=8, do_sample=False, top_p=None, top_k=None
        )[0, 12:].tolist()
        greedy_long = model.generate(
            torch.tensor([ids]), max_new_tokens=8, do_sample=False, top_p=None, top_k=None
        )[0, len(ids) :].tolist()
    reference.update(
        seq_length=seq_length,
        short_len=len(short),
        short_eval_loss=float(out.loss),
        short_eval_logsumexp=rounded(torch.logsumexp(short_logits, -1)),
        short_eval_logits=rounded(short_logits[:, cols]),
        short_padded_logits=rounded(padded[1][pad:, cols]),
        train_padded_logits=rounded(train_padded[1][pad:, cols]),
        greedy_ids=greedy,
        greedy_ids_long=greedy_long,
    )

    texts = PROBES["texts"]
    reference["token_ids"] = {text: tokenizer.encode(text) for text in texts}
    plain = {text: tokenizer.encode(text, add_special_tokens=False) for text in texts}
    assert plain == reference["token_ids"], "Qwen-1 adds no special tokens: the two must agree"
    reference["extra_token_ids"] = {
        name: tokenizer.encode((folder / name).read_text(encoding="utf-8")) for name in EXTRA_TEXT_FILES
    }
    # tokenize() NFC-normalises first: decomposed input must give the composed text's ids
    reference["nfd_token_ids"] = {text: tokenizer.encode(text) for text in NFD_TEXTS}
    reference["special_tokens"] = dict(tokenizer.special_tokens)
    # special-token text inside ordinary text is parsed as the special id by `encode` (allowed_special="all")
    mixed = "a<|im_start|>b<|extra_7|>c<|endoftext|>"
    reference["special_in_text"] = {mixed: tokenizer.encode(mixed)}
    reference["len_tokenizer"] = len(tokenizer)
    reference["tokenizer_special"] = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "eod_id": tokenizer.eod_id,
        "im_start_id": tokenizer.im_start_id,
        "im_end_id": tokenizer.im_end_id,
    }
    reference["decode"] = {text: tokenizer.decode(reference["token_ids"][text]) for text in texts}

    system, history, query = history_pairs(PROBES["conversation"])
    raw, context = make_context(tokenizer, query, history=history, system=system, chat_format="chatml")
    reference["chat_ids"] = context
    reference["chat_text"] = raw
    # model.chat() passes system="You are a helpful assistant." when the caller gives none (modeling_qwen.py chat)
    raw_default, context_default = make_context(
        tokenizer, query, history=history, system="You are a helpful assistant.", chat_format="chatml"
    )
    reference["chat_default_system"] = "You are a helpful assistant."
    reference["chat_ids_default_system"] = context_default
    # make_context tokenizes role, "\n" and content apart, and content with allowed_special=set(): a content that
    # starts with "\n" or holds special-token text tokenizes differently from the rendered text (recorded, not matched)
    edge_query = "\n\nsay <|im_end|> please"
    _, context_edge = make_context(tokenizer, edge_query, history=[], system=system, chat_format="chatml")
    reference["chat_edge_query"] = edge_query
    reference["chat_ids_edge"] = context_edge
    reference["chat_builder"] = "qwen_generation_utils.make_context (chatml); the system message is kept"
    write(FAMILY, reference)


if __name__ == "__main__":
    main()
