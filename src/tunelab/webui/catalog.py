"""What the board offers to pick from: models, templates, data sets (with a preview), trained runs.

Everything here reads the same sources as the CLI (`dataset_info.json` through tunelab.data, the
template registry, run folders), so a name the board offers is a name `tunelab train` accepts.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from tunelab.errors import UserError

SUGGESTED_MODELS = (
    "tunelab/tiny-chat", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-8B",
    "meta-llama/Meta-Llama-3-8B-Instruct", "THUDM/chatglm3-6b", "THUDM/glm-4-9b-chat",
    "baichuan-inc/Baichuan2-7B-Chat", "mistralai/Mistral-7B-Instruct-v0.3", "google/gemma-2-9b-it",
    "01-ai/Yi-1.5-9B-Chat", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "microsoft/phi-4",
    "Tele-AI/TeleChat-7B", "IEITYuan/Yuan2-2B-hf",
)  # fmt: skip

# Model name patterns → template, most specific first (the anchor fills the template from the model name too).
TEMPLATE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"tunelab/tiny-chat", "chatml"),
    (r"deepseek-r1", "deepseekr1"), (r"deepseek-v3", "deepseek3"), (r"deepseek", "deepseek"),
    (r"qwen3", "qwen3"), (r"qwen", "qwen"),
    (r"llama-?3", "llama3"), (r"llama-?2.*chat", "llama2"),
    (r"chatglm3", "chatglm3"), (r"glm-?4", "glm4"),
    (r"baichuan2", "baichuan2"), (r"yuan", "yuan"), (r"telechat2", "telechat2"), (r"telechat", "telechat"),
    (r"mistral|mixtral", "mistral"), (r"gemma-?3", "gemma3"), (r"gemma", "gemma"),
    (r"yi-", "yi"), (r"phi-?4", "phi4"), (r"phi", "phi"), (r"internlm2", "intern2"), (r"zephyr", "zephyr"),
)  # fmt: skip


def template_names() -> list[str]:
    from tunelab.data.templates import list_templates

    return ["auto", *[t.name for t in list_templates()]]


def infer_template(model: str | None) -> str | None:
    """The template a model needs, when its name or its run folder says (None: leave the field as is)."""
    if not model:
        return None
    saved = Path(model) / "tunelab_config.yaml"  # a run folder of tunelab: its own template
    if saved.is_file():
        import yaml

        try:
            template = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("template")
        except yaml.YAMLError:
            template = None
        if template:
            return str(template)
    name = model.lower()
    for pattern, template in TEMPLATE_PATTERNS:
        if re.search(pattern, name):
            return template
    return None


def dataset_names(dataset_dir: str | None) -> list[str]:
    """Registered data sets of a folder (the bundled demo data when it is the default `data`)."""
    from tunelab.data.dataset_info import load_dataset_info, resolve_dataset_dir

    try:
        return sorted(load_dataset_info(resolve_dataset_dir(dataset_dir)))
    except UserError:
        return []


def preview_rows(dataset_dir: str | None, name: str, count: int = 5) -> tuple[int | None, list[dict[str, Any]]]:
    """(row count when cheaply known, first rows as stored): what "Preview data" shows."""
    from tunelab.data.dataset_info import get_dataset_attrs, resolve_dataset_dir
    from tunelab.data.sources import iter_source_rows

    attr = get_dataset_attrs([name], resolve_dataset_dir(dataset_dir))[0]
    if attr.load_from != "file":
        rows = list(itertools.islice(iter_source_rows(attr, streaming=True), count))
        return None, [getattr(r, "data", {"problem": str(r)}) for r in rows]
    rows = list(iter_source_rows(attr))
    return len(rows), [getattr(r, "data", {"problem": str(r)}) for r in rows[:count]]


def preview_text(dataset_dir: str | None, names: list[str], count: int = 5, *, lang: str = "en") -> str:
    """Markdown for the preview box: per data set, its size and first rows as JSON."""
    from tunelab.webui.i18n import text

    if not names:
        return ""
    blocks = []
    for name in names:
        try:
            total, rows = preview_rows(dataset_dir, name, count)
        except UserError as error:
            blocks.append(f"**{name}**: {error.message}")
            continue
        size = f"{total} {text('rows_word', lang)}" if total is not None else text("hub_dataset", lang)
        body = json.dumps(rows, ensure_ascii=False, indent=1)
        blocks.append(f"**{name}** · {size}\n```json\n{body}\n```")
    return "\n\n".join(blocks)


def has_weights(run_dir: Path) -> bool:
    return (run_dir / "adapter_config.json").is_file() or (run_dir / "config.json").is_file()
