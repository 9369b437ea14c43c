"""Seed 000 end to end (LLaMA-Factory's Llama 3 tutorial), with a tiny Llama-3-style model in place of
Llama3-8B-Chinese-Chat: its data folder (fintech only registered, identity from tunelab's bundle), its
train YAML (fp16: false, the one CPU change; max_steps keeps the test short), then chat / webchat / api
with that same YAML, export with the tutorial's own merge file, and training from the web UI."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _seedkit import SEED_000_MERGE, SEED_000_TRAIN, run, wait_for_job, write_seed_000_data

import tunelab.config.hardware as hardware
from tunelab.cli.main import main

OUTPUT_DIR = Path("saves/LLaMA3-8B-Chinese-Chat/lora/train_2024-05-25-20-27-47")
FAST = ["max_steps=2", "logging_steps=1"]  # the tutorial's 10 epochs cut to 2 optimizer steps (8 micro-batches each)


@dataclass(frozen=True)
class Seed:
    root: Path  # the tutorial's LLaMA-Factory folder: data/, cust/, saves/
    model: Path
    train_log: str

    @property
    def cfg(self) -> Path:
        return self.root / "cust" / "train_llama3_lora_sft.yaml"

    @property
    def adapter(self) -> Path:
        return self.root / OUTPUT_DIR


class _NoSocket:
    """Stands in for the port `tunelab api` binds before loading the model (tests run in parallel)."""

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def seed(tiny_llama3: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    """`llamafactory-cli train cust/train_llama3_lora_sft.yaml`, run once for the module."""
    root = tmp_path_factory.mktemp("seed000")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("TUNELAB_CACHE", str(root / "cache"))
        write_seed_000_data(root)
        (root / "cust").mkdir()
        (root / "cust" / "train_llama3_lora_sft.yaml").write_text(SEED_000_TRAIN.format(fp16="false", model=tiny_llama3))
        import contextlib

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["train", "cust/train_llama3_lora_sft.yaml", *FAST])
        assert code == 0, err.getvalue()[-3000:]
        yield Seed(root, tiny_llama3, err.getvalue())


@pytest.fixture
def at_seed(seed: Seed, monkeypatch: pytest.MonkeyPatch) -> Seed:
    monkeypatch.chdir(seed.root)
    return seed


def test_train_writes_the_run_and_takes_identity_from_the_bundle(at_seed):
    out = at_seed.adapter
    for name in ("adapter_model.safetensors", "adapter_config.json", "trainer_log.jsonl", "training_loss.png",
                 "tunelab_config.yaml", "train_results.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"] and adapter["r"] == 8 and adapter["lora_alpha"] == 16
    state = json.loads((out / "train_results.json").read_text())
    assert state["epoch"] > 0
    assert "data set identity: not in data/dataset_info.json; using tunelab's bundled copy" in at_seed.train_log
    assert "template: using the named template 'llama3'" in at_seed.train_log


def test_the_tutorials_fp16_is_the_only_thing_check_refuses_here(at_seed, capsys, monkeypatch):
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    tutorial = at_seed.root / "cust" / "as_published.yaml"
    tutorial.write_text(SEED_000_TRAIN.format(fp16="true", model=at_seed.model))
    result = run(capsys, "check", tutorial, "overwrite_output_dir=true")
    assert result.code == 2
    assert result.error == (f"{tutorial}: fp16: true needs a CUDA GPU and none was found; on this machine set fp16: "
                            "false (bf16: true runs on this CPU)." if hardware.cpu_supports_bf16() else
                            f"{tutorial}: fp16: true needs a CUDA GPU and none was found; on this machine set fp16: "
                            "false (this CPU has no native bf16 either, so train in float32).")


def test_chat_with_the_training_yaml_through_a_pipe(at_seed, capsys, monkeypatch):
    """`llamafactory-cli chat cust/train_llama3_lora_sft.yaml`; with the adapter of the run added."""
    from tunelab.cli import cmd_chat
    from tunelab.config.parser import parse_config
    from tunelab.data.conversation import Message, Role
    from tunelab.infer.loader import load_chat_model

    for extra in ([], [f"adapter_name_or_path={OUTPUT_DIR}"]):
        argv = ["cust/train_llama3_lora_sft.yaml", "max_new_tokens=4", "do_sample=false", *extra]
        chat_model = load_chat_model(parse_config(argv))
        expected = [chat_model.stream_chat([Message(Role.USER, q)]).text() for q in ("你好", "什么是市盈率？")]
        monkeypatch.setattr("sys.stdin", io.StringIO("你好\nclear\n什么是市盈率？\nexit\n"))
        capsys.readouterr()
        assert cmd_chat.main(argv) == 0
        assert capsys.readouterr().out == f"{expected[0]}\n{expected[1]}\n"


def test_api_serves_the_trained_adapter(at_seed, monkeypatch):
    """`API_PORT=8000 llamafactory-cli api cust/train_llama3_lora_sft.yaml` (adapter added), OpenAI protocol."""
    from starlette.testclient import TestClient

    from tunelab.cli import cmd_api

    served = {}
    monkeypatch.setenv("API_PORT", "8000")
    monkeypatch.setattr("tunelab.cli.cmd_api.bind", lambda host, port: _NoSocket())  # no real port 8000 taken
    monkeypatch.setattr("tunelab.cli.cmd_api.serve",
                        lambda app, settings, sock: served.update(app=app, host=settings.host, port=settings.port))
    assert cmd_api.main(["cust/train_llama3_lora_sft.yaml", f"adapter_name_or_path={OUTPUT_DIR}"]) == 0
    assert served["port"] == 8000 and served["host"] == "127.0.0.1"
    client = TestClient(served["app"], base_url="http://localhost")
    reply = client.post("/v1/chat/completions", json={"model": "x", "max_tokens": 4, "temperature": 0,
                                                      "messages": [{"role": "user", "content": "什么是ETF？"}]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["role"] == "assistant" and body["usage"]["completion_tokens"] <= 4


def test_webchat_builds_with_the_training_yaml(at_seed, monkeypatch):
    pytest.importorskip("gradio")
    from tunelab.cli import cmd_webchat

    launched = {}
    monkeypatch.setattr("tunelab.serve.webchat.launch_webchat",
                        lambda chat_model, settings, block=True: launched.update(model=chat_model, settings=settings))
    assert cmd_webchat.main(["cust/train_llama3_lora_sft.yaml", f"adapter_name_or_path={OUTPUT_DIR}"]) == 0
    assert launched["model"].template.name == "llama3"
    from tunelab.serve.webchat import build_webchat

    assert build_webchat(launched["model"]) is not None


def test_export_with_the_tutorials_own_merge_file(at_seed, capsys):
    """cust/merge_llama3_lora_sft.yaml: `export_device: cuda` and an empty `export_legacy_format:`."""
    merge = at_seed.root / "cust" / "merge_llama3_lora_sft.yaml"
    export_dir = at_seed.root / "models" / "LLaMA3-8B-Chinese-Chat-merged"
    merge.write_text(SEED_000_MERGE.format(model=f"{at_seed.model}/", adapter=at_seed.adapter, export_dir=export_dir))
    result = run(capsys, "export", merge)
    assert result.code == 0, result.err
    assert "export check PASSED" in result.out
    assert f"{merge}: export_device: 'cuda' is an older spelling; using export_device: 'auto'." in result.err
    assert "'export_legacy_format' has no value; it is treated as not set" in result.err
    assert (export_dir / "model.safetensors").is_file() and not list(export_dir.glob("*.bin"))
    assert (export_dir / "Modelfile").is_file()
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(export_dir).encode("<|eot_id|>", add_special_tokens=False)) == 1



def test_web_ui_trains_the_tutorials_run(at_seed, tmp_path):
    """`llamafactory-cli webui`, Train tab: the tutorial's model, template, data and LoRA settings."""
    from tunelab.webui import runs
    from tunelab.webui.jobs import start_job

    values = {"model_name_or_path": str(at_seed.model), "template": "llama3", "finetuning_type": "lora",
              "dataset_dir": "data", "dataset": ["fintech", "identity"], "learning_rate": 2e-4, "max_steps": 2,
              "cutoff_len": 1024, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2,
              "lora_rank": 8, "lora_alpha": 16, "lora_target": "q_proj,v_proj", "logging_steps": 1,
              "output_dir": str(tmp_path / "webui-run")}
    info = start_job("train", values, None, at_seed.root / "saves")
    assert wait_for_job(Path(info.run_dir), 180) == "finished", (Path(info.run_dir) / runs.LOG_FILE).read_text()[-2000:]
    assert (tmp_path / "webui-run" / "adapter_model.safetensors").is_file()


def test_web_ui_refuses_before_launching(at_seed, tmp_path):
    """A mistake shows on the page (the same list `tunelab check` prints); no job starts."""
    from tunelab.errors import UserError
    from tunelab.webui.jobs import start_job

    values = {"model_name_or_path": str(at_seed.model), "template": "llama3", "dataset_dir": "data",
              "dataset": ["fintech", "identiti"], "output_dir": str(tmp_path / "never")}
    with pytest.raises(UserError, match="unknown data set 'identiti'.*Did you mean: identity"):
        start_job("train", values, None, at_seed.root / "saves")
    assert not (tmp_path / "never").exists()
