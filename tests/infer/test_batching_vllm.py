"""The vLLM engine's side of the per-request controls, without a GPU: vLLM's per-token logprob dicts become
`TokenLogprob`s (the chosen token's log-prob, the top-k in rank order), and the sampling fields map to
vLLM's own (skipped where vllm is not installed; the engine itself runs on the lent GPU machine)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tunelab.infer.engine import TokenLogprob
from tunelab.infer.params import SamplingParams
from tunelab.infer.vllm_engine import token_logprobs


def lp(logprob: float, rank: int) -> SimpleNamespace:
    return SimpleNamespace(logprob=logprob, rank=rank)


def test_vllm_logprob_dicts_become_token_logprobs_in_rank_order() -> None:
    entries = [
        {7: lp(-0.1, 1), 3: lp(-2.5, 2), 9: lp(-3.0, 3)},
        {5: lp(-4.0, 6), 2: lp(-0.2, 1), 8: lp(-1.9, 2)},  # the sampled token (5) is outside the top 2: vLLM adds it
    ]
    assert token_logprobs([7, 5], entries, top=2) == [
        TokenLogprob(token_id=7, logprob=-0.1, top=((7, -0.1), (3, -2.5))),
        TokenLogprob(token_id=5, logprob=-4.0, top=((2, -0.2), (8, -1.9))),
    ]
    assert token_logprobs([7], entries[:1], top=0) == [TokenLogprob(token_id=7, logprob=-0.1, top=())]


def test_openai_controls_map_to_vllm_sampling_params() -> None:
    pytest.importorskip("vllm", reason="vllm is checked on the GPU machine")
    from tunelab.infer.structured import Constraint
    from tunelab.infer.vllm_engine import vllm_sampling_params

    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25, logit_bias=((11, 5.0),), logprobs=3,
                            constraint=Constraint(kind="json_schema", schema={"type": "object"}))
    mapped = vllm_sampling_params(params, [2])
    assert (mapped.presence_penalty, mapped.frequency_penalty, mapped.logprobs) == (0.5, 0.25, 3)
    assert mapped.logit_bias == {11: 5.0}
    assert mapped.structured_outputs.json == {"type": "object"}
