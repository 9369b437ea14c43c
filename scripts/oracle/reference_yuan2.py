"""Oracle for the Yuan2 family (IEITYuan/Yuan2-2B-hf): runs the ORIGINAL remote code.

    .oracle/tf-4.53.3/bin/python scripts/oracle/reference_yuan2.py

Loads ../shared/fixtures/legacy/yuan2 with trust_remote_code under transformers 4.53.3 (the newest release whose
`generate` the code still runs on; its hub chat template needs >= 4.34, NOTES.md) and writes
tests/fixtures/legacy_reference/yuan2.json. No CPU shims are needed: this revision of yuan_hf_model.py has its
flash-attn imports commented out and `use_flash_attention: false` in the config keeps it on the eager path.

Besides common.model_reference (train / eval / padded-eval on the 40-token input) this records:
- `tail_eval_logits`: eval on the padded row's tail alone. The original ignores a passed attention mask whenever
  `reset_position_ids` is true (YuanModel.forward builds its mask from the <eod> positions only), so its own
  padded row attends to the pads; tunelab's native model honours the mask and must give these logits instead;
- `eod_*`: the 40 ids with <eod> (77185) written at positions 9 and 24: attention restarts after each <eod>
  (YuanModel._prepare_decoder_attention_mask_training), positions do not, the convolutions run across it;
- `greedy_ids` (8 new tokens from the first 12 ids), `greedy_ids_eod` (a prompt holding an <eod>),
  `greedy_ids_one` (a one-token prompt: the LFA cache starts as [0, x0], YuanAttention.forward);
- the tokenizer twice: `token_ids` etc. from the hub folder's files as they are (LlamaTokenizer, slow,
  sentencepiece, legacy behaviour), and `readme_*` from the model card's usage, which loads it with
  eos_token='<eod>' and adds Yuan's special tokens with `add_tokens([...], special_tokens=True)` (on the
  probe texts and the extra files, which hold no special-token text, both give the same ids);
- `chat_ids`: the hub chat_template (tokenizer_config.json) for probes.json's conversation, generation prompt
  asked for (the template has no generation-prompt branch: the last user turn ends with <sep>).
Logits are rounded to 1e-6 (`rounded`) to keep the JSON under 1 MB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PROBES, columns, fixture_copy, input_ids, model_reference, write  # noqa: E402

FAMILY = "yuan2"
EOD = 77185
EOD_POSITIONS = (9, 24)
EXTRA_TEXT_FILES = ("yuan_hf_model.py", "LICENSE-Yuan")  # longer mixed texts for tokenizer agreement
# the model card's (README) tokenizer setup, in its order
README_TOKENS = ['<sep>', '<pad>', '<mask>', '<predict>', '<FIM_SUFFIX>', '<FIM_PREFIX>', '<FIM_MIDDLE>',
                 '<commit_before>', '<commit_msg>', '<commit_after>', '<jupyter_start>', '<jupyter_text>',
                 '<jupyter_code>', '<jupyter_output>', '<empty_output>']
MIXED = ["a<eod>b", "x<n>y", "a<sep>b", "a <sep> b", "<mask>x<predict>", "<FIM_PREFIX>def<FIM_SUFFIX>x<FIM_MIDDLE>",
         "hi<eod>\nWhat", "<jupyter_start><jupyter_code>print(1)<jupyter_output>1<empty_output>",
         "<commit_before>a<commit_msg>fix<commit_after>b", "<pad><pad>end", "<s>x</s><unk>"]


def rounded(value, digits: int = 6):
    """Logit lists at 1e-6 (the parity tolerance is 1e-4), to keep the JSON under 1 MB; losses stay exact."""
    if isinstance(value, dict):
        return {key: (item if "loss" in key else rounded(item, digits)) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return round(value, digits) if isinstance(value, float) else value


def greedy(model, ids: list[int]) -> list[int]:
    out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, use_cache=True)
    return out[0, len(ids):].tolist()


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaTokenizer

    folder = fixture_copy(FAMILY)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, torch_dtype=torch.float32)
    config = model.config
    assert not config.use_flash_attention and config.reset_position_ids and config.reset_attention_mask
    vocab = config.vocab_size
    ids = input_ids(vocab)
    assert EOD not in ids
    reference = model_reference(model, ids, vocab)
    cols = columns(vocab, ids)
    pad = PROBES["pad"]
    eod_ids = list(ids)
    for position in EOD_POSITIONS:
        eod_ids[position] = EOD
    with torch.no_grad():
        model.eval()
        tail = model(input_ids=torch.tensor([ids[pad:]]), return_dict=True).logits.float()[0]
        model.train()
        out = model(input_ids=torch.tensor([eod_ids]), labels=torch.tensor([eod_ids]), return_dict=True)
        eod_train = out.logits.float()[0]
        eod_loss = float(out.loss)
        model.eval()
        eod_eval = model(input_ids=torch.tensor([eod_ids]), return_dict=True).logits.float()[0]
        greedy_ids = greedy(model, ids[:12])
        greedy_eod = greedy(model, eod_ids[:12])
        greedy_one = greedy(model, ids[:1])
    reference.update(
        tail_eval_logits=tail[:, cols].tolist(),
        eod_ids=eod_ids, eod_positions=list(EOD_POSITIONS), eod_loss=eod_loss,
        eod_logits=eod_train[:, cols].tolist(), eod_eval_logits=eod_eval[:, cols].tolist(),
        eod_columns=columns(vocab, eod_ids),
        greedy_ids=greedy_ids, greedy_ids_eod=greedy_eod, greedy_ids_one=greedy_one,
    )
    reference["eod_logits"] = eod_train[:, reference["eod_columns"]].tolist()
    reference["eod_eval_logits"] = eod_eval[:, reference["eod_columns"]].tolist()

    hub = AutoTokenizer.from_pretrained(folder, use_fast=False, trust_remote_code=True)
    assert type(hub).__name__ == "LlamaTokenizer" and hub.legacy
    readme = LlamaTokenizer.from_pretrained(folder, add_eos_token=False, add_bos_token=False, eos_token="<eod>")
    readme.add_tokens(README_TOKENS, special_tokens=True)
    texts = PROBES["texts"]
    reference["token_ids"] = {text: hub.encode(text) for text in texts}
    plain = {text: hub.encode(text, add_special_tokens=False) for text in texts}
    assert plain == reference["token_ids"], "add_bos_token / add_eos_token are false: the two must agree"
    reference["readme_token_ids"] = {text: readme.encode(text) for text in texts}
    extra = {name: (folder / name).read_text(encoding="utf-8") for name in EXTRA_TEXT_FILES}
    reference["extra_token_ids"] = {name: hub.encode(text) for name, text in extra.items()}
    assert all(readme.encode(text) == reference["extra_token_ids"][name] for name, text in extra.items())
    reference["mixed_token_ids"] = {text: hub.encode(text) for text in MIXED}
    reference["readme_mixed_token_ids"] = {text: readme.encode(text) for text in MIXED}
    reference["decode"] = {text: hub.decode(reference["token_ids"][text]) for text in texts}
    reference["readme_decode"] = {text: readme.decode(readme.encode(text)) for text in texts + MIXED}
    reference["special_tokens"] = {token.content: index for index, token in readme.added_tokens_decoder.items()}
    reference["hub_special_tokens"] = {token.content: index for index, token in hub.added_tokens_decoder.items()}
    reference["vocab_pieces"] = {piece: hub.convert_tokens_to_ids(piece) for piece in ("<n>", "<eod>", "<sep>", "<pad>")}
    for name, tok in (("hub", hub), ("readme", readme)):
        reference[f"{name}_tokenizer"] = {
            "len": len(tok), "vocab_size": tok.vocab_size,
            **{f"{kind}_token": getattr(tok, f"{kind}_token") for kind in ("bos", "eos", "pad", "unk", "sep")},
            **{f"{kind}_token_id": getattr(tok, f"{kind}_token_id") for kind in ("bos", "eos", "pad", "unk", "sep")},
            "all_special_tokens": list(tok.all_special_tokens),
        }
    conversation = PROBES["conversation"]
    reference["chat_text"] = hub.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    reference["chat_ids"] = list(hub.apply_chat_template(conversation, tokenize=True, add_generation_prompt=True))
    readme_chat = list(readme.apply_chat_template(conversation, tokenize=True, add_generation_prompt=True))
    assert readme_chat == reference["chat_ids"]
    reference["chat_builder"] = ("the hub chat_template of tokenizer_config.json (apply_chat_template); the system "
                                 "message is kept (content + '\\n'), turns are joined by the text '<n>' (three "
                                 "sentencepiece tokens), the last turn ends with <sep>; add_generation_prompt has "
                                 "no effect")
    write(FAMILY, rounded(reference))


if __name__ == "__main__":
    main()
