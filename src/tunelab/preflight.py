"""Every check `tunelab train` runs before weights load, in one place, reporting all problems at once.

`tunelab check` runs these and so does training before it loads anything, so "config OK" means the run
starts. The checks read small things only: the config, this machine (devices, installed packages), the
files it names, the model's config.json and tokenizer, the data registry and (for `check`) the data
rows, which training validates itself right after (the same loader, the same messages). Each problem
names its key or file and the fix. Layering: config < model, data < preflight < train, cli.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunelab.config.files import (
    config_file_problems,
    local_path_problems,
    output_dir_problem,
    result_folder_problems,
)
from tunelab.config.hardware import hardware_problems
from tunelab.config.needed_packages import package_problems
from tunelab.config.resolved import Config
from tunelab.config.validate import training_problems
from tunelab.errors import ProblemList, UserError, raise_problems

#: a check: the config -> its problems; it may instead raise a UserError (one problem, or a ProblemList)
#: and return None, as the stages' own `check_config` functions do
Check = Callable[[Config], "Sequence[str] | None"]


def template_name_problems(config: Config) -> list[str]:
    """A named template must exist (`auto` and no template use the tokenizer's own)."""
    from tunelab.data.templates.registry import ALIASES, REGISTRY

    name = config.data.template
    if not name or name == "auto" or ALIASES.get(name, name) in REGISTRY:
        return []
    import difflib

    close = difflib.get_close_matches(name, list(REGISTRY), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return [f"template: unknown template '{name}'.{hint} See `tunelab template list`."]


def data_problems(config: Config) -> list[str]:
    """The data registry: names, entries, stage, files."""
    from tunelab.data.registry_check import dataset_problems

    return dataset_problems(config.data, config.finetuning.stage)


def row_problems(config: Config) -> list[str]:
    """Every bad row, as training reports them before it loads weights (local files; streams and hub data
    sets are read by the run)."""
    if config.data.streaming or data_problems(config):
        return []
    from tunelab.data.dataset_info import get_dataset_attrs, resolve_dataset_dir
    from tunelab.data.loader import accept, load_datasets

    data, stage = config.data, config.finetuning.stage
    names = list(dict.fromkeys(data.dataset_names() + data.eval_dataset_names()))
    if not names:
        return []
    attrs = get_dataset_attrs(names, resolve_dataset_dir(data.dataset_dir))
    if any(attr.load_from not in ("file", "script") for attr in attrs):
        return []
    seed = int(config.training_values.get("seed", 42))
    accept(load_datasets(names, data, stage, seed=seed), data.skip_invalid)  # raises with every bad row
    return []


def model_problems(config: Config) -> list[str]:
    """The model folder, its layers against lora_target, then its tokenizer against the template and the
    embedding size (all from config.json and the tokenizer: no weights)."""
    from tunelab.model.folder import model_folder_problems

    problems = model_folder_problems(config.model)
    if problems or not config.model.model_name_or_path:
        return problems
    folder = _native_config_folder(config)
    if (folder / "config.json").is_file():
        from tunelab.model.layer_check import lora_target_problems

        problems += lora_target_problems(config.model, config.finetuning, folder)
    tokenizer = _tokenizer(config)
    if tokenizer is None:
        return problems
    return problems + _run(lambda c: tokenizer_problems(c, tokenizer), config)


def tokenizer_problems(config: Config, tokenizer: Any) -> list[str]:
    """The template (named or `auto`) must work with the tokenizer; the embedding must hold its tokens."""
    problems: list[str] = []
    data = config.data
    if not template_name_problems(config):
        from tunelab.data.templates.registry import get_template
        from tunelab.data.templates.token_check import markup_problem

        template = get_template(data.template, tokenizer, tool_format=data.tool_format,
                                default_system=data.default_system)
        if data.template and data.template != "auto":
            problem = markup_problem(template, tokenizer, config.model.model_name_or_path)
            problems += [problem] if problem else []
    vocab = _config_vocab_size(config)
    margs = config.model
    if vocab is not None and len(tokenizer) > vocab and not (margs.resize_vocab or margs.special_tokens_to_add()
                                                             or margs.add_tokens):
        problems.append(f"the tokenizer has {len(tokenizer)} tokens but the model's embedding has {vocab} rows "
                        "(vocab_size in config.json); set resize_vocab: true to grow the embeddings.")
    return problems


def _native_config_folder(config: Config) -> Path:
    """The folder whose config.json describes the model as tunelab builds it: for a remote-code family
    tunelab loads natively, its converted folder (config and tokenizer only: no weights are read)."""
    from tunelab.model.legacy import resolve_native

    name = config.model.model_name_or_path or ""
    return Path(resolve_native(name, weights=False) if Path(name).expanduser().is_dir() else name).expanduser()


def _config_vocab_size(config: Config) -> int | None:
    import json

    path = _native_config_folder(config) / "config.json"
    try:
        vocab = json.loads(path.read_text(encoding="utf-8")).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return None
    return vocab if isinstance(vocab, int) and not isinstance(vocab, bool) else None


def _tokenizer(config: Config) -> Any:
    """The tokenizer as training loads it (requested tokens added), or None for a hub id not yet downloaded."""
    from tunelab.model.folder import hub_offline
    from tunelab.model.load import load_tokenizer, resolve_model_path

    path = resolve_model_path(config.model.model_name_or_path or "", weights=False)
    if not Path(path).exists() and not hub_offline():
        return None  # a hub id online: downloading a tokenizer is not a check's job
    try:
        return load_tokenizer(config.model, path)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - the model's own tokenizer code failed: the user's to fix
        raise UserError(f"model_name_or_path '{path}': its tokenizer does not load ({type(error).__name__}: "
                        f"{error}); check the tokenizer files (and its code, with trust_remote_code).") from None


def training_run_problems(config: Config) -> list[str]:
    """What only a training run needs: the keys it must have and a writable output_dir."""
    problems = training_problems(config)
    problem = output_dir_problem(config.training_values.get("output_dir"))
    return problems + ([problem] if problem else [])


#: checks that do not depend on this machine (a config written for another one passes them)
PORTABLE_CHECKS: tuple[Check, ...] = (config_file_problems, template_name_problems, data_problems)
#: checks that ask this machine: its devices, its packages, the model and adapter folders on its disk
MACHINE_CHECKS: tuple[Check, ...] = (hardware_problems, package_problems, model_problems, local_path_problems,
                                     result_folder_problems)


def _run(check: Check, config: Config) -> list[str]:
    try:
        return list(check(config) or ())
    except ProblemList as problems:
        return problems.problems
    except UserError as error:
        return [error.message]


def find_problems(
    config: Config, *, for_training: bool, portable: bool = False, rows: bool = True,
    extra_checks: Sequence[Check] = (),
) -> list[str]:  # fmt: skip
    """Every problem found; `portable` skips the checks of this machine, `rows` reads the data rows,
    `extra_checks` come from above (the stage's own check, which lives in tunelab.train)."""
    checks: list[Check] = [training_run_problems] if for_training else []
    checks += [*PORTABLE_CHECKS, *(() if portable else MACHINE_CHECKS), *((row_problems,) if rows else ()),
               *extra_checks]
    problems: list[str] = []
    for check in checks:
        problems += _run(check, config)
    return list(dict.fromkeys(problems))


def preflight(config: Config, *, for_training: bool = True, extra_checks: Sequence[Check] = ()) -> None:
    """Stop with one message listing every problem, before anything loads (exit code 2). The data rows
    are left to training's own validation, which follows at once (reading them twice would cost a run
    on a large data set its load time again)."""
    problems = find_problems(config, for_training=for_training, rows=False, extra_checks=extra_checks)
    raise_problems(problems, config.source_file)
