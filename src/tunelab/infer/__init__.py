"""Inference: one engine interface (hf by default, vllm optional) behind `chat`, `webchat` and `api`.

Layers inside this package, each one module: `params` (sampling settings and where their defaults
come from), `stops` + `detokenize` (streaming text hygiene shared by engines), `engine` (the
interface), `hf_engine` / `vllm_engine` (the two backends), `chat_model` (templates, tools and usage
on top of an engine), `media_prompt` (the rules of a conversation with pictures, videos or sounds),
`scoring` (reward models), `loader` (config -> ready model).
"""

from tunelab.infer.chat_model import ChatModel, ChatResult
from tunelab.infer.engine import Engine, TextStream
from tunelab.infer.params import SamplingParams

__all__ = ["ChatModel", "ChatResult", "Engine", "SamplingParams", "TextStream"]
