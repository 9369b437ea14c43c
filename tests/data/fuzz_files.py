"""A seeded generator of malformed data files, and the one way each is run: `tunelab data check`, in process.

Case `i` of seed `s` is always the same bytes (its own `random.Random`), so a failure is reproduced
from its name alone. Kinds cycle, so any sample of len(KINDS) cases or more holds every kind.
A case whose rows are all valid carries `valid_rows`: the check must read back exactly that many.

The full campaign (the counts in docs/reliability.md, "Hostile input"):

    HF_HUB_OFFLINE=1 .venv/bin/python tests/data/fuzz_files.py 250
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED = 24_9  # issue #24, point 9
CASE_SECONDS = 20  # a case still running after this is a hang
CSV_FIELD_LIMIT = 16 * 1024 * 1024

_PIECES = ["a", "Hello", "world", "42", " ", ",", '"', "'", "\\", "{", "}", "[", "]", ":", "\t", "\n", "\r\n",
           "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "é", "中文", "😀", "\u200b", "\ufeff", "null", "</s>"]  # fmt: skip
SEPARATORS = ["\u2028", "\u2029", "\u0085"]  # str.splitlines breaks at these; JSON allows them raw
_LINE_PIECES = [p for p in _PIECES if not re.search(r"[\r\n\x0b\x0c\x85\u2028\u2029]", p)]


@dataclass(frozen=True)
class FuzzFile:
    """One generated data file and how to register it."""

    name: str
    kind: str
    file_name: str
    data: bytes
    entry: dict[str, Any] = field(default_factory=dict)
    stage: str = "sft"
    valid_rows: int | None = None  # every row valid: the number written, which must be read back


@dataclass
class Outcome:
    case: FuzzFile
    result: str  # exit 0 / exit 1 / exit 2 / traceback / hang
    rows: int | None = None  # rows the check reported reading
    valid: int | None = None
    detail: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- rows


def _text(rng: random.Random, *, line: bool = False) -> str:
    pieces = _LINE_PIECES if line else _PIECES
    return rng.choice(["Hi", "Q", "x", "答"]) + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))


def _rows(rng: random.Random, formatting: str, count: int) -> list[dict[str, Any]]:
    if formatting == "sharegpt":
        return [{"conversations": [{"from": "human", "value": _text(rng)}, {"from": "gpt", "value": _text(rng)}]}
                for _ in range(count)]  # fmt: skip
    if formatting == "text":
        return [{"text": _text(rng, line=True)} for _ in range(count)]
    return [{"instruction": _text(rng), "input": rng.choice(["", _text(rng)]), "output": _text(rng)}
            for _ in range(count)]  # fmt: skip


def _entry(formatting: str) -> tuple[dict[str, Any], str]:
    if formatting == "sharegpt":
        return {"formatting": "sharegpt", "columns": {"messages": "conversations"}}, "sft"
    if formatting == "text":
        return {"columns": {"prompt": "text"}}, "pt"
    return {}, "sft"


def _encode(rows: list[dict[str, Any]], kind: str, rng: random.Random) -> bytes:
    """Valid bytes of `rows` as `kind` (json, jsonl, csv, txt, parquet, arrow)."""
    ascii_only = rng.random() < 0.3
    if kind == "json":
        return json.dumps(rows, ensure_ascii=ascii_only, indent=rng.choice([None, 2])).encode()
    if kind == "jsonl":
        end = rng.choice(["\n", "\r\n"])
        return "".join(json.dumps(r, ensure_ascii=ascii_only) + end for r in rows).encode()
    if kind == "csv":
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator=rng.choice(["\n", "\r\n"]))
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().encode()
    if kind == "txt":
        return "".join(r["text"] + "\n" for r in rows).encode()
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    sink = pa.BufferOutputStream()
    if kind == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _kind_for(formatting: str, rng: random.Random, kinds: tuple[str, ...] = ("json", "jsonl", "csv", "parquet", "arrow")) -> str:
    if formatting == "text":
        return "txt"
    if formatting == "sharegpt":
        return rng.choice([k for k in kinds if k != "csv"])  # CSV cannot hold nested messages
    return rng.choice(kinds)


def _valid_file(rng: random.Random, kinds: tuple[str, ...] = ("json", "jsonl", "csv", "parquet", "arrow")):
    formatting = rng.choice(["alpaca", "alpaca", "sharegpt", "text"])
    kind = _kind_for(formatting, rng, kinds)
    rows = _rows(rng, formatting, rng.randint(1, 12))
    entry, stage = _entry(formatting)
    return rows, kind, _encode(rows, kind, rng), entry, stage


# ---------------------------------------------------------------------------------------------- kinds


def _valid(rng: random.Random, variant: int) -> tuple:
    """Valid files in every type and line ending, with odd Unicode: all rows must be read back."""
    rows, kind, data, entry, stage = _valid_file(rng)
    return kind, data, entry, stage, len(rows)


def _recoded(rng: random.Random, variant: int) -> tuple:
    """Valid text files behind a byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32): read back in full."""
    rows, kind, data, entry, stage = _valid_file(rng, ("json", "jsonl", "csv"))
    codec, mark = rng.choice([("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE),
                              ("utf-16-be", codecs.BOM_UTF16_BE), ("utf-32-le", codecs.BOM_UTF32_LE)])  # fmt: skip
    return kind, mark + data.decode().encode(codec), entry, stage, len(rows)


def _separators(rng: random.Random, variant: int) -> tuple:
    """U+2028 / U+2029 / U+0085 raw inside JSON-lines strings: no row may split."""
    rows = [{"instruction": "a" + rng.choice(SEPARATORS) + "b", "input": "", "output": _text(rng)}
            for _ in range(rng.randint(1, 10))]  # fmt: skip
    return "jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(), {}, "sft", len(rows)


def _bit_flips(rng: random.Random, variant: int) -> tuple:
    _, kind, data, entry, stage = _valid_file(rng)
    raw = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(raw))
        raw[position] ^= 1 << rng.randrange(8)
    return kind, bytes(raw), entry, stage, None


def _truncated(rng: random.Random, variant: int) -> tuple:
    _, kind, data, entry, stage = _valid_file(rng)
    return kind, data[: rng.randrange(len(data))], entry, stage, None


def _legacy_encoding(rng: random.Random, variant: int) -> tuple:
    """Text in an encoding that is not UTF-8 and has no byte-order mark."""
    rows, kind, data, entry, stage = _valid_file(rng, ("json", "jsonl", "csv"))
    text = data.decode()
    codec = rng.choice(["latin-1", "cp1252", "gbk", "shift_jis", "utf-16-le", "utf-32-be"])
    text = text.replace("\u2028", "").replace("\u2029", "").replace("\u200b", "").replace("\ufeff", "")
    return kind, text.encode(codec, errors="replace") + "\ncafé\n".encode("latin-1"), entry, stage, None


def _deep(rng: random.Random, variant: int) -> tuple:
    depth = [100_000, 101, 999, 5_000, 150][variant % 5]
    opener = rng.choice(["[", '{"a": '])
    if rng.random() < 0.5:
        body = opener * depth + ("1" + ("]" if opener == "[" else "}") * depth if rng.random() < 0.5 else "")
        return "json", b"[" + body.encode() + b"]", {}, "sft", None
    row = '{"instruction": "Hi", "output": "x", "meta": ' + opener * depth + "\n"
    return "jsonl", row.encode(), {}, "sft", None


def _huge_number(rng: random.Random, variant: int) -> tuple:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([1001, 4301, 5000, 20_000])))
    number = rng.choice(["", "-"]) + "1" + digits + rng.choice(["", ".5", "e5", "e99999"])
    row = rng.choice([f'{{"instruction": "Hi", "output": "x", "n": {number}}}', number, f'[{number}]'])
    return rng.choice(["jsonl", "json"]), row.encode(), {}, "sft", None


def _lone_surrogate(rng: random.Random, variant: int) -> tuple:
    escape = rng.choice(["\\ud800", "\\udfff", "\\udc00x", "\\ud83d"])  # the last: a pair's first half alone
    where = rng.choice(["instruction", "output", "key"])
    row = {"instruction": "Hi", "output": "x"}
    text = json.dumps(row)
    if where == "key":
        text = text[:-1] + f', "k{escape}": 1}}'
    else:
        text = text.replace(f'"{where}": "', f'"{where}": "{escape}', 1)
    return "jsonl", (text + "\n").encode(), {}, "sft", None


def _csv_damage(rng: random.Random, variant: int) -> tuple:
    rows = _rows(rng, "alpaca", rng.randint(2, 10))
    data = _encode(rows, "csv", rng).decode()
    lines = data.split("\n")
    damages = ["open_quote", "duplicate_header", "huge_field", "empty_header", "extra_values", "short_rows", "no_header"]
    damage = damages[variant % len(damages)]
    if damage == "open_quote":
        at = rng.randrange(1, len(lines))
        lines[at] = '"' + lines[at]
    elif damage == "duplicate_header":
        lines[0] = lines[0] + "," + rng.choice(lines[0].split(","))
    elif damage == "empty_header":
        lines[0] = ",".join("" for _ in lines[0].split(","))
    elif damage == "extra_values":
        lines[1] = lines[1] + ",surplus"
    elif damage == "short_rows":
        lines = [lines[0]] + [line.split(",")[0] for line in lines[1:]]
    elif damage == "no_header":
        lines = lines[1:]
    else:
        lines.insert(1, "Hi," + "x" * (CSV_FIELD_LIMIT + 1))
    return "csv", "\n".join(lines).encode(), {}, "sft", None


def _empty(rng: random.Random, variant: int) -> tuple:
    kind, data = [("jsonl", b""), ("json", b"[]"), ("jsonl", b"\n\n  \n"), ("csv", b"instruction,output\n"),
                  ("txt", b"\n\r\n\n"), ("json", b"  [ ]\n"), ("csv", b""), ("json", b"{}"),
                  ("jsonl", b"{}\n{}\n")][variant % 9]  # fmt: skip
    entry, stage = _entry("text") if kind == "txt" else ({}, "sft")
    return kind, data, entry, stage, None


def _wrong_types(rng: random.Random, variant: int) -> tuple:
    values = [None, True, 0, -1.5, float("nan"), [], {}, ["a"], {"from": "human"}, "", " ", "x" * 3]
    formatting = rng.choice(["alpaca", "sharegpt"])
    entry, stage = _entry(formatting)
    rows: list[Any] = []
    for _ in range(rng.randint(1, 6)):
        shape = rng.random()
        if shape < 0.15:
            rows.append(rng.choice(values))  # a row that is not an object
        elif formatting == "sharegpt":
            rows.append({"conversations": rng.choice(values + [[{"from": rng.choice(values), "value": rng.choice(values)}]])})
        else:
            rows.append({key: rng.choice(values) for key in ("instruction", "input", "output", "history")})
    kind = rng.choice(["json", "jsonl"])
    if kind == "json":
        return kind, json.dumps(rows).encode(), entry, stage, None
    return kind, "".join(json.dumps(r) + "\n" for r in rows).encode(), entry, stage, None


def _garbage(rng: random.Random, variant: int) -> tuple:
    kind = rng.choice(["json", "jsonl", "csv", "txt", "parquet", "arrow"])
    data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
    if rng.random() < 0.3:
        data = rng.choice([b"PAR1", b"ARROW1\x00\x00", b"\xff\xff\xff\xff"]) + data
    entry, stage = _entry("text") if kind == "txt" else ({}, "sft")
    return kind, data, entry, stage, None


def _nul_bytes(rng: random.Random, variant: int) -> tuple:
    _, kind, data, entry, stage = _valid_file(rng, ("json", "jsonl", "csv"))
    at = rng.randrange(len(data) + 1)
    return kind, data[:at] + b"\x00" * rng.randint(1, 3) + data[at:], entry, stage, None


KINDS: dict[str, Callable[[random.Random, int], tuple]] = {
    "valid": _valid, "byte_order_mark": _recoded, "unicode_separators": _separators, "bit_flips": _bit_flips,
    "truncated": _truncated, "legacy_encoding": _legacy_encoding, "deep_nesting": _deep, "huge_number": _huge_number,
    "lone_surrogate": _lone_surrogate, "csv_damage": _csv_damage, "empty": _empty, "wrong_types": _wrong_types,
    "garbage": _garbage, "nul_bytes": _nul_bytes,
}  # fmt: skip


def generate(count: int, seed: int = SEED) -> Iterator[FuzzFile]:
    """`count` cases; case i is kind KINDS[i % len(KINDS)], in its variant i // len(KINDS) where a kind has
    several (they cycle too), with every other choice from the case's own seeded RNG."""
    names = list(KINDS)
    for index in range(count):
        kind = names[index % len(names)]
        rng = random.Random(f"{seed}:{index}")
        suffix, data, entry, stage, valid_rows = KINDS[kind](rng, index // len(names))
        yield FuzzFile(f"{index:04d}-{kind}", kind, f"d.{suffix}", data, entry, stage, valid_rows)


# ---------------------------------------------------------------------------------------------- running


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so no `except Exception` in the code under test swallows it."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def run_case(case: FuzzFile, folder: Path, seconds: int = CASE_SECONDS) -> Outcome:
    """Write the case, run `tunelab data check` on it in process, and say how it ended."""
    from tunelab.cli.main import main

    folder.mkdir(parents=True, exist_ok=True)
    (folder / case.file_name).write_bytes(case.data)
    (folder / "dataset_info.json").write_text(json.dumps({"fuzz": {"file_name": case.file_name, **case.entry}}))
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["data", "check", "fuzz", "--dataset_dir", str(folder), "--stage", case.stage])
    except _Hang:
        return Outcome(case, "hang", detail=f"still running after {seconds} s", seconds=time.perf_counter() - started)
    except BaseException:  # noqa: BLE001 - any escape is the finding
        return Outcome(case, "traceback", detail=traceback.format_exc(), seconds=time.perf_counter() - started)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    outcome = Outcome(case, f"exit {code}", detail=(out.getvalue() + err.getvalue())[-2000:],
                      seconds=time.perf_counter() - started)  # fmt: skip
    counts = re.search(r"^fuzz\s+\S+(?: \(preference\))?\s+(\d+)\s+(\d+)\s+(\d+)$", out.getvalue(), re.MULTILINE)
    if counts:
        outcome.rows, outcome.valid = int(counts.group(1)), int(counts.group(2))
    return outcome


def silently_dropped(outcome: Outcome) -> bool:
    """A case whose rows were all valid that did not come back whole and clean."""
    expected = outcome.case.valid_rows
    return expected is not None and (outcome.result != "exit 0" or outcome.rows != expected or outcome.valid != expected)


def campaign(count: int, seed: int = SEED) -> int:
    """Run `count` cases and print the outcome counts per kind; exit status 1 on a crash, hang or drop."""
    import logging

    logging.disable(logging.CRITICAL)  # the check's log lines would drown the table
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in generate(count, seed):
            outcomes.append(run_case(case, Path(tmp) / case.name))
    results = ["exit 0", "exit 1", "exit 2", "traceback", "hang"]
    table = Counter((o.case.kind, o.result) for o in outcomes)
    print(f"{'kind':20} " + " ".join(f"{r:>9}" for r in results) + "  dropped")
    for kind in KINDS:
        dropped = sum(silently_dropped(o) for o in outcomes if o.case.kind == kind)
        print(f"{kind:20} " + " ".join(f"{table[kind, r]:>9}" for r in results) + f"  {dropped:>7}")
    totals = Counter(o.result for o in outcomes)
    dropped = sum(silently_dropped(o) for o in outcomes)
    print(f"{'all ' + str(len(outcomes)):20} " + " ".join(f"{totals[r]:>9}" for r in results) + f"  {dropped:>7}")
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"slowest case: {slowest.case.name} {slowest.seconds:.2f} s; total {sum(o.seconds for o in outcomes):.1f} s")
    bad = [o for o in outcomes if o.result in ("traceback", "hang") or silently_dropped(o)]
    for outcome in bad:
        print(f"--- {outcome.case.name}: {outcome.result}\n{outcome.detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(campaign(int(sys.argv[1]) if len(sys.argv) > 1 else 250, int(sys.argv[2]) if len(sys.argv) > 2 else SEED))
