"""Write tests/fixtures/anchor_templates/llamafactory-<version>.json: every template name LLaMA-Factory accepts,
and what each renders on six probe conversations, through the anchor's own `encode_multiturn`.

Run it in the anchor's environment (`bash ../shared/bench/anchor_cpu_setup.sh /tmp/lfenv`):
    /tmp/lfenv/bin/python scripts/templates/dump_anchor_templates.py tests/fixtures/anchor_templates/llamafactory-0.9.5.json

A stand-in tokenizer turns every slot into one "token" that remembers its text, so the fixture is the
anchor's exact text (bos / eos written as <BOS> / <EOS>; a template that replaces eos uses its stop word),
with the prompt / response split of each turn. tests/templates/test_anchor_names.py reads it.
"""
import json
import sys

import llamafactory
import llamafactory.data.template as T


class FakeTok:
    """Each encoded piece is one id that remembers its text."""

    def __init__(self, eos="<EOS>"):
        self.table = []
        self.bos_token, self.eos_token = "<BOS>", eos
        self.bos_token_id = self._id(self.bos_token)
        self.eos_token_id = self._id(eos)

    def _id(self, text):
        self.table.append(text)
        return len(self.table) - 1

    def encode(self, text, add_special_tokens=False):
        return [self._id(text)] if text else []

    def convert_tokens_to_ids(self, token):
        return self._id(token)

    def text(self, ids):
        return "".join(self.table[i] for i in ids)


U1, A1, U2, A2 = "Hi there", "Hello! How can I help?", "What is 2+2?", "4"
SYS = "You are terse."
PROBES = {
    "single": (None, [U1, A1]),
    "system": (SYS, [U1, A1]),
    "multi": (SYS, [U1, A1, U2, A2]),
    "multi_nosys": (None, [U1, A1, U2, A2]),
    "prompt": (SYS, [U1, A1, U2, ""]),
    "prompt_nosys": (None, [U1, ""]),
}
out = {"llamafactory": llamafactory.__version__, "names": list(T.TEMPLATES), "bos": "<BOS>", "eos": "<EOS>", "probes": {k: {"system": s, "turns": t} for k, (s, t) in PROBES.items()}, "templates": {}}
for name, tpl in T.TEMPLATES.items():
    eos = tpl.stop_words[0] if tpl.replace_eos and tpl.stop_words else "<EOS>"
    rec = {"eos": eos}
    for key, (system, turns) in PROBES.items():
        tok = FakeTok(eos)
        msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": c} for i, c in enumerate(turns)]
        try:
            pairs = tpl.encode_multiturn(tok, msgs, system)
            texts = [[tok.text(p), tok.text(r)] for p, r in pairs]
            if key.startswith("prompt"):
                rec[key] = "".join(p + r for p, r in texts[:-1]) + texts[-1][0]
            else:
                rec[key] = texts
        except Exception as error:  # a template that refuses a probe: recorded, not fatal
            rec[key] = {"error": repr(error)}
    out["templates"][name] = rec
json.dump(out, open(sys.argv[1], "w"), indent=1, ensure_ascii=False)
print(len(out["templates"]))
