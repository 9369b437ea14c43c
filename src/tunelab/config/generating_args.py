"""Keys of text generation (chat, api, predict), with the anchor's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

#: the sampling keys a model's generation_config.json may hold and a tunelab config may set: what the
#: chat engines read from the model's file and what `do_predict` / `tunelab eval` pass to generate()
GENERATION_KEYS = (
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "num_beams",
    "max_new_tokens",
    "repetition_penalty",
    "length_penalty",
)


@dataclass
class GeneratingArguments:
    """Sampling settings. Keys the user leaves unset yield to the model's generation_config.json."""

    do_sample: bool = field(default=True, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=0.95, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=0.7, metadata={"help": "Nucleus sampling probability mass."})
    top_k: int = field(default=50, metadata={"help": "Sample among the k most likely tokens."})
    num_beams: int = field(default=1, metadata={"help": "Beams for beam search (1 = no beam search)."})
    max_length: int = field(default=1024, metadata={"help": "Largest prompt + response length (overridden by max_new_tokens)."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Largest number of generated tokens."})
    repetition_penalty: float = field(default=1.0, metadata={"help": "Penalty for repeated tokens (1.0 = none)."})
    length_penalty: float = field(default=1.0, metadata={"help": "Beam-search length penalty."})
    skip_special_tokens: bool = field(default=True, metadata={"help": "Drop special tokens from decoded text."})
