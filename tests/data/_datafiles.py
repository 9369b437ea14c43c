"""Writing rows in every supported file type and registering them in a dataset_info.json (data tests)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def write_rows(path: Path, rows: list[dict[str, Any]], kind: str) -> Path:
    """Write `rows` as `kind` (json, jsonl, csv, parquet, arrow, txt) to `path` (suffix added)."""
    path = path.with_suffix("." + kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif kind == "csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif kind == "txt":
        path.write_text("".join(r["text"] + "\n" for r in rows), encoding="utf-8")
    else:
        import pyarrow as pa

        table = pa.Table.from_pylist(rows)
        if kind == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        else:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
    return path


def register(dataset_dir: Path, entries: dict[str, dict[str, Any]]) -> None:
    info_path = dataset_dir / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.update(entries)
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
