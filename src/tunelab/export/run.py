"""`run_export`: the export from a config, top to bottom (load, reference, merge, write, verify, extras).

The reference logits are taken from base + adapters *before* merging, in the same process and
dtype, then the merged model is written, dropped, and reloaded from disk with plain transformers:
what is checked is exactly what other tools will load. Peak memory stays one model.

A vision (or audio) language model is exported the same way with its family's class and its processor
files; its check adds a picture prompt and reloads the processor (`verify.processor_check`).
"""

from __future__ import annotations

import gc
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config.resolved import Config
from tunelab.data.templates.base import SpecialTokens, Template
from tunelab.errors import UserError
from tunelab.export import companions, merge, verify
from tunelab.export.shards import WrittenShards, save_weights
from tunelab.utils import publish

logger = logging.getLogger("tunelab.export")

GGUF_TYPES = ("f16", "f32")


@dataclass(frozen=True)
class ExportOptions:
    """What `tunelab export` does besides the merged folder (command-line flags of cmd_export)."""

    verify: bool = True  # reload and compare logits after writing
    verify_only: bool = False  # only compare an existing export with base + adapters
    gguf: str | None = None  # also write a GGUF file: f16 or f32
    modelfile: bool = True  # also write an Ollama Modelfile (named templates only)


@dataclass
class ExportResult:
    export_dir: Path
    shards: WrittenShards | None = None
    check: verify.Check | None = None
    modelfile: Path | None = None
    gguf: Path | None = None
    value_head: Path | None = None
    notes: list[str] = field(default_factory=list)


def check_request(config: Config, options: ExportOptions) -> Path:
    """Refusals that need no weights: no export_dir, a quantized base, an unknown GGUF type."""
    if not config.export.export_dir:
        raise UserError("export_dir is not set; add export_dir: models/my-merged-model (the folder to write).")
    if config.model.quantization_bit is not None:
        raise UserError(
            f"quantization_bit={config.model.quantization_bit}: export merges into full-precision weights, and merging "
            "into a quantized (bitsandbytes) model would round the adapter away or fail; drop quantization_bit. To "
            "ship a quantized model, set export_quantization_bit (GPTQ) instead."
        )
    if options.gguf is not None and options.gguf not in GGUF_TYPES:
        raise UserError(f"--gguf {options.gguf}: choose one of {', '.join(GGUF_TYPES)}.")
    _refuse_multimodal_extras(config, options)
    if config.export.export_format == "original":
        from tunelab.export.original_layout import source_family

        source_family(config.model.model_name_or_path or "")
        if config.export.export_quantization_bit is not None or options.gguf:
            raise UserError("export_format: original writes the family's own layout for its own code; GPTQ "
                            "(export_quantization_bit) and GGUF (--gguf) are written from the native layout: "
                            "use export_format: native for them.")
    from tunelab.config.files import output_dir_problem

    problem = output_dir_problem(config.export.export_dir, "export_dir")
    if problem:
        raise UserError(problem)
    out = Path(config.export.export_dir)
    publish.recover(out)  # an export killed while it replaced this folder: finish or undo that first
    if options.verify_only:
        if not (out / "config.json").is_file():
            raise UserError(f"--verify-only: {out} holds no exported model (no config.json); run `tunelab export` first.")
        publish.check_folder(out, "--verify-only: the export", hashes=True)
        return out
    _refuse_occupied(out)
    if options.gguf:
        _check_gguf_supported(config)
    return out


# what marks a folder as an adapter or a training run: exporting into it would mix two models' files
_ADAPTER_OR_RUN = ("adapter_config.json", "adapter_model.safetensors", "trainer_state.json", "trainer_log.jsonl",
                   "tunelab_config.yaml")


def _refuse_occupied(out: Path) -> None:
    """An export folder may hold the user's own files, an earlier tunelab export, or nothing else."""
    if not out.is_dir():
        return
    held = [name for name in _ADAPTER_OR_RUN if (out / name).exists()] + sorted(
        p.name for p in out.glob("checkpoint-*") if p.is_dir())
    if held:
        raise UserError(f"export_dir {out} holds an adapter or a training run ({', '.join(held[:4])}); exporting into it "
                        "would leave the adapter's files beside the merged model (transformers would apply the adapter "
                        "a second time). Choose another export_dir, e.g. a sibling folder named '<run>-merged'.")
    foreign = publish.foreign_model_files(out)
    if foreign:
        raise UserError(f"export_dir {out} already holds model files that no tunelab export wrote ({', '.join(foreign[:5])}; "
                        f"no {publish.MANIFEST_NAME}); tunelab does not delete files it did not write. Choose an empty "
                        "folder, or remove those files.")


def _refuse_multimodal_extras(config: Config, options: ExportOptions) -> None:
    """GGUF and GPTQ are written for text models; a vision / audio language model is refused before loading."""
    from tunelab.model.load import resolve_model_path
    from tunelab.model.multimodal import multimodal_family_of_folder

    if not options.gguf and config.export.export_quantization_bit is None:
        return
    family = multimodal_family_of_folder(resolve_model_path(config.model.model_name_or_path, weights=False))
    if family is None:
        return
    if options.gguf:
        raise UserError(f"--gguf: {config.model.model_name_or_path} is a {family.name} multimodal model; tunelab's GGUF "
                        "writer writes text models only (llama.cpp runs a vision model from a language-model GGUF "
                        "plus a separate mmproj file). Export without --gguf, then convert the folder with llama.cpp's "
                        "convert_hf_to_gguf.py (once, and once more with --mmproj).")
    raise UserError(f"export_quantization_bit: {config.model.model_name_or_path} is a {family.name} multimodal model; "
                    "GPTQ export quantizes text models only. Export without export_quantization_bit.")


def _check_gguf_supported(config: Config) -> None:
    """`--gguf` is refused before any weight is loaded when the architecture or tokenizer cannot be written."""
    from tunelab.export.gguf_file import require_supported
    from tunelab.model.load import resolve_model_path

    folder = Path(resolve_model_path(config.model.model_name_or_path, weights=False))
    require_supported(folder, note=" on the export (nothing was written)")


def resolve_template(config: Config, tokenizer: Any) -> Template | None:
    """The named template, or the tokenizer's own (`auto`); None when there is neither."""
    from tunelab.data.templates import get_template
    from tunelab.data.templates.drift import warn_on_drift

    name = config.data.template
    if not name or name == "auto":
        if not getattr(tokenizer, "chat_template", None):
            logger.warning("no template named and the tokenizer has no chat template: probing with plain text only")
            return None
    template = get_template(name, tokenizer, tool_format=config.data.tool_format, default_system=config.data.default_system)
    warn_on_drift(template, tokenizer, config.data, where="export", model=config.model.model_name_or_path)
    return template


def _collect() -> None:
    """Return the memory of dropped models (callers drop their references first)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _reload_and_check(out: Path, dtype: Any, device: str, probes: list[verify.Probe], reference: list[Any],
                      base: list[Any] | None, loaded: merge.LoadedModel, template: Template | None,
                      trust_remote_code: bool) -> verify.Check:
    """Reload the written folder with plain transformers (the family's auto class) and compare its logits."""
    from transformers import AutoConfig

    from tunelab.model.load import model_class
    from tunelab.model.multimodal import multimodal_family

    folder_config = AutoConfig.from_pretrained(out, trust_remote_code=trust_remote_code)
    exported = model_class(folder_config).from_pretrained(out, dtype=dtype, trust_remote_code=trust_remote_code)
    exported = exported.to(device).eval()
    logits = verify.logits_of(exported, probes)
    del exported
    check = verify.compare(logits, reference, base, str(dtype).removeprefix("torch."),
                           media_prompts=sum(bool(p.media) for p in probes))
    verify.require_pass(check, str(out))
    verify.chat_template_check(loaded.tokenizer, out)
    family = multimodal_family(getattr(folder_config, "model_type", None))
    if loaded.media is not None and family is not None:
        verify.processor_check(loaded.media, out, family, next(p for p in probes if p.media), loaded.tokenizer,
                               template)
    return check


def run_export(config: Config, options: ExportOptions = ExportOptions()) -> ExportResult:
    """Merge, write and verify the model the config describes; see docs/export.md."""
    out = check_request(config, options)
    paths = merge.adapter_paths(config)
    if config.export.export_quantization_bit is not None and not options.verify_only:
        from tunelab.export.gptq import check_gptq_available

        check_gptq_available()
    from tunelab.model.load import resolve_model_path

    dtype = merge.export_torch_dtype(config, resolve_model_path(config.model.model_name_or_path, weights=False))
    device = merge.export_device(config)
    loaded = merge.load_base(config, dtype, device)
    template = resolve_template(config, loaded.tokenizer)
    probes = verify.probe_inputs(loaded.tokenizer, template, loaded.media)
    base_logits = verify.logits_of(loaded.model, probes) if paths and (options.verify or options.verify_only) else None
    model = merge.attach_adapters(loaded.model, paths, config.model.model_name_or_path or "")
    reference = verify.logits_of(model, probes) if options.verify or options.verify_only else []
    result = ExportResult(export_dir=out)
    if options.verify_only:
        model = loaded.model = None
        _collect()
        result.check = _reload_and_check(out, dtype, device, probes, reference, base_logits, loaded, template,
                                          config.model.trust_remote_code)
        return result

    model = merge.merge_all(model, paths)
    companions.add_stop_tokens(model, loaded.tokenizer, template)
    # Everything is written into a staging folder beside export_dir, checked, listed in a manifest and only
    # then renamed into place (utils/publish.py): a kill or a full disk at any moment leaves the earlier
    # export (or nothing) in export_dir, never a folder of mixed or missing files.
    out.parent.mkdir(parents=True, exist_ok=True)
    publish.require_free_space(out.parent, _bytes_needed(model, options), f"the export to {out}")
    staging = publish.staging_for(out)
    try:
        result.shards = save_weights(model, staging, config.export.export_size, legacy=config.export.export_legacy_format)
        model = loaded.model = None  # only the files on disk are checked from here on
        _collect()
        if loaded.media is not None:
            companions.save_processor(loaded.media.processor, staging, source=loaded.model_path)
        companions.save_tokenizer(loaded.tokenizer, template, staging, source=loaded.model_path,
                                  trust_remote_code=config.model.trust_remote_code)
        companions.copy_model_code(staging)
        head = companions.copy_value_head([loaded.model_path, *paths], staging)
        result.value_head = out / head.name if head else None
        if options.verify:
            result.check = _reload_and_check(staging, dtype, device, probes, reference, base_logits, loaded, template,
                                              config.model.trust_remote_code)
        else:
            logger.warning("the export was not verified (--no-verify)")
        if options.gguf:
            from tunelab.export.gguf_file import write_gguf

            result.gguf = out / write_gguf(staging, staging / f"model-{options.gguf}.gguf", options.gguf, template).name
        if options.modelfile:
            written = _write_modelfile(staging, template, loaded.tokenizer, result.gguf)
            result.modelfile = out / written.name if written else None
        if config.export.export_format == "original":
            _write_original(config, staging, options, dtype, device, probes, reference, base_logits)
        if config.export.export_quantization_bit is not None:
            from tunelab.export.gptq import quantize_export

            quantize_export(config, staging)
        publish.write_manifest(staging, "export")
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, Exception) and publish.is_disk_full(error):
            kept = f"the earlier export in {out} is intact" if out.exists() else f"{out} was not created"
            raise UserError(f"the disk filled up while writing the export ({error}); {kept}. Free some space or "
                            "choose an export_dir on another disk, then export again.") from None
        raise
    publish.publish(staging, out)
    logger.info("export complete: %s (%s lists every file with its size and sha256)", out, publish.MANIFEST_NAME)
    if config.export.export_hub_model_id:
        from tunelab.export.hub import push_folder

        push_folder(out, config.export.export_hub_model_id, token=config.model.hf_hub_token)
    return result


def _bytes_needed(model: Any, options: ExportOptions) -> int:
    """The weights as written (their own dtype), plus the GGUF copy (2 or 4 bytes a weight) when asked."""
    tensors = list(model.state_dict().values())
    weights = sum(t.numel() * t.element_size() for t in tensors)
    gguf = sum(t.numel() for t in tensors) * (2 if options.gguf == "f16" else 4) if options.gguf else 0
    return weights + gguf + 50_000_000  # tokenizer, configs, Modelfile: well under 50 MB


def _write_original(config: Config, out: Path, options: ExportOptions, dtype: Any, device: str,
                    probes: list[verify.Probe], reference: list[Any], base: list[Any] | None) -> None:
    """The verified native export rewritten in the family's own layout, then checked again as tunelab loads
    an original checkpoint (converted back): the same logits as base + adapters."""
    from tunelab.export.original_layout import write_original_layout
    from tunelab.model.legacy import resolve_native

    write_original_layout(out, config.model.model_name_or_path or "", legacy_format=config.export.export_legacy_format)
    if not options.verify:
        return
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(resolve_native(str(out)), dtype=dtype).to(device).eval()
    logits = verify.logits_of(reloaded, probes)
    del reloaded
    check = verify.compare(logits, reference, base, str(dtype).removeprefix("torch."))
    verify.require_pass(check, str(out))
    logger.info("export_format: original verified: max |Δlogits| %.2e against base + adapters", check.max_error)


def _write_modelfile(out: Path, template: Template | None, tokenizer: Any, gguf: Path | None) -> Path | None:
    from tunelab.data.templates.auto import AutoTemplate
    from tunelab.export.modelfile import modelfile_text

    if template is None or (isinstance(template, AutoTemplate) and template.name == "auto"):
        logger.info("no Ollama Modelfile: it is written from a named template; set template: NAME to get one")
        return None
    if isinstance(template, AutoTemplate):
        logger.info("no Ollama Modelfile: template '%s' is its family's official jinja, not a record tunelab can write "
                    "as an Ollama Go template; Ollama's own template for this family, or one written by hand, is needed",
                    template.name)
        return None
    from tunelab.export.gguf_file import add_bos_token, tokenizer_adds_bos

    source = f"./{gguf.name}" if gguf is not None else "."
    # bos as the model Ollama runs adds it: tunelab's GGUF's add_bos_token, or (FROM the folder) the tokenizer's own
    bos_added = add_bos_token(tokenizer, template) if gguf is not None else tokenizer_adds_bos(tokenizer)
    path = out / "Modelfile"
    path.write_text(modelfile_text(template, SpecialTokens.from_tokenizer(tokenizer), source, bos_added), encoding="utf-8")
    logger.info("wrote the Ollama Modelfile %s (template '%s')", path, template.name)
    return path
