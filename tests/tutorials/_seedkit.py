"""Helpers of the tutorial tests: run a `tunelab` command in-process and read what it printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from seed_configs import SEED_000_TRAIN  # noqa: F401 - re-exported for the tutorial tests
from tunelab.cli.main import main

LLAMA3_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


# Seed 000's cust/merge_llama3_lora_sft.yaml (echonoshy/cgft-llm), paths pointed at the test's folders; note the
# older anchor's `export_device: cuda` and the empty `export_legacy_format:`.
SEED_000_MERGE = """\
### Note: DO NOT use quantized model or quantization_bit when merging lora adapters

### model
model_name_or_path: {model}
adapter_name_or_path: {adapter}
template: llama3
finetuning_type: lora

### export
export_dir: {export_dir}
export_size: 4
export_device: cuda
""" + "export_legacy_format:   \n"  # the seed's own trailing blanks

# Seed 000 registers only fintech in its data/dataset_info.json (the anchor's stock file has identity too).
SEED_000_DATASET_INFO = {
    "fintech": {"file_name": "fintech.json",
                "columns": {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}},
}
FINTECH_ROWS = [
    {"instruction": "什么是市盈率？", "input": "", "output": "市盈率是股价与每股收益之比。", "history": [["你好", "你好，我是金融助手。"]]},
    {"instruction": "什么是ETF？", "input": "", "output": "ETF 是在交易所上市交易的指数基金。", "history": []},
    {"instruction": "解释复利", "input": "", "output": "复利是利息再生利息。", "history": []},
    {"instruction": "什么是债券？", "input": "", "output": "债券是借款凭证。", "history": []},
]



def write_seed_000_data(root: Path) -> Path:
    """Seed 000's ./data: its fintech entry alone in dataset_info.json, and the fintech rows."""
    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "dataset_info.json").write_text(json.dumps(SEED_000_DATASET_INFO, ensure_ascii=False), encoding="utf-8")
    (data / "fintech.json").write_text(json.dumps(FINTECH_ROWS, ensure_ascii=False), encoding="utf-8")
    return data


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The command's one error message (after its log lines): what the user reads last."""
        marker = self.err.find(": error: ")
        return self.err[marker + len(": error: "):].strip() if marker >= 0 else ""


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> Result:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def wait_for_job(run_dir: Path | str, timeout: float) -> str:
    """The final status of a board job, polled from its run folder (the board's own reader)."""
    import time

    from tunelab.webui import runs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = runs.read_run(run_dir)
        if info is not None and info.status != "running":
            return info.status
        time.sleep(0.2)
    raise AssertionError(f"the board job did not finish: {(Path(run_dir) / runs.LOG_FILE).read_text()[-2000:]}")
