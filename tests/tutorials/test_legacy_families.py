"""Issue 25 end to end: the tutorials' own remote-code models (tiny checkpoints in their ORIGINAL layout, with
their code files, from shared/fixtures/legacy/) through each seed's commands: train with the seed's flags, then
chat with the trained model, api / webchat, the merged export in the native layout (reloaded by plain
transformers in a fresh process, matching the adapter model's logits), the original-layout export (and, where
the oracle environments exist, reloaded with the family's own code), and training from the web UI. None of the
checkpoints' own Python files runs (trust_remote_code stays false).

What differs from the tutorials: the model path; `fp16`, `bf16`, `quantization_bit` and `deepspeed` dropped
(`tunelab check` names exactly these on a machine without CUDA); and, to keep the test short, `max_steps=6`,
`logging_steps=1` and `learning_rate=5e-3`. The data: the tutorials' LLaMA-Factory `data/` folder with the
data sets they name registered as 12-row files. "The loss falls" is measured on the training examples, before
and after (the run's own curve steps through different examples, one or four at a time)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from _seedkit import run, wait_for_job

import tunelab.config.hardware as hardware
from seed_configs import SEED_001_INFERENCE, SEED_001_MERGE
from tunelab.data.dataset_info import bundled_data_dir
from tunelab.testing import legacy_fixture_path


@dataclass(frozen=True)
class FamilySeed:
    """One family as its tutorial runs it: the train command (after `llamafactory-cli train`, `python
    src/train_bash.py`, `accelerate launch src/train_bash.py` or `deepspeed ... src/train_bash.py`)."""

    family: str
    folder: str  # the tutorial's model folder name
    train: str  # word for word, `{model}` for the path; CPU changes applied below
    template: str
    output_dir: str
    board: bool  # trained from LLaMA Board here (seed 002's Baichuan2-13B; seed 003's Qwen 1 for the three it names:
    # the board runs the same `tunelab train` child for every family, so one of them stands for the others)


SEEDS: tuple[FamilySeed, ...] = (
    FamilySeed(  # seed 001: TeleChat2-7B, the command line of "lora 微调" (`--template telechat`, as written)
        "telechat2", "telechat_7B",
        "--stage sft --do_train True --model_name_or_path {model} --preprocessing_num_workers 16 "
        "--finetuning_type lora --template telechat --flash_attn auto --dataset_dir data --dataset "
        "identity,alpaca_en_demo --cutoff_len 1024 --learning_rate 3.e-5 --num_train_epochs 2.0 --max_samples 100000 "
        "--per_device_train_batch_size 1 --gradient_accumulation_steps 1 --lr_scheduler_type cosine --max_grad_norm "
        "1.0 --logging_steps 1 --save_steps 100 --warmup_steps 0 --optim adamw_torch --packing False --report_to "
        "none --output_dir saves/telechat_7B_lora --plot_loss True --ddp_timeout 180000000 "
        "--include_num_input_tokens_seen True --lora_rank 8 --lora_alpha 16 --lora_dropout 0 --lora_target all",
        "telechat", "saves/telechat_7B_lora", False),
    FamilySeed(  # seed 003: single_lora_qwen.sh on Qwen-1_8B-Chat (the Int4 one needs CUDA: see test_remote_code)
        "qwen", "Qwen-1_8B-Chat",
        "--report_to tensorboard --logging_dir single_lora_qwen_log --stage sft --do_train True --model_name_or_path "
        "{model} --dataset alpaca_gpt4_zh --template qwen --lora_target c_attn --output_dir single_lora_qwen_checkpoint "
        "--overwrite_cache --per_device_train_batch_size 4 --gradient_accumulation_steps 8 --lr_scheduler_type cosine "
        "--logging_steps 5 --save_steps 100 --learning_rate 5e-5 --num_train_epochs 1.0 --finetuning_type lora --fp16 "
        "--lora_rank 8 --quantization_bit 4",
        "qwen", "single_lora_qwen_checkpoint", True),
    FamilySeed(  # seed 003: distributed_lora_chatglm3.sh (`accelerate launch src/train_bash.py`)
        "chatglm3", "chatglm3-6b",
        "--report_to tensorboard --logging_dir dist_chatglm3_6b_lora --do_train --model_name_or_path {model} "
        "--dataset alpaca_gpt4_zh --template chatglm3 --lora_target all --output_dir dist_chatglm3_lora_checkpoint "
        "--overwrite_cache --per_device_train_batch_size 1 --gradient_accumulation_steps 1 --lr_scheduler_type cosine "
        "--logging_steps 10 --save_steps 200 --learning_rate 5e-5 --num_train_epochs 3.0 --plot_loss --fp16 "
        "--lora_rank 8",
        "chatglm3", "dist_chatglm3_lora_checkpoint", False),
    FamilySeed(  # seed 003: single_lora_baichuan2.sh = single_lora_qwen.sh with Baichuan2's template and W_pack
        "baichuan2_7b", "Baichuan2-7B-Chat",
        "--stage sft --do_train True --model_name_or_path {model} --dataset alpaca_gpt4_zh --template baichuan2 "
        "--lora_target W_pack --output_dir single_lora_baichuan2_checkpoint --overwrite_cache "
        "--per_device_train_batch_size 4 --gradient_accumulation_steps 8 --lr_scheduler_type cosine --logging_steps 5 "
        "--save_steps 100 --learning_rate 5e-5 --num_train_epochs 1.0 --finetuning_type lora --fp16 --lora_rank 8 "
        "--quantization_bit 4",
        "baichuan2", "single_lora_baichuan2_checkpoint", False),
    FamilySeed(  # seed 002: Baichuan2-13B-Chat from LLaMA Board (bf16, LoRA on W_pack); its CLI equivalent
        "baichuan2_13b", "Baichuan2-13B-Chat",
        "--stage sft --do_train True --model_name_or_path {model} --finetuning_type lora --template baichuan2 "
        "--dataset_dir data --dataset alpaca_gpt4_zh --cutoff_len 1024 --learning_rate 5e-05 --num_train_epochs 3.0 "
        "--max_samples 100000 --per_device_train_batch_size 4 --gradient_accumulation_steps 4 --lr_scheduler_type "
        "cosine --max_grad_norm 1.0 --logging_steps 5 --save_steps 100 --warmup_steps 0 --lora_rank 8 --lora_dropout "
        "0.1 --lora_target W_pack --output_dir saves/Baichuan2-13B-Chat/lora/train_2024-01-01 --bf16 True "
        "--plot_loss True",
        "baichuan2", "saves/Baichuan2-13B-Chat/lora/train_2024-01-01", True),
    FamilySeed(  # seed 004: Yuan2-2B full fine-tuning (`deepspeed --num_gpus=8 src/train_bash.py ...`)
        "yuan2", "yuan2-2B-hf",
        "--stage sft --model_name_or_path {model} --do_train --dataset alpaca_en --finetuning_type full --output_dir "
        "yuan2_2B_full_fintuning_checkpoint --overwrite_cache --per_device_train_batch_size 4 "
        "--per_device_eval_batch_size 4 --gradient_accumulation_steps 4 --preprocessing_num_workers 16 "
        "--lr_scheduler_type cosine --logging_steps 10 --save_steps 10000 --learning_rate 5e-5 --max_grad_norm 0.5 "
        "--num_train_epochs 3 --evaluation_strategy no --bf16 --deepspeed ./zero2_ds_woloading.json --template yuan "
        "--overwrite_output_dir --cutoff_len 2048 --sft_packing --gradient_checkpointing True",
        "yuan", "yuan2_2B_full_fintuning_checkpoint", False),
)
DATA_ROWS = 12
#: the changes a CPU needs (named by `tunelab check`, see test_check_names_the_cpu_changes), then test speed
CPU_DROPS = ("--fp16", "--quantization_bit 4", "--bf16 True", "--bf16", "--deepspeed ./zero2_ds_woloading.json")
FAST = ["--max_steps", "6", "--logging_steps", "1", "--learning_rate", "5e-3", "--save_steps", "100"]



class _NoSocket:
    """Stands in for the port `tunelab api` binds before loading the model (tests run in parallel)."""

    def close(self) -> None:
        pass

def cpu_argv(seed: FamilySeed, model: Path) -> list[str]:
    argv = " " + seed.train.format(model=model) + " "
    for flag in CPU_DROPS:
        argv = argv.replace(f" {flag} ", " ")
    return argv.split()


def write_data(root: Path) -> None:
    """LLaMA-Factory's data/: every data set the seeds name, as small local files."""
    data = root / "data"
    data.mkdir(exist_ok=True)
    bundled = bundled_data_dir()
    identity = json.loads((bundled / "identity.json").read_text(encoding="utf-8"))[:DATA_ROWS]
    english = json.loads((bundled / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:DATA_ROWS]
    chinese = json.loads((bundled / "alpaca_zh_demo.json").read_text(encoding="utf-8"))[:DATA_ROWS]
    files = {"identity": identity, "alpaca_en_demo": english, "alpaca_en": english, "alpaca_gpt4_zh": chinese}
    for name, rows in files.items():
        (data / f"{name}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    info = {name: {"file_name": f"{name}.json"} for name in files}
    (data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")


@dataclass(frozen=True)
class Trained:
    seed: FamilySeed
    root: Path
    model: Path
    log: str

    @property
    def out(self) -> Path:
        return self.root / self.seed.output_dir


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
    return [row["loss"] for row in rows if "loss" in row]


@pytest.fixture(scope="module", params=SEEDS, ids=[s.family for s in SEEDS])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """The seed's train command, once per family, in its own LLaMA-Factory folder."""
    import contextlib

    from tunelab.cli.main import main

    seed: FamilySeed = request.param
    root = tmp_path_factory.mktemp(seed.family)
    model = root / seed.folder
    shutil.copytree(legacy_fixture_path(seed.family), model)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("TUNELAB_CACHE", str(root / "cache"))
        write_data(root)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["train", *cpu_argv(seed, Path(seed.folder)), *FAST])
        assert code == 0, err.getvalue()[-4000:]
        yield Trained(seed, root, model, err.getvalue())


@pytest.fixture
def at(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Trained:
    monkeypatch.chdir(trained.root)
    monkeypatch.setenv("TUNELAB_CACHE", str(trained.root / "cache"))
    return trained


def _adapter_args(at: Trained) -> list[str]:
    if "--finetuning_type full" in at.seed.train:
        return [f"model_name_or_path={at.seed.output_dir}"]
    return [f"model_name_or_path={at.seed.folder}", f"adapter_name_or_path={at.seed.output_dir}",
            "finetuning_type=lora"]


def _training_loss(at: Trained, *, trained: bool) -> float:
    """Mean supervised loss over the run's first training examples, of the base model or the trained one (the
    run's own loss curve steps through different examples, one or four at a time: too noisy to compare)."""
    from tunelab.config.parser import parse_config
    from tunelab.data.conversation import Message, Role
    from tunelab.data.encode import encode_supervised
    from tunelab.data.templates import get_template
    from tunelab.export.merge import attach_adapters, load_base

    args = _adapter_args(at) if trained else [f"model_name_or_path={at.seed.folder}"]
    config = parse_config([*args, f"template={at.seed.template}"])
    loaded = load_base(config, torch.float32)
    model = attach_adapters(loaded.model, config.model.adapter_paths()).eval()
    template = get_template(at.seed.template, loaded.tokenizer)
    dataset = at.seed.train.split("--dataset ")[1].split()[0].split(",")[0]
    rows = json.loads((at.root / "data" / f"{dataset}.json").read_text(encoding="utf-8"))[:4]
    losses = []
    with torch.no_grad():
        for row in rows:
            messages = [Message(Role.USER, (row["instruction"] + "\n" + row.get("input", "")).strip()),
                        Message(Role.ASSISTANT, row["output"])]
            encoded = encode_supervised(loaded.tokenizer, template, messages, cutoff_len=256)
            losses.append(float(model(input_ids=torch.tensor([encoded["input_ids"]]),
                                      labels=torch.tensor([encoded["labels"]])).loss))
    return sum(losses) / len(losses)


def test_train_runs_natively_and_the_loss_falls(at):
    assert len(_losses(at.out)) == 6
    before, after = _training_loss(at, trained=False), _training_loss(at, trained=True)
    assert after < before - 0.05, (before, after)
    assert "first use only" in at.log and "no remote code runs" in at.log
    weights = "adapter_model.safetensors" if "lora" in at.seed.train else "model.safetensors"
    assert (at.out / weights).is_file()
    assert not list((at.root / "cache").rglob("transformers_modules"))  # no remote code was imported
    if at.seed.family == "yuan2":  # the original's <eod> attention reset hides earlier turns: said, not hidden
        assert "reset_attention_mask: true (config.json) restarts attention after every <eod>" in at.log
    if "--lora_target all" not in at.seed.train and "lora" in at.seed.train:
        own = at.seed.train.split("--lora_target ")[1].split()[0]
        assert f"lora_target: {own} (" in at.log and "own name) is " in at.log


def test_check_names_the_cpu_changes_and_nothing_else(at, capsys, monkeypatch):
    """The seed's command as published: on a machine without CUDA `check` names fp16 / bf16 / QLoRA / DeepSpeed
    (the changes cpu_argv makes) and nothing about the model's own code."""
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    result = run(capsys, "check", *at.seed.train.format(model=at.seed.folder).split(), "--overwrite_output_dir", "true")
    dropped = [flag for flag in CPU_DROPS if f" {flag} " in f" {at.seed.train} "]
    keys = {flag.split()[0].lstrip("-") for flag in dropped} - ({"bf16"} if hardware.cpu_supports_bf16() else set())
    if not keys:
        assert result.code == 0, result.err
        return
    assert result.code == 2
    lines = result.error.splitlines()
    problems = [line.strip() for line in lines[1:]] if "problems found" in lines[0] else lines
    assert {key for key in keys if any(key in line for line in problems)} == keys, result.error
    # nothing else: not the model's own code, not its layer names (lora_target: W_pack / c_attn)
    assert all(any(key in line for key in keys) for line in problems), result.error


def test_chat_through_a_pipe_with_the_trained_model(at, capsys, monkeypatch):
    from tunelab.cli import cmd_chat
    from tunelab.config.parser import parse_config
    from tunelab.data.conversation import Message, Role
    from tunelab.infer.loader import load_chat_model

    argv = [*_adapter_args(at), f"template={at.seed.template}", "max_new_tokens=4", "do_sample=false"]
    chat_model = load_chat_model(parse_config(argv))
    expected = [chat_model.stream_chat([Message(Role.USER, q)]).text() for q in ("你好", "What is 2+2?")]
    monkeypatch.setattr("sys.stdin", io.StringIO("你好\nclear\nWhat is 2+2?\nexit\n"))
    capsys.readouterr()
    assert cmd_chat.main(argv) == 0
    assert capsys.readouterr().out == f"{expected[0]}\n{expected[1]}\n"


def test_api_and_webchat_serve_the_trained_model(at, monkeypatch):
    """Seed 003's "web_demo, API" on Qwen 1, seed 002's board chat on Baichuan2-13B; the other families' serving
    differs from theirs only in the model, which `chat` above loads the same way."""
    if at.seed.family not in ("qwen", "baichuan2_13b"):
        pytest.skip("served for the two families whose tutorials serve them")
    from starlette.testclient import TestClient

    from tunelab.cli import cmd_api

    served = {}
    monkeypatch.setattr("tunelab.cli.cmd_api.bind", lambda host, port: _NoSocket())  # no real port 8000 taken
    monkeypatch.setattr("tunelab.cli.cmd_api.serve",
                        lambda app, settings, sock: served.update(app=app, host=settings.host, port=settings.port))
    assert cmd_api.main([*_adapter_args(at), f"template={at.seed.template}"]) == 0
    reply = TestClient(served["app"], base_url="http://localhost").post("/v1/chat/completions", json={
        "model": "x", "max_tokens": 3, "temperature": 0, "messages": [{"role": "user", "content": "你好"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["role"] == "assistant"
    pytest.importorskip("gradio")
    from tunelab.cli import cmd_webchat

    launched = {}
    monkeypatch.setattr("tunelab.serve.webchat.launch_webchat",
                        lambda chat_model, settings, block=True: launched.update(model=chat_model))
    assert cmd_webchat.main([*_adapter_args(at), f"template={at.seed.template}"]) == 0
    assert launched["model"].template.name == at.seed.template


# seed 001's "huggingface 推理" snippet on the merged export (plain transformers, no tunelab), then logits
RELOAD = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, trust_remote_code=True).eval()
text = tokenizer.apply_chat_template([{"role": "user", "content": "生抽与老抽的区别？"}], tokenize=False,
                                     add_generation_prompt=True)
inputs = tokenizer([text], return_tensors="pt")
generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
assert generated.shape[1] > inputs.input_ids.shape[1]
ids = torch.tensor([json.loads(sys.argv[2])])
with torch.no_grad():
    print(json.dumps(model(input_ids=ids).logits[0].tolist()))
"""
ROOT = Path(__file__).resolve().parents[2]
#: the oracle environment (scripts/oracle/setup.sh) whose transformers runs each family's own code
ORACLE_ENV = {"chatglm3": "tf-4.41.2"}


def _reference_logits(at: Trained, ids: list[int]) -> torch.Tensor:
    from tunelab.config.parser import parse_config
    from tunelab.export.merge import attach_adapters, load_base

    config = parse_config([*_adapter_args(at), f"template={at.seed.template}"])
    loaded = load_base(config, torch.float32)
    model = attach_adapters(loaded.model, config.model.adapter_paths())
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def test_merged_export_reloads_with_plain_transformers_and_matches_the_adapter_model(at, capsys):
    export_dir = at.root / "models" / f"{at.seed.family}_merged"
    gguf = ["--gguf", "f16"] if at.seed.family == "qwen" else []  # Qwen-1 -> qwen2 with byte-level BPE: tunelab's writer
    result = run(capsys, "export", *_adapter_args(at), f"template={at.seed.template}", f"export_dir={export_dir}",
                 "export_size=2", "export_device=cpu", "export_dtype=float32", *gguf)
    assert result.code == 0, result.err
    assert "export check PASSED" in result.out
    assert (export_dir / "model-f16.gguf").is_file() == bool(gguf)
    config = json.loads((export_dir / "config.json").read_text())
    assert config["tunelab_original_family"] == at.seed.family
    ids = [11, 220, 1000, 3000, 5, 42, 77, 900]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", RELOAD, str(export_dir), json.dumps(ids)], capture_output=True,
                          text=True, timeout=300, cwd=at.root, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    plain = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    reference = _reference_logits(at, ids)
    assert torch.allclose(plain, reference, atol=1e-4), (plain - reference).abs().max()


def test_original_layout_export_matches_the_checkpoint_layout_and_reloads(at, capsys):
    from safetensors import safe_open

    from tunelab.model.legacy.convert import weight_files

    export_dir = at.root / "models" / f"{at.seed.family}_original"
    result = run(capsys, "export", *_adapter_args(at), f"template={at.seed.template}", f"export_dir={export_dir}",
                 "export_format=original", "export_dtype=float32")
    assert result.code == 0, result.err
    assert "export_format: original verified" in result.err
    source = legacy_fixture_path(at.seed.family)
    original = json.loads((source / "config.json").read_text())
    written = json.loads((export_dir / "config.json").read_text())
    assert {k: v for k, v in written.items() if k != "torch_dtype"} == \
        {k: v for k, v in original.items() if k != "torch_dtype"}
    for code in source.glob("*.py"):
        assert (export_dir / code.name).read_bytes() == code.read_bytes()

    def shapes(folder: Path) -> dict[str, tuple[int, ...]]:
        found = {}
        for path in weight_files(folder):
            with safe_open(str(path), "pt") as handle:
                found.update({name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()})
        return found

    assert shapes(export_dir) == shapes(source)
    oracle = ROOT / ".oracle" / ORACLE_ENV.get(at.seed.family, "tf-4.53.3") / "bin" / "python"
    if not oracle.exists():
        return  # the family's own code needs its transformers 4.x: scripts/oracle/setup.sh builds it
    ids = [11, 220, 1000, 3000, 5, 42, 77, 900]
    done = subprocess.run([str(oracle), str(ROOT / "scripts" / "oracle" / "reload_original.py"), at.seed.family,
                           str(export_dir), json.dumps(ids)], capture_output=True, text=True, timeout=600,
                          cwd=at.root, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr[-3000:]
    own_code = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    reference = _reference_logits(at, ids)
    assert torch.allclose(own_code, reference, atol=1e-4), (own_code - reference).abs().max()




def test_seed_001_inference_and_merge_files_word_for_word(at, capsys, monkeypatch):
    if at.seed.family != "telechat2":
        pytest.skip("seed 001's files are TeleChat2's")
    from tunelab.cli import cmd_chat

    (at.root / "inference_telechat_lora_sft.yaml").write_text(SEED_001_INFERENCE, encoding="utf-8")
    (at.root / "merge_telechat_lora_sft.yaml").write_text(SEED_001_MERGE, encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("生抽与老抽的区别？\nexit\n"))
    assert cmd_chat.main(["inference_telechat_lora_sft.yaml", "max_new_tokens=3"]) == 0
    result = run(capsys, "export", "merge_telechat_lora_sft.yaml")
    assert result.code == 0, result.err
    assert "export check PASSED" in result.out
    assert (at.root / "models" / "telechat_7B_lora" / "telechat2_modeling.py").is_file()


def test_web_ui_trains_the_family(at, tmp_path):
    if not at.seed.board:
        pytest.skip("the board's training child is the same for every family: qwen and baichuan2_13b run it")
    from tunelab.webui import runs
    from tunelab.webui.jobs import start_job

    lora = "--lora_target " in at.seed.train
    values = {"model_name_or_path": str(at.model), "template": at.seed.template, "finetuning_type": "lora",
              "dataset_dir": "data", "dataset": ["alpaca_gpt4_zh"], "learning_rate": 5e-5, "max_steps": 1,
              "cutoff_len": 256, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
              "lora_rank": 8, "lora_target": at.seed.train.split("--lora_target ")[1].split()[0] if lora else "all",
              "logging_steps": 1, "output_dir": str(tmp_path / "board-run")}
    info = start_job("train", values, None, at.root / "saves")
    assert wait_for_job(Path(info.run_dir), 300) == "finished", (Path(info.run_dir) / runs.LOG_FILE).read_text()[-3000:]
    assert (tmp_path / "board-run" / "adapter_model.safetensors").is_file()
