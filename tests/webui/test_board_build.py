"""The board builds without a browser: one component per field, both languages for every label."""

from __future__ import annotations

import pytest

from tunelab.webui.fields import FIELDS
from tunelab.webui.i18n import TEXTS, text


def test_every_field_and_control_has_english_and_chinese() -> None:
    for field in FIELDS:
        assert field.name in TEXTS, field.name
        assert text(field.name, "en") != text(field.name, "zh"), field.name
    assert text("start", "zh") == "开始" and text("tab_train", "en") == "Train"


def test_board_has_a_component_per_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("gradio")
    from tunelab.webui.app import build_board

    demo = build_board(tmp_path / "saves")
    board = demo.tunelab_board
    assert [board.components[f.name].elem_id for f in FIELDS] == [f.name for f in FIELDS]
    assert board.components["template"].value == "chatml"
    assert "identity" in [c[0] for c in board.components["dataset"].choices]
    assert {"start", "abort", "preview", "eval_start", "export_start", "load_model"} <= set(board.buttons)
