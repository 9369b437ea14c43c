"""A seeded, bounded fuzzer of config files: mutations of the tutorials' configs run through
`tunelab check CONFIG --portable` in-process.

Every case must end in exit 0 or 2 (never a traceback), within CASE_SECONDS (never a hang), print a
bounded amount, and a mutation that puts a value out of its range (config/ranges.py), gives a number
where none fits, or breaks the file itself must be refused (exit 2) with a message naming the key (or
the file's problem). `tests/config/test_fuzz_config.py` runs a CI-sized sample (TUNELAB_FUZZ_EXAMPLES);
`python tests/config/fuzz_config.py [N]` runs the whole campaign (or N cases) and prints the counts.

The oracle of "out of range" is independent where it can be: a non-finite number is always refused;
otherwise the range table decides, so a row that is too lax is a review question, not a fuzz failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: seed_configs, when run as a script
from seed_configs import SEED_000_TRAIN, SEED_001_MERGE  # noqa: E402

CASE_SECONDS = 10.0  # one check reads a tiny data set; far more than this is a hang
MAX_OUTPUT = 200_000  # characters a check may print (a billion-laughs document once printed 2 GB)

# Seed 000's config (tutorial 000, "使用 LLaMA-Factory 微调 LLaMA3"), model path swapped for a missing one:
# --portable does not look at the model.
SEED_000 = SEED_000_TRAIN.format(fp16="true", model="/nonexistent/Llama3-8B-Chinese-Chat")
# Seed 001's training command line (tutorial 001, TeleChat2) written as YAML, and its merge config.
SEED_001_TRAIN = """\
stage: sft
do_train: true
model_name_or_path: ./telechat_7B
preprocessing_num_workers: 16
finetuning_type: lora
template: telechat
flash_attn: auto
dataset_dir: data
dataset: identity,alpaca_en_demo
cutoff_len: 1024
learning_rate: 3.e-5
num_train_epochs: 2.0
max_samples: 100000
per_device_train_batch_size: 1
gradient_accumulation_steps: 1
lr_scheduler_type: cosine
max_grad_norm: 1.0
logging_steps: 1
save_steps: 100
warmup_steps: 0
optim: adamw_torch
packing: false
report_to: none
output_dir: saves/telechat_7B_lora
plot_loss: true
ddp_timeout: 180000000
include_num_input_tokens_seen: true
lora_rank: 8
lora_alpha: 16
lora_dropout: 0
lora_target: all
"""
SEEDS: dict[str, str] = {"seed000": SEED_000, "seed001_train": SEED_001_TRAIN, "seed001_merge": SEED_001_MERGE}

#: numeric edge values as written in YAML
EDGE_VALUES: tuple[str, ...] = (
    "0", "-1", "-3", "0.5", "1.5", "1e308", "1.0e+308", "-1.0e+308", ".inf", "-.inf", ".nan", "1e5000",
    str(10**30), str(2**31), str(-(2**63)), "9" * 5000,
)
WRONG_TYPES: tuple[str, ...] = ("abc", "[1, 2]", "{a: 1}", "true", "''", "0x1F", "1_000", "'12'", "1e-4")
TYPO_KEYS: tuple[str, ...] = ("lerning_rate", "lora_rnk", "cutof_len", "gradient_accumulation_step", "num_epochs",
                              "per_device_batch_size", "xyzzy", "Learning_Rate")
BENIGN_KEYS: tuple[str, ...] = ("stage", "finetuning_type", "template", "lora_target", "report_to", "optim",
                                "lr_scheduler_type", "packing", "fp16", "dataset")


@dataclass(frozen=True)
class Mutation:
    """One config file to check, and what must happen: `must_name` set means exit 2 with it in the message."""

    name: str
    seed: str
    content: bytes
    must_name: str | None = None
    suffix: str = ".yaml"


@dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    kind: str  # accepted, refused, traceback, hang, nonsense-accepted, key-not-named, too-much-output
    seconds: float
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.kind not in ("accepted", "refused")


def _set_line(seed_text: str, key: str, text: str) -> str:
    """`seed_text` with `key: text` in place of its own line for key (or added at the end)."""
    lines = [line for line in seed_text.splitlines() if not line.startswith(f"{key}:")]
    return "\n".join([*lines, f"{key}: {text}"]) + "\n"


def out_of_range_key(key: str, text: str) -> str | None:
    """`key` when `key: text` must be refused: not a number the key's type takes, non-finite, or outside
    config/ranges.py's row. None when the value is acceptable (the check may still refuse it for
    another reason: that is exit 2 with any message)."""
    import yaml

    from tunelab.config.coerce import CoercionError, _convert
    from tunelab.config.groups import all_fields
    from tunelab.config.ranges import range_problem

    try:
        value = yaml.safe_load(f"v: {text}")["v"]
    except ValueError:  # more than 4300 digits
        return key
    if value is None:
        return None  # `key: ` / null: not set
    hint = all_fields()[key][0].hint
    try:
        typed = _convert(value, hint)
    except (CoercionError, OverflowError):
        return key
    if isinstance(typed, float) and not math.isfinite(typed):
        return key
    return key if range_problem(key, typed) else None


def numeric_keys() -> list[str]:
    from tunelab.config.ranges import RANGES

    return sorted(RANGES)


BILLION_LAUGHS = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi")),
    ]
)


def file_mutations(seed: str, text: str) -> list[Mutation]:
    """Mutations of the file itself: encodings, aliases, structure."""
    body = text.encode("utf-8")
    cases = [
        Mutation("latin-1 byte", seed, body + "default_system: café\n".encode("latin-1"), "UTF-8"),
        Mutation("utf-16 file", seed, text.encode("utf-16"), "UTF-8"),
        Mutation("stray 0xff", seed, b"\xff" + body, "UTF-8"),
        Mutation("truncated utf-8", seed, body + b"default_system: \xe4\xbd\n", "UTF-8"),
        Mutation("utf-8 bom", seed, b"\xef\xbb\xbf" + body),
        Mutation("nul byte", seed, body + b"default_system: a\x00b\n", "not valid YAML"),
        Mutation("billion laughs", seed, body + BILLION_LAUGHS.encode(), "alias"),
        Mutation("recursive alias", seed, body + b"lora_target: &x [a, *x]\n", "alias"),
        Mutation("benign alias", seed, _set_line(text, "lora_rank", "&r 8").encode() + b"lora_alpha: *r\n"),
        Mutation("merge key", seed, body + b"<<: {lora_rank: 4}\n"),
        Mutation("top-level list", seed, b"- a\n- b\n", "mapping"),
        Mutation("top-level scalar", seed, b"just text\n", "mapping"),
        Mutation("empty file", seed, b""),
        Mutation("deep nesting", seed, body + b"default_system: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested"),
        Mutation("tab indentation", seed, body + b"lora_rank:\n\t8\n", "not valid YAML"),
        Mutation("unclosed quote", seed, body + b'template: "llama3\n', "not valid YAML"),
        Mutation("huge int literal", seed, _set_line(text, "cutoff_len", "9" * 5000).encode(), "cutoff_len"),
    ]
    as_json = json.dumps({k: v for k, v in _loads(text).items()}).encode()
    cases += [
        Mutation("json config", seed, as_json, suffix=".json"),
        Mutation("json huge int", seed, as_json[:-1] + b', "cutoff_len": ' + b"9" * 5000 + b"}", "4300 digits",
                 suffix=".json"),
        Mutation("json duplicate key", seed, as_json[:-1] + b', "learning_rate": 0}', "learning_rate", suffix=".json"),
        Mutation("json latin-1", seed, as_json[:-1] + ', "default_system": "café"}'.encode("latin-1"), "UTF-8",
                 suffix=".json"),
    ]
    return cases


def _loads(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def all_mutations() -> list[Mutation]:
    """The whole campaign, in a fixed order: every numeric key x every edge value on seed 000, wrong
    types, typos, duplicates and the file's own mutations on every seed."""
    cases: list[Mutation] = []
    keys = numeric_keys()
    for key in keys:
        for text in EDGE_VALUES:
            cases.append(Mutation(f"{key}: {text[:20]}", "seed000", _set_line(SEED_000, key, text).encode(),
                                  out_of_range_key(key, text)))
    for seed, seed_text in SEEDS.items():
        for key in [*keys[::7], *BENIGN_KEYS]:
            for text in WRONG_TYPES:
                expected = out_of_range_key(key, text) if key in keys else None
                cases.append(Mutation(f"{key}: {text}", seed, _set_line(seed_text, key, text).encode(), expected))
        for typo in TYPO_KEYS:
            cases.append(Mutation(f"unknown key {typo}", seed, (seed_text + f"{typo}: 1\n").encode(), typo))
        for key, first, last in (("learning_rate", "1e-4", "0"), ("cutoff_len", "-1", "512"),
                                 ("gradient_accumulation_steps", "4", "0"), ("seed", "-1", "7")):
            content = (_set_line(seed_text, key, first) + f"{key}: {last}\n").encode()
            cases.append(Mutation(f"duplicate {key}", seed, content, out_of_range_key(key, last)))
        cases += file_mutations(seed, seed_text)
    return cases


def sample(count: int, seed: int = 0) -> list[Mutation]:
    cases = all_mutations()
    if count >= len(cases):
        return cases
    return random.Random(seed).sample(cases, count)


def write_data(root: Path) -> None:
    """The seeds' data folder: fintech, identity and alpaca_en_demo, one row each."""
    data = root / "data"
    data.mkdir(exist_ok=True)
    row = [{"instruction": "你是谁？", "input": "", "output": "我是助手。"}]
    (data / "dataset_info.json").write_text(json.dumps({name: {"file_name": f"{name}.json"}
                                                        for name in ("fintech", "identity", "alpaca_en_demo")}))
    for name in ("fintech", "identity", "alpaca_en_demo"):
        (data / f"{name}.json").write_text(json.dumps(row, ensure_ascii=False), encoding="utf-8")


class _Hang(BaseException):
    """Raised by the alarm: the case ran past CASE_SECONDS."""


def run_case(mutation: Mutation, root: Path) -> Outcome:
    """`tunelab check FILE --portable` on the mutation, in `root` (which holds data/)."""
    from tunelab.cli.main import main

    path = root / f"case{mutation.suffix}"
    path.write_bytes(mutation.content)
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()

    def alarm(*_):
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    start = time.perf_counter()
    try:
        os.chdir(root)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", str(path), "--portable"])
    except _Hang:
        return Outcome(mutation, "hang", time.perf_counter() - start)
    except BaseException as error:  # noqa: BLE001 - a traceback is what the fuzzer looks for
        if isinstance(error, KeyboardInterrupt):
            raise
        return Outcome(mutation, "traceback", time.perf_counter() - start, f"{type(error).__name__}: {error}"[:500])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(before)
    seconds = time.perf_counter() - start
    message = err.getvalue()
    if len(out.getvalue()) + len(message) > MAX_OUTPUT:
        return Outcome(mutation, "too-much-output", seconds, f"{len(out.getvalue()) + len(message)} characters")
    if code not in (0, 2):
        return Outcome(mutation, "traceback", seconds, f"exit code {code}")
    if mutation.must_name is not None:
        if code == 0:
            return Outcome(mutation, "nonsense-accepted", seconds, out.getvalue()[-300:])
        if mutation.must_name not in message:
            return Outcome(mutation, "key-not-named", seconds, message[-500:])
    return Outcome(mutation, "accepted" if code == 0 else "refused", seconds, message.strip()[-300:])


def run_campaign(cases: list[Mutation]) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="tunelab-fuzz-") as folder:
        root = Path(folder)
        write_data(root)
        return [run_case(case, root) for case in cases]


def summary(outcomes: list[Outcome]) -> str:
    kinds = Counter(outcome.kind for outcome in outcomes)
    must = sum(1 for o in outcomes if o.mutation.must_name is not None)
    slowest = max((o.seconds for o in outcomes), default=0.0)
    lines = [f"{len(outcomes)} mutations ({must} that must be refused): " + ", ".join(
        f"{kind} {kinds[kind]}" for kind in ("accepted", "refused", "traceback", "hang", "nonsense-accepted",
                                              "key-not-named", "too-much-output")),
             f"slowest case {slowest:.2f} s"]
    lines += [f"  FAILED {o.kind}: [{o.mutation.seed}] {o.mutation.name}: {o.detail}" for o in outcomes if o.failed]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else len(all_mutations())
    started = time.perf_counter()
    results = run_campaign(sample(count))
    print(summary(results))
    print(f"total {time.perf_counter() - started:.1f} s")
