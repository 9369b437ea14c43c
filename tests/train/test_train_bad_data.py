"""`tunelab train` refuses bad data before training, naming file, row, field and reason."""

from __future__ import annotations

import json

from tunelab.cli.main import main


def test_train_lists_bad_rows_and_exits_2(tiny_qwen, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    (data / "mine.json").write_text(json.dumps([
        {"instruction": "hi", "input": "", "output": "hello"},
        {"instruction": "", "input": "", "output": "empty prompt"},
        {"instruction": "no answer", "input": ""},
    ]))
    code = main(["train", f"--model_name_or_path={tiny_qwen}", "--stage=sft", "--do_train=true", "--template=qwen",
                 "--dataset=mine", f"--dataset_dir={data}", f"--output_dir={tmp_path / 'out'}", "--max_steps=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data / 'mine.json'}:2: instruction:" in err
    assert f"{data / 'mine.json'}:3: output:" in err
    assert not (tmp_path / "out" / "trainer_log.jsonl").exists()
