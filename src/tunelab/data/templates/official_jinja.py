"""Named templates that *are* their family's official jinja, for the families whose layout no record can hold.

Harmony channels (gpt-oss), per-turn reasoning rules that depend on the position of the last user
query (Qwen3.5, GLM-4.5/4.7, Seed-OSS), dated system prompts (Granite, Mistral Small) and tool
grammars of their own: writing each as a `Template` record would be a second implementation to
drift from the first. These names render the official jinja itself, shipped in
`tunelab/resources/chat_templates/<name>.jinja`, through the same machinery as `template: auto`
(assistant spans found by rendering, see `auto.py`), so they are token-exact by construction and
work with a tokenizer that ships no template at all. `JINJA_SOURCES` says where each file was copied
from; docs/templates.md repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from tunelab.data.templates.auto import AutoTemplate
from tunelab.data.templates.markup import EOS

_LLAMA_CPP = "llama.cpp models/templates/"  # copied from the Hub by llama.cpp's get_chat_template.py (MIT)
_TRL = "TRL 1.16 trl/chat_templates/"  # the checkpoints' own templates, kept by TRL for identity checks (Apache-2.0)
# per-model copies of tokenizer_config.json's chat_template in other projects' test data
_OPENVINO = "openvino.genai@da1db864 tests/python_tests/data/tokenizer_configs.py"
_OLLAMA_AUTOMAP = "huggingface.js@fe42e680 packages/ollama-utils/src/chat-template-automap.ts (the GGUF-embedded template)"
_HFJS_E2E = "huggingface.js@fe42e680 packages/jinja/test/e2e.test.js"
_XINFERENCE = "xinference@7ecec16b xinference/model/llm/llm_family.json"


@dataclass(frozen=True)
class JinjaSource:
    """One shipped official template: the name it answers to and where the file came from."""

    name: str
    description: str
    model: str  # the checkpoint that ships this template
    copied_from: str  # the public copy the file was taken from, byte for byte
    end_of_turn: str  # the token that closes an answer (the stop token of inference); EOS: the tokenizer's eos
    stop_words: tuple[str, ...] = ()
    efficient_eos: bool = False  # answers end with the next role token: eos is trained once, at the end
    modalities: tuple[str, ...] = ()
    content_parts: bool = False  # the jinja reads message contents as lists of typed parts only
    thinking_switch: bool = True  # False: `enable_thinking` is not passed ("nothink" names keep thinking off)


JINJA_SOURCES: tuple[JinjaSource, ...] = (
    JinjaSource("gpt_oss", "gpt-oss (OpenAI harmony: channels analysis / final, reasoning effort, tools)",
                "openai/gpt-oss-120b, gpt-oss-20b", _LLAMA_CPP + "openai-gpt-oss-120b.jinja (= TRL gptoss.jinja)",
                "<|return|>", ("<|return|>", "<|call|>")),
    JinjaSource("glm4_moe", "GLM-4.5 / 4.6 (hybrid reasoning, XML-style tool calls)", "zai-org/GLM-4.5",
                _TRL + "glm4moe.jinja", "<|user|>", ("<|user|>", "<|observation|>"), efficient_eos=True),
    JinjaSource("glm4_7", "GLM-4.7 (reasoning kept across tool turns)", "zai-org/GLM-4.7-Flash",
                _LLAMA_CPP + "GLM-4.7-Flash.jinja", "<|user|>", ("<|user|>", "<|observation|>"), efficient_eos=True),
    JinjaSource("qwen3_5", "Qwen3.5 (thinking on by default; Qwen3.5 XML tool calls; image and video parts)",
                "Qwen/Qwen3.5-4B and larger", _TRL + "qwen3_5_think.jinja (= llama.cpp Qwen3.5-4B.jinja)",
                "<|im_end|>", ("<|im_end|>",), modalities=("image", "video")),
    JinjaSource("qwen3_5_nothink", "Qwen3.5 small models (thinking off by default)", "Qwen/Qwen3.5-2B and smaller",
                _TRL + "qwen3_5_nothink.jinja", "<|im_end|>", ("<|im_end|>",), modalities=("image", "video"),
                thinking_switch=False),
    JinjaSource("qwen3_6", "Qwen3.6 (as Qwen3.5, plus preserve_thinking)", "Qwen/Qwen3.6-27B, Qwen3.6-35B-A3B",
                _TRL + "qwen3_6.jinja", "<|im_end|>", ("<|im_end|>",), modalities=("image", "video")),
    JinjaSource("seed_oss", "Seed-OSS (<seed:think> reasoning with a thinking budget)", "ByteDance-Seed/Seed-OSS-36B-Instruct",
                _LLAMA_CPP + "ByteDance-Seed-OSS.jinja", "<seed:eos>", ("<seed:eos>",)),
    JinjaSource("gemma4", "Gemma 4 (<|turn> roles, thought channel, tool calls)", "google/gemma-4-31B-it",
                _LLAMA_CPP + "google-gemma-4-31B-it.jinja", "<turn|>", ("<turn|>",), modalities=("image", "video", "audio")),
    JinjaSource("gemma4n", "Gemma 4 E2B / E4B (current revision of the small models' template)", "google/gemma-4-E2B-it@8995379",
                _TRL + "gemma4_v5.jinja", "<turn|>", ("<turn|>",), modalities=("image", "video", "audio")),
    JinjaSource("lfm2", "LFM2 (ChatML with Liquid's tool list and Python-style tool calls)", "LiquidAI/LFM2-1.2B@40f3da0",
                _TRL + "lfm2_v2.jinja", "<|im_end|>", ("<|im_end|>",)),
    JinjaSource("granite3", "Granite 3.x (dated system prompt, thinking / tools / documents options)", "ibm-granite/granite-3.3-2b-instruct",
                _LLAMA_CPP + "ibm-granite-granite-3.3-2B-Instruct.jinja", "<|end_of_text|>", ("<|end_of_text|>",)),
    JinjaSource("granite4", "Granite 4.0 (default system prompt, <tool_call> tools)", "ibm-granite/granite-4.0",
                _LLAMA_CPP + "ibm-granite-granite-4.0.jinja", "<|end_of_text|>", ("<|end_of_text|>",)),
    JinjaSource("minimax1", "MiniMax-M1 (<beginning_of_sentence> roles)", "MiniMaxAI/MiniMax-M1",
                _LLAMA_CPP + "MiniMax-M1.jinja", "<end_of_sentence>", ("<end_of_sentence>",)),
    JinjaSource("minimax2", "MiniMax-M2 (]~b] roles, <think> kept after the last user turn)", "MiniMaxAI/MiniMax-M2",
                _LLAMA_CPP + "MiniMax-M2.jinja", "[e~[", ("[e~[",)),
    JinjaSource("mistral_small", "Mistral Small 3.x (tekken: [SYSTEM_PROMPT], dated default system prompt)",
                "mistralai/Mistral-Small-3.2-24B-Instruct-2506", _LLAMA_CPP + "Mistral-Small-3.2-24B-Instruct-2506.jinja",
                EOS, modalities=("image",)),
    JinjaSource("ministral3", "Ministral 3 ([THINK] reasoning, default system prompt)", "mistralai/Ministral-3-14B-Reasoning-2512",
                _LLAMA_CPP + "mistralai-Ministral-3-14B-Reasoning-2512.jinja", EOS, modalities=("image",)),
    JinjaSource("hy3", "Hunyuan 3 (<｜hy_User｜> roles, reasoning and tool tokens)", "tencent/Hy3",
                _LLAMA_CPP + "tencent-Hy3.jinja", "<｜hy_eos:opensource｜>", ("<｜hy_eos:opensource｜>",),
                efficient_eos=True),  # the jinja leaves the last answer open: its eos is added once, at the end
    JinjaSource("cohere", "Cohere Command R / Aya (<|START_OF_TURN_TOKEN|> roles)", "CohereLabs/aya-expanse-8b",
                _TRL + "cohere.jinja", "<|END_OF_TURN_TOKEN|>", ("<|END_OF_TURN_TOKEN|>",)),
    JinjaSource("mimo_vl", "MiMo-VL (Qwen2-VL layout with MiMo's default system prompt and reasoning)", "XiaomiMiMo/MiMo-VL-7B",
                _LLAMA_CPP + "MiMo-VL.jinja", "<|im_end|>", ("<|im_end|>",), modalities=("image", "video")),
    JinjaSource("llava_next_mistral", "LLaVA-NeXT Mistral ([INST] ... [/INST] with image parts)", "llava-hf/llava-v1.6-mistral-7b-hf",
                _TRL + "llava_next.jinja", "</s>", ("</s>",), modalities=("image",),
                content_parts=True),  # the jinja writes "</s>" itself, not eos_token
    JinjaSource("qwen2_vl", "Qwen2-VL / Qwen2.5-VL (ChatML, 'You are a helpful assistant.', image and video parts)",
                "Qwen/Qwen2.5-VL-7B-Instruct (Qwen2-VL ships the same file)", _TRL + "qwen2_5_vl.jinja", "<|im_end|>",
                ("<|im_end|>",), modalities=("image", "video")),
    JinjaSource("breeze", "Breeze 7B instruct ([INST] ... [/INST] with MediaTek's default system prompt)",
                "MediaTek-Research/Breeze-7B-Instruct-v1_0", _OPENVINO, EOS, efficient_eos=True),
    JinjaSource("dbrx", "DBRX Instruct (ChatML with Databricks' default system prompt)", "databricks/dbrx-instruct",
                _OLLAMA_AUTOMAP + " (= " + _OPENVINO + ")", "<|im_end|>", ("<|im_end|>",)),
    JinjaSource("exaone", "EXAONE 3.5 ([|system|] / [|user|] / [|assistant|], [|endofturn|])",
                "LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct", _OLLAMA_AUTOMAP + " (= " + _OPENVINO + ", 2.4B)",
                "[|endofturn|]", ("[|endofturn|]",)),
    JinjaSource("falcon", "Falcon 180B chat ('System: / User: / Falcon:')", "tiiuae/falcon-180B-chat",
                "ollama@fb307609 template/index.json (entry falcon-instruct; attributed by its format)", EOS,
                efficient_eos=True),
    JinjaSource("glm4_5v", "GLM-4.5V (GLM-4.5 roles, <think></think> before answers without reasoning)", "zai-org/GLM-4.5V",
                _XINFERENCE, "<|user|>", ("<|user|>", "<|observation|>"), efficient_eos=True,
                modalities=("image", "video")),
    JinjaSource("mllama", "Llama 3.2 Vision (Llama 3.2 header ids, dated system prompt, image parts)",
                "meta-llama/Llama-3.2-11B-Vision-Instruct", _HFJS_E2E + " (= the ollama llama3.2-vision GGUF)",
                "<|eot_id|>", ("<|eot_id|>", "<|eom_id|>"), modalities=("image",)),
    JinjaSource("moonlight", "Moonlight (<|im_user|> / <|im_assistant|> / <|im_middle|>)",
                "moonshotai/Moonlight-16B-A3B-Instruct", _XINFERENCE, "<|im_end|>", ("<|im_end|>",)),
    JinjaSource("olmo", "OLMo 2 instruct (<|user|> / <|assistant|>, eos after answers)", "allenai/OLMo-2-1124-7B-Instruct",
                _OLLAMA_AUTOMAP, EOS),
    JinjaSource("openchat-3.6", "OpenChat 3.6 (Llama 3 header ids with GPT4 Correct roles)",
                "openchat/openchat-3.6-8b-20240522", _OPENVINO, "<|eot_id|>", ("<|eot_id|>",)),
    JinjaSource("phi4_mini", "Phi-4-mini (<|user|> ... <|end|><|assistant|>, eos after the conversation)",
                "microsoft/Phi-4-mini-instruct", _OLLAMA_AUTOMAP + " (= " + _OPENVINO + ")", "<|end|>", ("<|end|>",)),
    JinjaSource("smollm2", "SmolLM2 (ChatML with SmolLM's default system prompt)", "HuggingFaceTB/SmolLM2-1.7B-Instruct",
                _OLLAMA_AUTOMAP, "<|im_end|>", ("<|im_end|>",)),
    JinjaSource("qwen3_vl_nothink", "Qwen3-VL Instruct (no reasoning; Qwen tools)", "Qwen/Qwen3-VL-8B-Instruct",
                _TRL + "qwen3_vl.jinja", "<|im_end|>", ("<|im_end|>",), modalities=("image", "video")),
)


def read_jinja(name: str) -> str:
    """The shipped official template of `name`, exactly as copied."""
    return resources.files("tunelab.resources").joinpath("chat_templates").joinpath(f"{name}.jinja").read_text(encoding="utf-8")


def _template(source: JinjaSource) -> AutoTemplate:
    return AutoTemplate(
        name=source.name,
        description=source.description,
        user="",
        end_of_turn=source.end_of_turn,
        stop_words=source.stop_words,
        efficient_eos=source.efficient_eos,
        official=f"{source.model} (the official jinja, shipped: {source.copied_from})",
        source="official",
        modalities=source.modalities,
        jinja=read_jinja(source.name),
        content_parts=source.content_parts,
        thinking_switch=source.thinking_switch,
    )


JINJA_TEMPLATES: tuple[AutoTemplate, ...] = tuple(_template(source) for source in JINJA_SOURCES)
