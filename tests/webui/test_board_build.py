"""The board builds without a browser: one component per field, and every word on it in both languages
(the i18n table walked against every component of a built board and every message the code writes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tunelab.webui.fields import FIELDS
from tunelab.webui.i18n import LANGS, TEXTS, text

WEBUI = Path(__file__).resolve().parents[2] / "src" / "tunelab" / "webui"


def test_every_field_and_control_has_english_and_chinese() -> None:
    for field in FIELDS:
        assert field.name in TEXTS, field.name
        assert text(field.name, "en") != text(field.name, "zh"), field.name
    assert text("start", "zh") == "开始" and text("tab_train", "en") == "Train"
    assert all(en.strip() and zh.strip() and en != zh for en, zh in TEXTS.values())


def test_board_has_a_component_per_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("gradio")
    from tunelab.webui.app import build_board

    demo = build_board(tmp_path / "saves")
    board = demo.tunelab_board
    assert [board.components[f.name].elem_id for f in FIELDS] == [f.name for f in FIELDS]
    assert board.components["template"].value == "chatml"
    assert "identity" in [c[0] for c in board.components["dataset"].choices]
    assert {"start", "abort", "preview", "eval_start", "export_start", "load_model", "resume"} <= set(board.buttons)


def _words(demo: Any) -> list[tuple[Any, str]]:
    """(block, its visible words): every label, button text and tab title of a built board."""
    import gradio as gr

    found = []
    for block in demo.blocks.values():
        if isinstance(block, gr.Button):
            found.append((block, block.value))
        elif isinstance(block, (gr.Tab, gr.Accordion)) or getattr(block, "show_label", False) is not False:
            label = getattr(block, "label", None)
            if isinstance(label, str) and label:
                found.append((block, label))
    return found


def test_every_word_on_the_board_comes_from_the_table_in_both_languages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("gradio")
    from tunelab.webui.app import build_board

    boards = {lang: build_board(tmp_path / "saves", lang=lang) for lang in LANGS}
    by_lang = {lang: _words(demo) for lang, demo in boards.items()}
    assert len(by_lang["en"]) == len(by_lang["zh"]) > 100
    pairs = {(en, zh) for en, zh in TEXTS.values()}
    for (block, en), (_, zh) in zip(by_lang["en"], by_lang["zh"], strict=True):
        assert (en, zh) in pairs, f"{type(block).__name__} #{block.elem_id}: {en!r} / {zh!r} is not an i18n entry"
    # and the language switch reaches every one of them (the top bar's own language box aside)
    board = boards["en"].tunelab_board
    switched = {id(c) for _, c in board.labelled.values()} | {id(b) for _, b in board.buttons.values()}
    missed = [b.elem_id for b, _ in by_lang["en"] if id(b) not in switched and b.elem_id not in ("ui_lang",)
              and not b.elem_id.startswith("tab_")]
    assert missed == []


# text("name", ...), texts["name"], words["name"], texts.get("name", ...): a whole name, not a prefix + variable
MESSAGE_CALL = re.compile(r"""\btext\(\s*["'](\w+)["']\s*,|\b(?:texts|words)\[["'](\w+)["']\]|"""
                          r"""\btexts\.get\(["'](\w+)["']\s*,""")


def test_every_message_the_code_writes_is_in_the_table() -> None:
    used: set[str] = set()
    for path in WEBUI.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        used |= {next(g for g in m.groups() if g) for m in MESSAGE_CALL.finditer(source)}
        # a message in a fixed language would stay English on a Chinese page
        assert not re.search(r"""\btext\([^()]*,\s*["'](en|zh)["']\)""", source), path.name
    assert {"saved", "loaded", "no_model", "started", "busy_board_run", "no_weights", "loss_word"} <= used
    assert sorted(used - set(TEXTS)) == []
    from tunelab.webui.runs import RunInfo

    statuses = ("running", "finished", "failed", "aborted", "lost")
    assert RunInfo.__dataclass_fields__["status"].default in statuses
    for word in [f"status_{s}" for s in statuses] + [f"kind_{k}" for k in ("train", "eval", "export")]:
        assert word in TEXTS, word
