"""Oracle for the ChatGLM3 family (THUDM/chatglm3-6b): runs the ORIGINAL remote code.

    .oracle/tf-4.41.2/bin/python scripts/oracle/reference_chatglm3.py

Loads ../shared/fixtures/legacy/chatglm3 with trust_remote_code under transformers 4.41.2 (its tokenizer breaks
from 4.45, its `generate` from 4.42: NOTES.md) and writes tests/fixtures/legacy_reference/chatglm3.json.
No CPU shims are needed: the fixture is float32 and the original's attention (CoreAttention, torch >= 2 branch)
is plain `scaled_dot_product_attention`.

Besides common.model_reference this records what the ChatGLM3 tests need on top:
- `token_ids` / `plain_token_ids`: `encode(text)` (which prepends [gMASK] sop) and with add_special_tokens=False;
- `extra_token_ids`: longer texts (the fixture's license and code files, keyed by file name, read from the fixture
  folder by the tests; whitespace / byte-fallback strings, keyed by themselves), encoded without special tokens,
  so the fast tokenizer is checked on more than the probes;
- `special_tokens`: every control token the original knows (`get_command`), `sp_pieces`: the sentencepiece
  model's own piece count, `len_tokenizer` / `vocab_size` / the tokenizer's unk / pad / eos / bos;
- `role_text_ids`: role tokens written inside text, with the original's `encode_special_tokens=True` (the only
  mode in which it parses them; by default they are plain text to it);
- `chat_ids`: `build_chat_input` of probes.json's conversation (history = all but the last user turn; the
  system message is kept, as `<|system|>`), `chat_messages`: `build_single_message` of each turn alone;
- `greedy_ids`: greedy `generate` of 8 new tokens from the first 12 input ids (eos disabled, so the count is
  fixed), and `greedy_chat_ids`: the same from `chat_ids` with the chat stop ids of `ChatGLMForConditionalGeneration.chat`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PROBES, fixture_copy, input_ids, model_reference, write  # noqa: E402

FAMILY = "chatglm3"
EXTRA_TEXT_FILES = ("MODEL_LICENSE", "quantization.py", "configuration_chatglm.py")
STRESS_TEXTS = (
    "a  b   c    d",
    "\n\n\n",
    "   ",
    " x",
    "x ",
    "tab\there\t\tand\r\nwindows\rmac",
    "\u200b zero width \u00a0 nbsp \u3000 ideographic space",
    "ＦＵＬＬ　ｗｉｄｔｈ，全角！１２３",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 ☃ ♞ ∑ ∫ √ ≠",
    "日本語のテキストと한국어 텍스트 and русский текст",
    "1234567890 3.14159 -42 1e-5 0x1F",
    "People's Aesop sopping eop [MASK]ed",
    "<s> </s> <unk> literal control pieces",
    "▁ already a metaspace ▁▁",
    "    indented code\n        deeper\n",
)
ROLE_TEXTS = (
    "<|user|>\n hello<|assistant|>",
    "<|system|>\n You are a bot.<|user|>\n 你好<|observation|>\n {}<|assistant|>",
)


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = fixture_copy(FAMILY)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32)
    config = model.config
    vocab = config.padded_vocab_size
    ids = input_ids(vocab)
    reference = model_reference(model, ids, vocab)

    with torch.no_grad():
        model.eval()
        # eos_token_id=[] would be ignored; an id outside the vocabulary never stops generation
        greedy = model.generate(torch.tensor([ids[:12]]), max_new_tokens=8, do_sample=False,
                                eos_token_id=vocab + 1, pad_token_id=0)[0, 12:].tolist()
    reference["greedy_ids"] = greedy

    texts = PROBES["texts"]
    reference["token_ids"] = {text: tokenizer.encode(text) for text in texts}
    reference["plain_token_ids"] = {text: tokenizer.encode(text, add_special_tokens=False) for text in texts}
    reference["tokens"] = {text: tokenizer.convert_ids_to_tokens(reference["plain_token_ids"][text]) for text in texts}
    reference["decode"] = {text: tokenizer.decode(reference["plain_token_ids"][text]) for text in texts}
    reference["decode_with_prefix"] = {text: tokenizer.decode(reference["token_ids"][text]) for text in texts}
    extra = {name: (folder / name).read_text(encoding="utf-8") for name in EXTRA_TEXT_FILES}
    extra.update({text: text for text in STRESS_TEXTS})
    reference["extra_token_ids"] = {name: tokenizer.encode(text, add_special_tokens=False)
                                    for name, text in extra.items()}

    sp = tokenizer.tokenizer  # SPTokenizer
    special = {"<unk>": sp.pad_id, "<s>": sp.bos_id, "</s>": sp.eos_id}
    special.update(sp.special_tokens)
    reference["special_tokens"] = special
    reference["sp_pieces"] = sp.sp_model.vocab_size()
    reference["len_tokenizer"] = len(tokenizer)
    reference["vocab_size"] = tokenizer.vocab_size
    reference["tokenizer_special"] = {
        "unk_token": tokenizer.unk_token, "pad_token": tokenizer.pad_token, "eos_token": tokenizer.eos_token,
        "bos_token": tokenizer.bos_token, "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id,
        "padding_side": tokenizer.padding_side,
    }
    parsing = AutoTokenizer.from_pretrained(folder, trust_remote_code=True, encode_special_tokens=True)
    reference["role_text_ids"] = {text: parsing.encode(text, add_special_tokens=False) for text in ROLE_TEXTS}
    reference["role_text_ids_default"] = {text: tokenizer.encode(text, add_special_tokens=False)
                                          for text in ROLE_TEXTS}

    turns = list(PROBES["conversation"])
    query = turns.pop()
    assert query["role"] == "user"
    chat = tokenizer.build_chat_input(query["content"], history=turns, role="user")
    reference["chat_ids"] = chat["input_ids"][0].tolist()
    reference["chat_messages"] = [tokenizer.build_single_message(t["role"], "", t["content"])
                                  for t in PROBES["conversation"]]
    reference["chat_builder"] = ("tokenization_chatglm.ChatGLMTokenizer.build_chat_input(query, history); "
                                 "the system message is kept as <|system|>; [gMASK] sop prefix added")
    stops = [tokenizer.eos_token_id, tokenizer.get_command("<|user|>"), tokenizer.get_command("<|observation|>")]
    reference["chat_stop_ids"] = stops
    with torch.no_grad():
        out = model.generate(chat["input_ids"], attention_mask=chat["attention_mask"], max_new_tokens=8,
                             do_sample=False, eos_token_id=stops, pad_token_id=0)
    reference["greedy_chat_ids"] = out[0, chat["input_ids"].shape[1]:].tolist()
    write(FAMILY, reference)


if __name__ == "__main__":
    main()
