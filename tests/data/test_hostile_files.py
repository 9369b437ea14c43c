"""Hostile data files (issue #24, point 9): each malformed file found by fuzzing ends in one
`file:row: field: reason` line, the same from `tunelab data check` (exit 1) and from the training
data path (`InvalidDataError`), never a traceback, and no row is split or dropped without a line."""

from __future__ import annotations

import codecs
import json
import logging

import pytest
from _datafiles import register

from tunelab.cli.main import main
from tunelab.config.data_args import DataArguments
from tunelab.data.loader import load_splits
from tunelab.data.validate import InvalidDataError

GOOD = {"instruction": "Hi", "input": "", "output": "Hello!"}
LINE = json.dumps(GOOD) + "\n"
NO_ROWS = "the data set has no rows (the file is empty, holds only blank lines, an empty JSON array or a CSV header alone)"
CSV_LIMIT = 16 * 1024 * 1024

# name: (file name, file bytes, expected problem line with {path})
CASES = {
    "invalid_utf8": ("d.jsonl", (LINE * 2).encode() + b'{"instruction": "caf\xe9", "output": "x"}\n',
                     "{path}:3: file: not valid UTF-8 at byte offset 130 (line 3, byte 0xe9); "
                     "save the file as UTF-8 (the file is not read)"),
    "utf16_without_bom": ("d.jsonl", (LINE * 2).encode("utf-16-le"),
                          "{path}:1: file: NUL character at line 1: a binary file, or UTF-16 without a byte-order mark; "
                          "save the file as UTF-8 (the file is not read)"),
    "invalid_utf16_after_bom": ("d.jsonl", codecs.BOM_UTF16_LE + LINE.encode("utf-16-le") + b"\x00\xd8\x41\x00",
                                "{path}:2: file: not valid UTF-16 at byte offset 112 (line 2, byte 0x00); "
                                "save the file as UTF-8 (the file is not read)"),
    "deep_json_array": ("d.json", b"[" * 100_000,
                        "{path}:1: json: JSON nested deeper than 100 levels (at line 1); the file is not read"),
    "deep_json_line": ("d.jsonl", LINE.encode() + b'{"input": ' + b"[" * 100_000 + b"\n",
                       "{path}:2: json: JSON nested deeper than 100 levels"),
    "deep_but_parseable_row": ("d.jsonl", LINE.encode() + b'{"instruction": "Hi", "output": "x", "meta": '
                               + b"[" * 150 + b"]" * 150 + b"}\n",
                               "{path}:2: meta: JSON nested deeper than 100 levels"),
    "huge_integer": ("d.jsonl", LINE.encode() + b'{"instruction": "Hi", "output": "x", "id": ' + b"7" * 5000 + b"}\n",
                     "{path}:2: id: integer with more than 1000 digits (5000)"),
    "huge_integer_row": ("d.jsonl", b"-" + b"9" * 5000 + b"\n", "{path}:1: row: expected an object, got int"),
    "csv_field_over_limit": ("d.csv", b"instruction,output\nHi,yo\nHi," + b"x" * (CSV_LIMIT + 1) + b"\nHi,yo\n",
                             f"{{path}}:3: csv: CSV field larger than {CSV_LIMIT} characters (16 MiB) in the record "
                             "starting at line 3; the rest of the file is not read"),
    "lone_surrogate": ("d.jsonl", LINE.encode()
                       + b'{"conversations": [{"from": "human", "value": "Hi \\ud800 there"}], "output": "x"}\n',
                       "{path}:2: conversations[0].value: lone surrogate \\ud800 at character 4: not valid Unicode "
                       "(a JSON \\ud800 escape without its pair), which no tokenizer can encode; fix or remove it"),
    "lone_surrogate_in_key": ("d.jsonl", b'{"instruction": "Hi", "output": "x", "k\\udc00": 1}\n',
                              "{path}:1: k\\udc00: the key has a lone surrogate \\udc00 at character 2: not valid Unicode "
                              "(a JSON \\udc00 escape without its pair), which no tokenizer can encode; fix or remove it"),
    "unicode_separators_do_not_split_rows": (
        "d.jsonl", (json.dumps({**GOOD, "input": "a\u2028b\u2029c\u0085d"}, ensure_ascii=False) + "\n"
                    + '{"instruction": "Hi", "output": "x"\n' + LINE).encode(),
        "{path}:2: json: malformed JSON at line 2, column 36: Expecting ',' delimiter"),
    "unterminated_csv_quote": ("d.csv", b'instruction,output\nHi,yo\n"Hi,yo\nHi,yo\nHi,yo\n',
                               "{path}:3: csv: unterminated quoted field starting at line 3; it runs to the end of "
                               "the file, so no row after it is read"),
    "unterminated_csv_quote_in_header": ("d.csv", b'"instruction,output\nHi,yo\n',
                                         "{path}:1: csv: unterminated quoted field starting at line 1; it runs to the "
                                         "end of the file, so no row after it is read"),
    "duplicate_csv_header": ("d.csv", b"instruction,output,output\nHi,yo,yo too\n",
                             "{path}:1: header: duplicate column 'output' in the header (columns 2 and 3); "
                             "rename one so no values are lost (the file is not read)"),
    "empty_file": ("d.jsonl", b"", "{path}:1: file: " + NO_ROWS),
    "empty_json_array": ("d.json", b"[]\n", "{path}:1: file: " + NO_ROWS),
    "only_blank_lines": ("d.jsonl", b"\n  \n\r\n", "{path}:1: file: " + NO_ROWS),
    "only_blank_text_lines": ("d.txt", b"\n\n", "{path}:1: file: " + NO_ROWS),
    "csv_header_alone": ("d.csv", b"instruction,output\n", "{path}:1: file: " + NO_ROWS),
}  # fmt: skip


def _setup(data_dir, name):
    file_name, data, expected = CASES[name]
    (data_dir / file_name).write_bytes(data)
    entry = {"file_name": file_name}
    if file_name.endswith(".txt"):
        entry["columns"] = {"prompt": "text"}
    register(data_dir, {"bad": entry})
    return expected.format(path=data_dir / file_name), ("pt" if file_name.endswith(".txt") else "sft")


@pytest.mark.parametrize("name", list(CASES))
def test_data_check_reports_one_line_and_exits_1(data_dir, capsys, name):
    expected, stage = _setup(data_dir, name)
    code = main(["data", "check", "bad", "--dataset_dir", str(data_dir), "--stage", stage])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert expected in captured.out.splitlines()
    assert "1 problem found" in captured.out
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("name", list(CASES))
def test_training_data_path_raises_the_same_line(data_dir, name):
    expected, stage = _setup(data_dir, name)
    with pytest.raises(InvalidDataError) as info:
        load_splits(DataArguments(dataset="bad", dataset_dir=str(data_dir)), stage)
    assert [str(p) for p in info.value.problems] == [expected]


def test_unicode_separators_keep_the_row_whole(data_dir):
    text = json.dumps({**GOOD, "input": "a\u2028b\u2029c\u0085d"}, ensure_ascii=False) + "\n" + LINE
    (data_dir / "d.jsonl").write_text(text, encoding="utf-8")
    register(data_dir, {"sep": {"file_name": "d.jsonl"}})
    train = load_splits(DataArguments(dataset="sep", dataset_dir=str(data_dir)), "sft").train
    assert len(train) == 2
    assert train[0].messages[0].content == "Hi\na\u2028b\u2029c\u0085d"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_decoded_and_logged(data_dir, capsys, caplog, encoding):
    data = (LINE * 3).encode(encoding)
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE)):
        data = codecs.BOM_UTF16_BE + data  # utf-16-be writes no mark of its own
    (data_dir / "d.jsonl").write_bytes(data)
    register(data_dir, {"wide": {"file_name": "d.jsonl"}})
    name = "UTF-32" if "32" in encoding else "UTF-16"
    with caplog.at_level(logging.INFO, logger="tunelab.data"):
        code = main(["data", "check", "wide", "--dataset_dir", str(data_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "no problems found" in out
    assert out.splitlines()[1].split()[2:] == ["3", "3", "0"]  # rows, valid, invalid
    assert f"d.jsonl: decoded as {name} (the file starts with a {name} byte-order mark)" in caplog.text


def test_utf8_byte_order_mark_is_dropped(data_dir):
    (data_dir / "d.csv").write_bytes(codecs.BOM_UTF8 + b"instruction,output\nHi,yo\n")
    register(data_dir, {"bom": {"file_name": "d.csv"}})
    train = load_splits(DataArguments(dataset="bom", dataset_dir=str(data_dir)), "sft").train
    assert [m.content for m in train[0].messages] == ["Hi", "yo"]


def test_csv_fields_up_to_the_limit_are_read(data_dir):
    long = "x" * 200_000  # past csv's default 128 KiB limit
    (data_dir / "d.csv").write_text(f'instruction,output\nHi,"{long}"\nHi,yo\n', encoding="utf-8")
    register(data_dir, {"long": {"file_name": "d.csv"}})
    train = load_splits(DataArguments(dataset="long", dataset_dir=str(data_dir)), "sft").train
    assert [ex.messages[1].content for ex in train] == [long, "yo"]


def test_csv_field_limit_is_put_back(data_dir):
    import csv

    before = csv.field_size_limit()
    _setup(data_dir, "csv_header_alone")
    main(["data", "check", "bad", "--dataset_dir", str(data_dir)])
    assert csv.field_size_limit() == before


def test_quoted_multiline_csv_field_at_the_end_is_not_unterminated(data_dir):
    (data_dir / "d.csv").write_bytes(b'instruction,output\nHi,yo\nHi,"two\nlines ""quoted"""')
    register(data_dir, {"ok": {"file_name": "d.csv"}})
    train = load_splits(DataArguments(dataset="ok", dataset_dir=str(data_dir)), "sft").train
    assert [ex.messages[1].content for ex in train] == ["yo", 'two\nlines "quoted"']


def test_empty_data_set_counts_as_one_invalid_row(data_dir, capsys):
    _setup(data_dir, "empty_json_array")
    code = main(["data", "check", "bad", "--dataset_dir", str(data_dir)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[1].split()[2:] == ["1", "0", "1"]


def test_empty_folder_data_set_names_the_folder(data_dir):
    folder = data_dir / "parts"
    folder.mkdir()
    (folder / "a.jsonl").write_text("")
    (folder / "b.jsonl").write_text("\n")
    register(data_dir, {"parts": {"file_name": "parts"}})
    with pytest.raises(InvalidDataError) as info:
        load_splits(DataArguments(dataset="parts", dataset_dir=str(data_dir)), "sft")
    assert [str(p) for p in info.value.problems] == [f"{folder}:1: file: the data set has no rows (none of its 2 files holds a row)"]


def test_damaged_arrow_buffers_are_a_problem_not_a_crash(data_dir):
    """Found by the fuzz campaign (seed 7, case 269): a bit flip in an Arrow file's string offsets read
    unchecked made `to_pylist` crash the interpreter (SIGSEGV); it runs in a child process for that reason."""
    import subprocess
    import sys

    from fuzz_files import generate

    case = list(generate(270, seed=7))[269]
    assert case.name == "0269-bit_flips" and case.file_name == "d.arrow"
    (data_dir / case.file_name).write_bytes(case.data)
    register(data_dir, {"bad": {"file_name": case.file_name, **case.entry}})
    done = subprocess.run([sys.executable, "-m", "tunelab.cli.main", "data", "check", "bad", "--dataset_dir",
                           str(data_dir), "--stage", case.stage], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"{data_dir / 'd.arrow'}:1: file: cannot read arrow file: " in done.stdout
    assert "offsets" in done.stdout
