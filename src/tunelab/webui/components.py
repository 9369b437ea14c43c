"""gradio components made from rows of the field table, and the board's shared context.

Each field becomes one component whose `elem_id` is the field's name (tests and screenshots find
inputs by it). Handlers receive all field values as positional inputs in table order and turn them
back into a name → value mapping with `Board.values`. A number box whose text is not a number says so
under its label as soon as it is typed (`wire_number_checks`), and Start names it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.webui.fields import FIELDS, FIELDS_BY_NAME, Field, FieldError, field_problems, field_value
from tunelab.webui.i18n import text

# Fields shown as sliders (the chat's generation controls), with (min, max, step).
SLIDERS: dict[str, tuple[float, float, float]] = {
    "max_new_tokens": (1, 2048, 1), "top_p": (0.01, 1.0, 0.01), "temperature": (0.0, 2.0, 0.01),
    "eval_top_p": (0.01, 1.0, 0.01), "eval_temperature": (0.0, 2.0, 0.01),
}


def make_component(f: Field, lang: str, *, choices: list[str] | None = None, value: Any = None, **extra: Any) -> Any:
    """The gradio input for one field, labelled in `lang` (`extra`: layout arguments such as scale).
    A text field given `choices` becomes a dropdown of suggestions that still takes any text."""
    import gradio as gr

    label = text(f.name, lang)
    value = f.default if value is None else value
    common: dict[str, Any] = {"label": label, "elem_id": f.name, **extra}
    if f.kind == "text" and choices is not None:
        return gr.Dropdown(choices=list(choices), value=value, allow_custom_value=True, **common)
    if f.name in SLIDERS:
        low, high, step = SLIDERS[f.name]
        return gr.Slider(low, high, value=value, step=step, **common)
    if f.kind == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if f.kind in ("int", "float"):  # text, not gr.Number: an empty box must stay empty, "abc" must be seen
        return gr.Textbox(value="" if value is None else str(value), lines=1, max_lines=1, **common)
    if f.kind in ("choice", "multi"):
        options = list(choices if choices is not None else f.choices)
        return gr.Dropdown(choices=options, value=value, multiselect=f.kind == "multi",
                           allow_custom_value=f.kind == "multi" or not f.choices, **common)
    return gr.Textbox(value="" if value is None else str(value), lines=1, **common)


@dataclass
class Board:
    """What the tabs share: the field components, the language switch, where runs are kept."""

    saves_root: Path
    components: dict[str, Any] = field(default_factory=dict)
    # elem_id → (text name, component): labels and button texts that follow the language switch
    labelled: dict[str, tuple[str, Any]] = field(default_factory=dict)
    buttons: dict[str, tuple[str, Any]] = field(default_factory=dict)
    lang: Any = None
    on_load: list[tuple[Any, list[Any], list[Any]]] = field(default_factory=list)  # (fn, inputs, outputs)
    # (fn, inputs, outputs) run again when the language changes; fn gets the inputs' values, then the language
    on_language: list[tuple[Any, list[Any], list[Any]]] = field(default_factory=list)

    def add(self, f: Field | str, lang: str, **kwargs: Any) -> Any:
        f = FIELDS_BY_NAME[f] if isinstance(f, str) else f
        component = make_component(f, lang, **kwargs)
        self.components[f.name] = component
        self.labelled[f.name] = (f.name, component)
        return component

    def button(self, name: str, lang: str, *, elem_id: str | None = None, **kwargs: Any) -> Any:
        import gradio as gr

        elem_id = elem_id or name
        button = gr.Button(text(name, lang), elem_id=elem_id, **kwargs)
        self.buttons[elem_id] = (name, button)
        return button

    def label(self, name: str, component: Any, *, text_name: str | None = None) -> Any:
        self.labelled[name] = (text_name or name, component)
        return component

    @property
    def inputs(self) -> list[Any]:
        """Every field component, in table order (the handlers' positional inputs)."""
        return [self.components[f.name] for f in FIELDS]

    @staticmethod
    def values(args: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
        return {f.name: value for f, value in zip(FIELDS, args, strict=True)}


def problem_text(error: UserError, lang: str) -> str:
    """The status line for a refused action, in the page's language where the message has one."""
    message = error.in_lang(lang) if isinstance(error, FieldError) else error.message
    return f"⚠️ {message}"


def boxes_problem(values: dict[str, Any], job: str, lang: str) -> str | None:
    """Every number box of the job holding text that is not a number, as one status line (None: all
    fine), so one press of a button names them all; the buttons check this before anything else."""
    problems = field_problems(values, job)
    return "⚠️ " + "\n\n⚠️ ".join(p.in_lang(lang) for p in problems) if problems else None


def number_check(f: Field, raw: Any, lang: str) -> Any:
    """The update of one number box after typing: its error under the label, or none."""
    import gradio as gr

    try:
        field_value(f, raw)
    except FieldError as error:
        return gr.update(info=f"⚠️ {error.in_lang(lang)}", elem_classes=["tunelab-invalid"])
    return gr.update(info="", elem_classes=[])  # "" clears it (None would leave the old message)


def wire_number_checks(board: Board) -> None:
    """Every number box (not the sliders) checks its text whenever it changes (typed or loaded); the
    update touches only the message under the label, so it does not fire the change again."""
    for f in FIELDS:
        if f.kind in ("int", "float") and f.name not in SLIDERS and f.name in board.components:
            box = board.components[f.name]
            box.change(lambda raw, lang, f=f: number_check(f, raw, lang), [box, board.lang], box,
                       show_progress="hidden")
