"""What ppo and grpo share: sampling completions, per-token log-probs / values of them, the reward model.

A rollout is a left-padded prompt batch with its sampled completions appended. The completion part
is right-padded: each row's completion ends at (and includes) its first stop token (the template's
end of turn or eos), or at `max_new_tokens`. Positions are counted from each row's first real
token, so left padding changes nothing for the model.

Both trainers run inside `transformers.Trainer`'s own loop (one optimiser step per Trainer step,
gradient accumulation, schedulers, logging, checkpoints and resume as for every other stage): the
rollout is made inside `compute_loss`, from the prompt batch the Trainer hands over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from tunelab.config.resolved import Config
from tunelab.data.batching import pad_right
from tunelab.data.labels import IGNORE_INDEX
from tunelab.errors import UserError
from tunelab.train.losses.logprobs import (
    forward_hidden,
    logit_transform,
    token_logps_from_hidden,
    unwrap,
)

logger = logging.getLogger("tunelab.train")
Tensor = torch.Tensor


@dataclass
class Rollout:
    """Prompt + completion token ids and the masks that say which tokens are which."""

    sequences: Tensor  # [B, P + C]
    attention_mask: Tensor  # [B, P + C]
    prompt_length: int  # P: the left-padded prompt width
    completion_mask: Tensor  # [B, C] float: 1 on completion tokens up to and including the first stop token

    @property
    def completions(self) -> Tensor:
        return self.sequences[:, self.prompt_length:]

    def model_batch(self) -> dict[str, Tensor]:
        position_ids = (self.attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        labels = self.sequences.clone()
        labels[:, : self.prompt_length] = IGNORE_INDEX
        labels[:, self.prompt_length:][self.completion_mask == 0] = IGNORE_INDEX
        return {"input_ids": self.sequences, "attention_mask": self.attention_mask, "position_ids": position_ids,
                "labels": labels}

    def lengths(self) -> Tensor:
        return self.completion_mask.sum(-1)

    def rows(self) -> list[list[int]]:
        """Each row's real tokens (prompt without padding, completion up to its stop), for scoring."""
        out = []
        for i in range(self.sequences.shape[0]):
            prompt = self.sequences[i, : self.prompt_length][self.attention_mask[i, : self.prompt_length].bool()]
            completion = self.completions[i][self.completion_mask[i].bool()]
            out.append(torch.cat((prompt, completion)).tolist())
        return out

    def finished_turns(self, stop_ids: list[int], end_of_turn: list[int]) -> list[list[int]]:
        """Each row as a finished assistant turn: the prompt, the completion without its stop token, then
        the template's end-of-turn markup (`end_of_turn_ids`), the shape of stage rm's `chosen_input_ids`.

        A reward model reads its score at the last token of the rows it was trained on, which end with
        that markup (`<|im_end|>\n` for qwen); a completion cut at `max_new_tokens` is scored as an
        answer that ended there, as `tunelab score` would score its text.
        """
        out = []
        stops = set(stop_ids)
        for i in range(self.sequences.shape[0]):
            prompt = self.sequences[i, : self.prompt_length][self.attention_mask[i, : self.prompt_length].bool()]
            completion = self.completions[i][self.completion_mask[i].bool()].tolist()
            if completion and completion[-1] in stops:
                completion = completion[:-1]
            out.append(prompt.tolist() + completion + list(end_of_turn))
        return out


def end_of_turn_ids(tokenizer: Any, template: Any) -> list[int]:
    """The ids a template writes after an answer's content when it renders a training example: the
    closing markup of the assistant turn and what follows it (qwen: `<|im_end|>`, `\n`)."""
    from tunelab.data.conversation import Message, Role
    from tunelab.data.encode import render_segments
    from tunelab.data.encode_tokens import tokenize_segments

    messages = (Message(Role.USER, "Hi"), Message(Role.ASSISTANT, "Hello"))
    tokens = tokenize_segments(tokenizer, render_segments(tokenizer, template, messages))
    last_content = max((i for i, t in enumerate(tokens) if t.response and t.content), default=len(tokens) - 1)
    return [t.id for t in tokens[last_content + 1 :]]


def completion_mask(completions: Tensor, stop_ids: list[int]) -> Tensor:
    """1 up to and including each row's first stop token, 0 after it."""
    is_stop = torch.zeros_like(completions, dtype=torch.bool)
    for stop in stop_ids:
        is_stop |= completions == stop
    stops_before = is_stop.long().cumsum(-1) - is_stop.long()  # stops strictly before each position
    return (stops_before == 0).float()


@torch.no_grad()
def sample(model: Any, input_ids: Tensor, attention_mask: Tensor, generation_config: Any, stop_ids: list[int],
           pad_token_id: int, num_return_sequences: int = 1) -> Rollout:
    """Sample completions with `model.generate` (in eval mode: no dropout), each prompt repeated in place."""
    inner = unwrap(model)
    was_training = inner.training
    inner.eval()
    try:
        output = inner.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=generation_config,
                                num_return_sequences=num_return_sequences)
    finally:
        inner.train(was_training)
    prompt_length = input_ids.shape[1]
    completions = output[:, prompt_length:]
    mask = completion_mask(completions, stop_ids)
    completions = completions.masked_fill(mask == 0, pad_token_id)
    sequences = torch.cat((output[:, :prompt_length], completions), dim=1)
    prompt_mask = attention_mask.repeat_interleave(num_return_sequences, dim=0)
    full_mask = torch.cat((prompt_mask, mask.long()), dim=1)
    return Rollout(sequences, full_mask, prompt_length, mask)


def completion_logps(model: Any, rollout: Rollout) -> tuple[Tensor, Tensor]:
    """Per-token log-probs of the completion tokens [B, C] (0 on padding) and the last hidden states."""
    inner = unwrap(model)
    batch = rollout.model_batch()
    hidden = forward_hidden(model, batch)
    logps, _ = token_logps_from_hidden(hidden, inner.get_output_embeddings(), batch["labels"],
                                       scale=logit_transform(inner.config))
    return logps[:, rollout.prompt_length - 1:], hidden


def generation_config(config: Config, tokenizer: Any, stop_ids: list[int]) -> Any:
    """The generating arguments (temperature, top_p, top_k, do_sample), `max_completion_length` long."""
    from transformers import GenerationConfig

    gen = config.generating
    ft = config.finetuning
    max_new = ft.max_completion_length or gen.max_new_tokens
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    values: dict[str, Any] = {"max_new_tokens": int(max_new), "do_sample": bool(gen.do_sample),
                              "eos_token_id": stop_ids, "pad_token_id": int(pad)}
    if gen.do_sample:
        values.update(temperature=float(gen.temperature), top_p=float(gen.top_p), top_k=int(gen.top_k))
    return GenerationConfig(**values)


class RewardModelScorer:
    """A reward model trained by `stage: rm` (LM + value_head.safetensors), frozen, scoring token ids.

    `reward_model_type: lora`: `reward_model` is an rm adapter on the policy's base model;
    `full`: `reward_model` is a model folder (+ `reward_model_adapters`); `api`: `reward_model` is
    the URL of a tunelab (or compatible) server's `/v1/score/evaluation`, sent the decoded texts.
    The reward model must share the policy's tokenizer (lora / full), as in the anchor.

    Completions are scored as the finished turns stage rm trained on (`Rollout.finished_turns`: the
    stop token replaced by the template's end-of-turn markup), not cut at the stop token as the
    anchor does: a value head trained at the `\n` after `<|im_end|>` says little at `<|im_end|>`
    itself or mid-answer.
    """

    def __init__(self, config: Config, tokenizer: Any, device: Any) -> None:
        from tunelab.data.encode import stop_token_ids
        from tunelab.data.templates import get_template

        self.config, self.tokenizer, self.device = config, tokenizer, device
        ft = config.finetuning
        template = get_template(config.data.template, tokenizer, tool_format=config.data.tool_format,
                                default_system=config.data.default_system)
        self.stop_ids = stop_token_ids(tokenizer, template)
        self.end_of_turn = end_of_turn_ids(tokenizer, template)
        self.kind = ft.reward_model_type
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.kind == "api":
            self.url = ft.reward_model.rstrip("/")
            if not self.url.endswith("/v1/score/evaluation"):
                self.url += "/v1/score/evaluation"
            return
        self.model, self.head = self._load(config, tokenizer, device)

    @staticmethod
    def _load(config: Config, tokenizer: Any, device: Any) -> tuple[Any, Any]:
        import dataclasses

        from tunelab.model.load import load_model, resolve_model_path, torch_dtype_for
        from tunelab.model.quantization import quantization_config
        from tunelab.model.tuning import apply_lora
        from tunelab.model.value_head import find_value_head, load_value_head

        ft = config.finetuning
        if ft.reward_model_type == "lora":
            base, adapters = config.model.model_name_or_path, ft.reward_model
        else:
            base, adapters = ft.reward_model, ft.reward_model_adapters
        margs = dataclasses.replace(config.model, model_name_or_path=base, adapter_name_or_path=adapters,
                                    quantization_bit=ft.reward_model_quantization_bit)
        path = resolve_model_path(base)
        folders = [*reversed(margs.adapter_paths()), path]
        head_path = find_value_head(folders)
        if head_path is None:
            raise UserError(f"reward_model: no value_head.safetensors in {', '.join(map(str, folders))}; the reward "
                            "model must be the output of a stage: rm run.")
        dtype = torch_dtype_for(config.training_values, config.model.infer_dtype)
        model = load_model(margs, tokenizer, dtype=dtype, model_path=path, for_training=False,
                           quantization_config=quantization_config(margs, dtype))
        if margs.adapter_paths():
            rm_ft = dataclasses.replace(ft, finetuning_type="lora", create_new_adapter=False)
            model = apply_lora(model, rm_ft, margs, False)
        model.requires_grad_(False)
        if margs.quantization_bit is None:
            model = model.to(device)
        head = load_value_head(head_path).to(device=device, dtype=torch.float32).requires_grad_(False)
        logger.info("reward model: %s (%s), value head from %s", ft.reward_model, ft.reward_model_type, head_path)
        return model.eval(), head.eval()

    def score_rollout(self, rollout: Rollout) -> Tensor:
        """One score per completion, each scored as the finished turn stage rm trained on (`finished_turns`)."""
        return self.score(rollout.finished_turns(self.stop_ids, self.end_of_turn))

    @torch.no_grad()
    def score(self, rows: list[list[int]]) -> Tensor:
        """One score per row of token ids (prompt + completion), read at its last token."""
        if self.kind == "api":
            return self._score_api(rows)
        from tunelab.model.value_head import sequence_rewards

        padded = pad_right([(row, None) for row in rows], self.pad)
        batch = {key: padded[key].to(self.device) for key in ("input_ids", "attention_mask")}
        return sequence_rewards(self.model, self.head, batch).float()

    def _score_api(self, rows: list[list[int]]) -> Tensor:
        import json
        import urllib.request

        texts = [self.tokenizer.decode(row) for row in rows]
        body = json.dumps({"model": "reward", "messages": texts}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (the user's own URL)
                scores = json.loads(response.read())["scores"]
        except (OSError, KeyError, ValueError) as error:
            raise UserError(f"reward_model {self.url}: the scoring API failed ({error}).") from None
        return torch.tensor([float(s) for s in scores], dtype=torch.float32, device=self.device)


class RunningMoments:
    """Running mean and std of the scores seen so far (Chan et al.'s parallel update), for `ppo_score_norm`."""

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 0

    def update(self, values: Tensor) -> tuple[float, float]:
        n = values.numel()
        batch_mean, batch_var = float(values.mean()), float(values.var(unbiased=False)) if n > 1 else 0.0
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var, self.count = m2 / total, total
        return self.mean, max(self.var, 0.0) ** 0.5
