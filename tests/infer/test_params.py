"""Where sampling defaults come from: tunelab < the model's generation_config.json < the user's keys
< one request."""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.config.parser import parse_config
from tunelab.infer.params import SamplingParams, default_params, model_generation_defaults


def _config(*pairs: str):  # noqa: ANN202
    return parse_config(["model_name_or_path=unused", *pairs])


def test_model_file_beats_tunelab_defaults_but_not_user_keys(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05,
         "bos_token_id": 1, "eos_token_id": [2, 3], "transformers_version": "5.0"}))
    model = model_generation_defaults(str(tmp_path))
    assert model == {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
    config = _config("temperature=0.3", "max_new_tokens=64")
    params = default_params(config.generating, config.explicit, model)
    assert (params.temperature, params.top_p, params.top_k, params.repetition_penalty) == (0.3, 0.8, 20, 1.05)
    assert params.max_new_tokens == 64
    untouched = _config()
    assert default_params(untouched.generating, untouched.explicit, {}).temperature == 0.95  # the anchor's default


def test_without_a_file_transformers_own_defaults_are_not_taken(tmp_path: Path) -> None:
    from transformers import GenerationConfig

    loaded = GenerationConfig(temperature=0.6)  # holds max_length=20, top_k=50 ... as defaults
    assert model_generation_defaults(str(tmp_path), loaded) == {"temperature": 0.6}
    assert model_generation_defaults(str(tmp_path)) == {}


def test_max_length_only_when_user_set_it_alone() -> None:
    config = _config("max_length=300")
    params = default_params(config.generating, config.explicit, {})
    assert (params.max_new_tokens, params.max_length) == (None, 300)
    both = _config("max_length=300", "max_new_tokens=20")
    assert default_params(both.generating, both.explicit, {}).max_new_tokens == 20


def test_request_overrides() -> None:
    base = SamplingParams(do_sample=False, temperature=0.5)
    assert base.with_overrides(temperature=0.8).do_sample is True  # a positive temperature samples
    assert base.with_overrides(temperature=0).greedy
    assert base.with_overrides(top_p=None, stop="##").stop == ("##",)
    assert base.with_overrides(stop=["a", "", "b"]).stop == ("a", "b")
    assert base.with_overrides(max_new_tokens=None) == base  # None means "not asked"


def test_request_controls_ask_for_nothing_by_default_and_do_sample_wins() -> None:
    from tunelab.infer.structured import Constraint

    plain = SamplingParams()
    assert (plain.presence_penalty, plain.frequency_penalty, plain.logit_bias, plain.logprobs, plain.constraint) == (
        0.0, 0.0, (), None, None)
    asked = plain.with_overrides(logprobs=0, logit_bias=((3, -100.0),), constraint=Constraint("json_object"))
    assert (asked.logprobs, asked.logit_bias, asked.constraint.kind) == (0, ((3, -100.0),), "json_object")
    assert hash(plain.with_overrides(constraint=Constraint("json_schema", schema={"type": "object"})))  # still hashable
    greedy = plain.with_overrides(do_sample=False, temperature=1.5)  # the anchor's do_sample: false beats temperature
    assert greedy.greedy and greedy.temperature == 1.5
