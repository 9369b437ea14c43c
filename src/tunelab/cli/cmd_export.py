"""`tunelab export cfg.yaml [key=value ...] [--key value ...] [--verify-only] [--gguf f16|f32]`."""

from __future__ import annotations

from tunelab.errors import UserError

USAGE = """usage: tunelab export CONFIG.yaml [key=value ...] [--key value ...] [options]

Merge the adapters (adapter_name_or_path, in order) into the base model (model_name_or_path) and write
it to export_dir in shards of at most export_size GB (.bin with export_legacy_format), with the
tokenizer and its chat template, the generation config and an Ollama Modelfile; then reload the
export and check that its logits equal those of base + adapters.

options:
  --verify-only      only check an existing export_dir against base + adapters
  --no-verify        skip the check after writing (not recommended)
  --gguf f16|f32     also write model-f16.gguf / model-f32.gguf (llama and qwen2 architectures)
  --no-modelfile     do not write the Ollama Modelfile

See docs/export.md."""

_FLAGS = ("--verify-only", "--no-verify", "--no-modelfile")


def split_options(argv: list[str]) -> tuple[list[str], dict[str, object]]:
    """Separate the export command's own flags from the config arguments."""
    rest: list[str] = []
    options: dict[str, object] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in _FLAGS:
            options[arg[2:].replace("-", "_")] = True
        elif arg == "--gguf" or arg.startswith("--gguf="):
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                index += 1
                value = argv[index]
            else:
                value = "f16"
            options["gguf"] = value
        else:
            rest.append(arg)
        index += 1
    return rest, options


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    rest, flags = split_options(argv)
    if flags.get("verify_only") and flags.get("no_verify"):
        raise UserError("--verify-only and --no-verify contradict each other; choose one.")
    from tunelab.config.parser import parse_config
    from tunelab.export.run import ExportOptions, run_export

    options = ExportOptions(
        verify=not flags.get("no_verify", False),
        verify_only=bool(flags.get("verify_only", False)),
        gguf=str(flags["gguf"]) if "gguf" in flags else None,
        modelfile=not flags.get("no_modelfile", False),
    )
    result = run_export(parse_config(rest), options)
    if result.check is not None:
        print(result.check.describe())
    if not options.verify_only:
        written = [*(result.shards.files if result.shards else {}), *(p.name for p in (result.gguf, result.modelfile,
                                                                                        result.value_head) if p)]
        print(f"exported to {result.export_dir}: {', '.join(written)}")
    return 0
