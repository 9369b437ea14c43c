"""Seed 003 end to end (LLaMA-Factory with Qwen1.5 / ChatGLM3 / Baichuan2), for the family tunelab loads
natively: a tiny Qwen2-architecture model (Qwen1.5's) with the real Qwen tokenizer. The command line of
`single_lora_qwen.sh` is refused on a CPU with every reason at once (fp16, 4-bit QLoRA, Qwen 1's `c_attn`),
then trains with those changed (TensorBoard logging included); LLaMA Board trains, chats and exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _seedkit import run, wait_for_job

import tunelab.config.hardware as hardware
from tunelab.data.dataset_info import bundled_data_dir

# single_lora_qwen.sh after `python src/train_bash.py`, word for word but the model path.
SINGLE_LORA_QWEN = (
    "--report_to tensorboard --logging_dir single_lora_qwen_log --stage sft --do_train True "
    "--model_name_or_path {model} --dataset alpaca_gpt4_zh --template qwen --lora_target c_attn "
    "--output_dir single_lora_qwen_checkpoint --overwrite_cache --per_device_train_batch_size 4 "
    "--gradient_accumulation_steps 8 --lr_scheduler_type cosine --logging_steps 5 --save_steps 100 "
    "--learning_rate 5e-5 --num_train_epochs 1.0 --finetuning_type lora --fp16 --lora_rank 8 --quantization_bit 4"
)


class _NoSocket:
    """Stands in for the port `tunelab api` binds before loading the model (tests run in parallel)."""

    def close(self) -> None:
        pass


@pytest.fixture
def llama_factory_dir(tmp_path: Path) -> Path:
    """The tutorial's LLaMA-Factory/data: alpaca_gpt4_zh registered as the local alpaca_gpt4_data_zh.json."""
    data = tmp_path / "data"
    data.mkdir()
    rows = json.loads((bundled_data_dir() / "alpaca_zh_demo.json").read_text(encoding="utf-8"))
    (data / "alpaca_gpt4_data_zh.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (data / "dataset_info.json").write_text(json.dumps({"alpaca_gpt4_zh": {"file_name": "alpaca_gpt4_data_zh.json"}}))
    return tmp_path


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)


def test_the_script_on_a_cpu_lists_every_change_it_needs(llama_factory_dir, tiny_qwen, capsys, no_gpu):
    result = run(capsys, "check", *SINGLE_LORA_QWEN.format(model=tiny_qwen).split())
    assert result.code == 2
    alternative = "bf16: true runs on this CPU" if hardware.cpu_supports_bf16() else "this CPU has no native bf16"
    assert result.error.splitlines()[0] == "3 problems found:"
    assert result.error.splitlines()[1].startswith(f"  - fp16: true needs a CUDA GPU and none was found; on this "
                                                   f"machine set fp16: false ({alternative}")
    assert result.error.splitlines()[2:] == [
        "  - quantization_bit: 4 (QLoRA, bitsandbytes) needs a CUDA GPU and none was found; drop quantization_bit "
        "to use the model in full precision on this machine.",
        "  - lora_target: c_attn is not a linear layer of this model; its linear layers are down_proj, gate_proj, "
        "k_proj, o_proj, q_proj, up_proj, v_proj (or use lora_target: all).",
    ]


def test_the_script_trains_with_those_changes(llama_factory_dir, tiny_qwen, capsys, no_gpu, monkeypatch):
    argv = SINGLE_LORA_QWEN.format(model=tiny_qwen).replace(" --fp16", "").replace(" --quantization_bit 4", "")
    argv = argv.replace("--lora_target c_attn", "--lora_target all")
    assert run(capsys, "check", *argv.split()).code == 0
    result = run(capsys, "train", *argv.split())
    assert result.code == 0, result.err
    out = llama_factory_dir / "single_lora_qwen_checkpoint"
    assert (out / "adapter_model.safetensors").is_file()
    assert sorted(json.loads((out / "adapter_config.json").read_text())["target_modules"]) == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert list((llama_factory_dir / "single_lora_qwen_log").rglob("events.out.tfevents.*"))  # TensorBoard's
    assert "TensorBoard events go to single_lora_qwen_log (logging_dir)" in result.err
    # section 6: "web_demo, API" on the result: the OpenAI-style API serves base + adapter
    from starlette.testclient import TestClient

    from tunelab.cli import cmd_api

    served = {}
    monkeypatch.setattr("tunelab.cli.cmd_api.bind", lambda host, port: _NoSocket())  # no real port 8000 taken
    monkeypatch.setattr("tunelab.cli.cmd_api.serve", lambda app, settings, sock: served.update(app=app))
    assert cmd_api.main([f"model_name_or_path={tiny_qwen}", f"adapter_name_or_path={out}", "template=qwen"]) == 0
    reply = TestClient(served["app"], base_url="http://localhost").post("/v1/chat/completions", json={
        "model": "x", "max_tokens": 3, "temperature": 0, "messages": [{"role": "user", "content": "保持健康的三个提示。"}]})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["role"] == "assistant"



BOARD = {"template": "qwen", "finetuning_type": "lora", "dataset_dir": "data", "dataset": ["alpaca_gpt4_zh"],
         "learning_rate": 5e-5, "max_steps": 2, "cutoff_len": 256, "per_device_train_batch_size": 2,
         "gradient_accumulation_steps": 1, "logging_steps": 1, "lora_target": "all"}


def test_llama_board_trains_chats_and_exports(llama_factory_dir, tiny_qwen, tmp_path):
    """Section 3: LLaMA Board with Qwen1.5 (LoRA), then the Chat tab loads the adapter, the Export tab merges it."""
    from tunelab.webui import runs
    from tunelab.webui.jobs import start_job
    from tunelab.webui.tab_chat import ChatHolder

    saves = llama_factory_dir / "saves"
    values = {**BOARD, "model_name_or_path": str(tiny_qwen), "output_dir": str(saves / "Qwen1.5-1.8B" / "lora" / "qwen")}
    info = start_job("train", values, None, saves)
    assert wait_for_job(info.run_dir, 180) == "finished", (Path(info.run_dir) / runs.LOG_FILE).read_text()[-2000:]
    adapter = saves / "Qwen1.5-1.8B" / "lora" / "qwen"
    assert (adapter / "adapter_model.safetensors").is_file()

    holder = ChatHolder()
    described = holder.load({"model_name_or_path": str(tiny_qwen), "template": "qwen", "finetuning_type": "lora",
                             "checkpoint_path": str(adapter)})
    assert described == f"`{adapter}` · template `qwen`"
    from tunelab.data.conversation import Message, Role

    assert isinstance(holder.model.stream_chat([Message(Role.USER, "三原色是什么？")], max_new_tokens=3).text(), str)

    export_dir = tmp_path / "Qwen1.5-1.8B-merged"
    info = start_job("export", {"model_name_or_path": str(tiny_qwen), "template": "qwen", "finetuning_type": "lora",
                                "checkpoint_path": str(adapter), "export_dir": str(export_dir), "export_size": 1.0},
                     None, saves)
    assert wait_for_job(info.run_dir, 180) == "finished", (Path(info.run_dir) / runs.LOG_FILE).read_text()[-2000:]
    assert (export_dir / "model.safetensors").is_file() and (export_dir / "config.json").is_file()


def test_llama_board_refuses_qlora_on_a_cpu_before_launching(llama_factory_dir, tiny_qwen, no_gpu):
    """The Quantization bit drop-down at 4 on a machine without CUDA: said on the page, no job started."""
    from tunelab.errors import UserError
    from tunelab.webui.jobs import start_job

    values = {**BOARD, "model_name_or_path": str(tiny_qwen), "quantization_bit": "4",
              "output_dir": str(llama_factory_dir / "never")}
    with pytest.raises(UserError, match=r"quantization_bit: 4 \(QLoRA, bitsandbytes\) needs a CUDA GPU"):
        start_job("train", values, None, llama_factory_dir / "saves")
    assert not (llama_factory_dir / "never").exists()
