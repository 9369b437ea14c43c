"""`tunelab score cfg.yaml --prompt P --response R`: print the reward a reward model gives a response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.cli.options import pop_option

if TYPE_CHECKING:  # the CLI imports its command modules lazily; a type needs no import at run time
    from tunelab.config.resolved import Config

USAGE = """usage: tunelab score CONFIG.yaml [key=value ...] --prompt TEXT --response TEXT [--system TEXT]

Score one response with a reward model trained by `stage: rm`: the config names the base model
(model_name_or_path), the trained adapter (adapter_name_or_path; the folder holding
value_head.safetensors) and the template. The prompt and response are encoded exactly as in
training (template, turn markers, end of turn) and the reward, read at the response's last
token, is printed."""


class RewardModel:
    """A causal LM (with its adapters) plus the value head found next to them, ready to score."""

    def __init__(self, config: Config) -> None:
        from tunelab.data.templates import get_template
        from tunelab.errors import UserError
        from tunelab.infer.loader import inference_dtype
        from tunelab.model.load import load_model, load_tokenizer, resolve_model_path
        from tunelab.model.tuning import apply_tuning
        from tunelab.model.value_head import find_value_head, load_value_head

        margs = config.model
        path = resolve_model_path(margs.model_name_or_path)
        folders = [*reversed(margs.adapter_paths()), path]
        head_path = find_value_head(folders)
        if head_path is None:
            hint = ""
            output_dir = config.training_values.get("output_dir")
            if output_dir and not margs.adapter_paths() and find_value_head([output_dir]):
                hint = f" The training output {output_dir} holds one: add adapter_name_or_path={output_dir}."
            raise UserError(f"no value_head.safetensors in {', '.join(map(str, folders))}; score needs a reward "
                            f"model trained with stage: rm.{hint}")
        self.tokenizer = load_tokenizer(margs, model_path=path)
        data = config.data
        self.template = get_template(data.template, self.tokenizer, tool_format=data.tool_format,
                                     default_system=data.default_system)
        model = load_model(margs, self.tokenizer, dtype=inference_dtype(margs.infer_dtype), model_path=path,
                           for_training=False)
        if margs.adapter_paths():
            model = apply_tuning(model, config.finetuning, margs, is_trainable=False)
        self.model = model.eval()
        self.head = load_value_head(head_path).to(next(model.parameters()).device).eval()
        self.cutoff_len = int(data.cutoff_len)

    def encode(self, prompt: str, response: str, system: str | None = None) -> list[int]:
        """The token ids training used for this (prompt, response): the `chosen_input_ids` of a pair."""
        from tunelab.data.conversation import Example, Message, Role
        from tunelab.data.encode import EncodeOptions, encode_pairwise

        answer = Message(Role.ASSISTANT, response)
        example = Example(messages=(Message(Role.USER, prompt),), system=system, chosen=answer, rejected=answer)
        return encode_pairwise(self.tokenizer, self.template, example,
                               options=EncodeOptions(cutoff_len=self.cutoff_len))["chosen_input_ids"]

    def score(self, prompt: str, response: str, system: str | None = None) -> float:
        import torch

        from tunelab.model.value_head import sequence_rewards

        ids = torch.tensor([self.encode(prompt, response, system)], device=next(self.model.parameters()).device)
        with torch.inference_mode():
            return float(sequence_rewards(self.model, self.head, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})[0])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.config.parser import parse_config
    from tunelab.errors import UserError

    argv, prompt = pop_option(argv, "--prompt")
    argv, response = pop_option(argv, "--response")
    argv, system = pop_option(argv, "--system")
    if prompt is None or response is None:
        raise UserError("score needs --prompt TEXT and --response TEXT")
    reward = RewardModel(parse_config(argv)).score(prompt, response, system)
    print(f"{reward:.6f}")
    return 0
