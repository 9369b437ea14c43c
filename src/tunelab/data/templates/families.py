"""The named templates: one `Template(...)` entry per model family, with the anchor's names.

Each entry mirrors its family's official chat template (named in `official`); the parity tests in
tests/templates render both and compare text and token ids. Templates without an official jinja
(`default`, `empty`, `alpaca`, `vicuna`, `yuan`) follow the anchor's / the model authors' code;
docs/templates.md lists which official source each template was checked against.
To add a family, append one entry here and a fixture + parity case in the tests.
"""

from __future__ import annotations

from tunelab.data.templates.base import BOS, CONTENT, EOS, Template, Thinking
from tunelab.data.templates.layouts import CHATML, QWEN_TOOLS

QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# TeleChat2's template writes this when no system message is given (full-width punctuation, as ms-swift registers it)
TELECHAT2_DEFAULT_SYSTEM = (
    "你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院（TeleAI）研发的人工智能助手。"
)

_LLAMA3 = dict(
    prefix=BOS,
    system="<|start_header_id|>system<|end_header_id|>\n\n" + CONTENT + "<|eot_id|>",
    user="<|start_header_id|>user<|end_header_id|>\n\n" + CONTENT + "<|eot_id|>",
    observation="<|start_header_id|>ipython<|end_header_id|>\n\n" + CONTENT + "<|eot_id|>",
    generation="<|start_header_id|>assistant<|end_header_id|>\n\n",
    assistant=CONTENT + "<|eot_id|>",
    end_of_turn="<|eot_id|>",
    stop_words=("<|eot_id|>", "<|eom_id|>"),
    strip_content=True,
    strip_system=True,
    tool_format="llama3",
    text_end="<|end_of_text|>",
)

_DEEPSEEK3 = dict(
    prefix=BOS,
    user="<｜User｜>" + CONTENT,
    generation="<｜Assistant｜>",
    assistant=CONTENT + "<｜end▁of▁sentence｜>",
    end_of_turn="<｜end▁of▁sentence｜>",
)

_GEMMA = dict(
    prefix=BOS,
    system=CONTENT + "\n\n",
    system_in_user=True,
    user="<start_of_turn>user\n" + CONTENT + "<end_of_turn>\n",
    generation="<start_of_turn>model\n",
    assistant=CONTENT + "<end_of_turn>",
    separator="\n",
    end_of_turn="<end_of_turn>",
    stop_words=("<end_of_turn>",),
    strip_content=True,
    strip_system=True,
)

TEMPLATES: tuple[Template, ...] = (
    Template(
        name="default",
        description="tunelab's generic 'Human: / Assistant:' format for base models without a chat template",
        system="System: " + CONTENT + EOS + "\n",
        user="Human: " + CONTENT + EOS + "\n",
        generation="Assistant:",
        assistant=CONTENT + EOS,
        separator="\n",
        source="tunelab",
    ),
    Template(
        name="empty",
        description="no markup at all: user text, then the answer and eos (continued pre-training style SFT)",
        user=CONTENT,
        source="tunelab",
    ),
    Template(
        name="fewshot",
        description="plain few-shot text for base models: no role markup, a blank line after each answer "
        "(the anchor's template for benchmark evaluation)",
        user=CONTENT,
        assistant=CONTENT + "\n\n",
        source="anchor",
    ),
    Template(
        name="alpaca",
        description="Stanford Alpaca's '### Instruction: / ### Response:' format",
        user="### Instruction:\n" + CONTENT + "\n\n",
        generation="### Response:\n",
        assistant=CONTENT + EOS,
        separator="\n\n",
        default_system="Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n",
        source="anchor",
    ),
    Template(
        name="vicuna",
        description="Vicuna v1.1 'USER: ... ASSISTANT:' (FastChat's vicuna_v1.1 conversation)",
        system=CONTENT + " ",
        user="USER: " + CONTENT + " ",
        generation="ASSISTANT:",
        assistant=" " + CONTENT + EOS,
        default_system=(
            "A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's questions."
        ),
        official="lmsys/vicuna-7b-v1.5 (FastChat conversation template)",
    ),
    Template(
        name="chatml",
        description="ChatML (<|im_start|>role ... <|im_end|>) without a default system prompt",
        **CHATML,
        official="ChatML models (e.g. teknium/OpenHermes-2.5-Mistral-7B)",
    ),
    Template(
        name="llama2",
        description="Llama 2 chat: [INST] <<SYS>> ... <</SYS>> ... [/INST]",
        system="<<SYS>>\n" + CONTENT + "\n<</SYS>>\n\n",
        system_in_user=True,
        user=BOS + "[INST] " + CONTENT + " [/INST]",
        assistant=" " + CONTENT + " " + EOS,
        strip_content=True,
        official="meta-llama/Llama-2-7b-chat-hf",
    ),
    Template(
        name="llama3",
        description="Llama 3 / 3.1 / 3.2 / 3.3 instruct (header ids, <|eot_id|>; Llama 3.1 tool prompt)",
        **_LLAMA3,
        official="meta-llama/Meta-Llama-3-8B-Instruct",
    ),
    Template(
        name="qwen",
        description="Qwen1.5 / Qwen2 / Qwen2.5 chat (ChatML with Qwen's default system prompt and tools)",
        **CHATML,
        **QWEN_TOOLS,
        default_system=QWEN_DEFAULT_SYSTEM,
        text_end="<|endoftext|>",
        official="Qwen/Qwen2.5-7B-Instruct",
    ),
    Template(
        name="qwen3",
        description="Qwen3 hybrid reasoning (<think> blocks, enable_thinking) with Qwen tools",
        **CHATML,
        **QWEN_TOOLS,
        thinking=Thinking(),
        text_end="<|endoftext|>",
        official="Qwen/Qwen3-8B",
        saved_jinja="qwen3",  # TRL's copy of Qwen3's template: enable_thinking works in every tool
    ),
    Template(
        name="qwen3_nothink",
        description="Qwen3 instruct models without reasoning (Qwen3-*-Instruct-2507)",
        **CHATML,
        **QWEN_TOOLS,
        text_end="<|endoftext|>",
        official="Qwen/Qwen3-4B-Instruct-2507",
    ),
    Template(
        name="chatglm3",
        description="ChatGLM3 (<|user|> / <|assistant|> role tokens; a turn ends with the next role token)",
        prefix="[gMASK]sop",
        system="<|system|>\n " + CONTENT,
        user="<|user|>\n " + CONTENT,
        observation="<|observation|>\n " + CONTENT,
        generation="<|assistant|>",
        assistant="\n " + CONTENT,
        stop_words=("<|user|>", "<|observation|>"),
        efficient_eos=True,
        tool_format="glm4",
        official="THUDM/chatglm3-6b",
    ),
    Template(
        name="glm4",
        description="GLM-4 chat ([gMASK]<sop>, role tokens, GLM-4 tools)",
        prefix="[gMASK]<sop>",
        system="<|system|>\n" + CONTENT,
        user="<|user|>\n" + CONTENT,
        observation="<|observation|>\n" + CONTENT,
        generation="<|assistant|>",
        assistant="\n" + CONTENT,
        function=CONTENT,
        stop_words=("<|user|>", "<|observation|>"),
        efficient_eos=True,
        tool_format="glm4",
        official="THUDM/glm-4-9b-chat",
    ),
    Template(
        name="baichuan2",
        description="Baichuan2 chat (<reserved_106> user / <reserved_107> assistant ids)",
        user="<reserved_106>" + CONTENT,
        generation="<reserved_107>",
        assistant=CONTENT,
        strip_system=True,
        efficient_eos=True,
        official="baichuan-inc/Baichuan2-7B-Chat (format built in code; vLLM's template)",
    ),
    Template(
        name="yuan",
        description="Yuan 2.0 (<sep> after the prompt, <eod> after the answer)",
        user=CONTENT + "<sep>",
        assistant=CONTENT + "<eod>",
        separator="\n",
        end_of_turn="<eod>",
        stop_words=("<eod>",),
        official="IEITYuan/Yuan2-2B-hf (anchor's format; no official jinja)",
        source="anchor",
    ),
    Template(
        name="telechat",
        description="TeleChat 7B/12B (<_user> ... <_bot> ... <_end>)",
        user="<_user>" + CONTENT,
        generation="<_bot>",
        assistant=CONTENT + "<_end>",
        strip_system=True,
        end_of_turn="<_end>",
        stop_words=("<_end>",),
        official="Tele-AI/telechat-7B",
    ),
    Template(
        name="telechat2",
        description="TeleChat2 (<_system> line, <_user> / <_bot> ... <_end>; a default Chinese system prompt)",
        system="<_system>" + CONTENT + "\n",
        user="<_user>" + CONTENT,
        generation="<_bot>",
        assistant=CONTENT + "<_end>",
        separator="\n",
        default_system=TELECHAT2_DEFAULT_SYSTEM,
        end_of_turn="<_end>",
        stop_words=("<_end>",),
        official="Tele-AI/TeleChat2-7B (chat_template.jinja of the TeleChat2-7B-32K line)",
    ),
    Template(
        name="mistral",
        description="Mistral instruct v0.1/v0.2 ([INST] ... [/INST], system in the first user turn; Mistral tools)",
        prefix=BOS,
        system=CONTENT + "\n\n",
        system_in_user=True,
        user=" [INST] " + CONTENT + " [/INST]",
        observation='[TOOL_RESULTS] {"content": ' + CONTENT + "}[/TOOL_RESULTS]",
        assistant=" " + CONTENT + EOS,
        tool_format="mistral",
        official="mistralai/Mistral-7B-Instruct-v0.2",
    ),
    Template(
        name="gemma",
        description="Gemma / Gemma 2 instruct (<start_of_turn>user|model; system text in the first user turn)",
        **_GEMMA,
        official="google/gemma-2-9b-it",
    ),
    Template(
        name="gemma3",
        description="Gemma 3 instruct (like gemma, the system text opens the first user turn)",
        **_GEMMA,
        official="google/gemma-3-4b-it",
    ),
    Template(
        name="yi",
        description="Yi chat (ChatML)",
        **CHATML,
        official="01-ai/Yi-34B-Chat",
    ),
    Template(
        name="deepseek",
        description="DeepSeek LLM / V2 chat ('User: ... Assistant:')",
        prefix=BOS,
        system=CONTENT + "\n\n",
        user="User: " + CONTENT + "\n\n",
        generation="Assistant:",
        assistant=" " + CONTENT + EOS,
        official="deepseek-ai/deepseek-llm-7b-chat",
    ),
    Template(
        name="deepseek3",
        description="DeepSeek V3 (<｜User｜> / <｜Assistant｜>)",
        **_DEEPSEEK3,
        official="deepseek-ai/DeepSeek-V3",
    ),
    Template(
        name="deepseekr1",
        description="DeepSeek R1 and its distills (V3 format; the generation prompt opens <think>)",
        **_DEEPSEEK3,
        generation_suffix="<think>\n",
        thinking=Thinking(empty="", last_only=True, lstrip_answer=False, switchable=False),
        official="deepseek-ai/DeepSeek-R1",
        saved_jinja="deepseekr1",  # TRL deepseekv3.jinja: R1's template (the generation prompt opens <think>)
    ),
    Template(
        name="phi",
        description="Phi-3 / Phi-3.5 instruct (<|user|> ... <|end|>)",
        system="<|system|>\n" + CONTENT + "<|end|>\n",
        user="<|user|>\n" + CONTENT + "<|end|>\n",
        generation="<|assistant|>\n",
        assistant=CONTENT + "<|end|>",
        separator="\n",
        suffix=EOS,
        end_of_turn="<|end|>",
        stop_words=("<|end|>",),
        official="microsoft/Phi-3.5-mini-instruct",
    ),
    Template(
        name="phi4",
        description="Phi-4 (<|im_start|>role<|im_sep|> ... <|im_end|>)",
        system="<|im_start|>system<|im_sep|>" + CONTENT + "<|im_end|>",
        user="<|im_start|>user<|im_sep|>" + CONTENT + "<|im_end|>",
        generation="<|im_start|>assistant<|im_sep|>",
        assistant=CONTENT + "<|im_end|>",
        end_of_turn="<|im_end|>",
        stop_words=("<|im_end|>",),
        official="microsoft/phi-4",
    ),
    Template(
        name="intern2",
        description="InternLM2 / InternLM2.5 chat (ChatML with bos, eos after the last answer)",
        prefix=BOS,
        **CHATML,
        suffix=EOS,
        official="internlm/internlm2-chat-7b",
    ),
    Template(
        name="zephyr",
        description="Zephyr (<|user|> ... </s>)",
        system="<|system|>\n" + CONTENT + EOS + "\n",
        user="<|user|>\n" + CONTENT + EOS + "\n",
        generation="<|assistant|>\n",
        assistant=CONTENT + EOS,
        separator="\n",
        official="HuggingFaceH4/zephyr-7b-beta",
    ),
)
