"""LLaMA-Factory's other template names, as records checked against official templates found in public copies.

These names were first written in the anchor's format (`anchor_formats.py`); their Hub templates then
turned up in other projects' test data (llama.cpp's chat-template tests, openvino.genai's and
huggingface.js's per-model copies of tokenizer_config.json, xinference's model list). Where the
anchor's layout already matched, the record stays and is parity-tested against the copy
(tests/fixtures/chat_templates/<name>.json names it); where it did not, the record follows the copy
(openchat, deepseekcoder, phi_small: see docs/templates.md). Names whose copy needs logic a record cannot
hold are shipped as their jinja instead (`official_jinja.py`).
"""

from __future__ import annotations

from tunelab.data.templates.base import BOS, CONTENT, EOS, Template
from tunelab.data.templates.layouts import CHATML, CHATML_TOOL_TURN, QWEN_TOOLS

LLAMAFACTORY_FAMILIES: tuple[Template, ...] = (
    Template(
        name="openchat",
        description="OpenChat 3.5 ('GPT4 Correct User: ... <|end_of_turn|>GPT4 Correct Assistant:')",
        prefix=BOS,
        system="GPT4 Correct System: " + CONTENT + "<|end_of_turn|>",
        user="GPT4 Correct User: " + CONTENT + "<|end_of_turn|>",
        generation="GPT4 Correct Assistant:",
        assistant=" " + CONTENT + "<|end_of_turn|>",
        end_of_turn="<|end_of_turn|>",
        stop_words=("<|end_of_turn|>",),
        official="openchat/openchat-3.5-0106",
    ),
    Template(
        name="deepseekcoder",
        description="DeepSeek Coder instruct ('### Instruction:' / '### Response:', <|EOT|>)",
        prefix=BOS,
        user="### Instruction:\n" + CONTENT + "\n",
        generation="### Response:\n",
        assistant=CONTENT + "\n<|EOT|>",
        separator="\n",
        end_of_turn="<|EOT|>",
        stop_words=("<|EOT|>",),
        default_system=(
            "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and "
            "you only answer questions related to computer science. For politically sensitive questions, security and "
            "privacy issues, and other non-computer science questions, you will refuse to answer\n"
        ),
        official="deepseek-ai/deepseek-coder-33b-instruct",
    ),
    Template(
        name="phi_small",
        description="Phi-3-small (<|user|> ... <|end|>; bos first, eos after the last answer)",
        prefix=BOS,
        system="<|system|>\n" + CONTENT + "<|end|>\n",
        user="<|user|>\n" + CONTENT + "<|end|>\n",
        generation="<|assistant|>\n",
        assistant=CONTENT + "<|end|>",
        separator="\n",
        suffix=EOS,
        end_of_turn="<|end|>",
        stop_words=("<|end|>",),
        official="microsoft/Phi-3-small-8k-instruct",
    ),
    Template(
        name="bailing",
        description="Ling / Bailing (<role>HUMAN</role> ... <role>ASSISTANT</role>)",
        system="<role>SYSTEM</role>" + CONTENT,
        user="<role>HUMAN</role>" + CONTENT,
        generation="<role>ASSISTANT</role>",
        observation="<role>OBSERVATION</role>" + CONTENT,
        assistant=CONTENT,
        stop_words=("<|endoftext|>",),
        efficient_eos=True,
        official="inclusionAI/Ling-lite",
    ),
    Template(
        name="chatml_de",
        description="ChatML with a German default system prompt (German fine-tunes)",
        system="<|im_start|>system\n" + CONTENT + "<|im_end|>\n",
        user="<|im_start|>user\n" + CONTENT + "<|im_end|>\n",
        generation="<|im_start|>assistant\n",
        observation=CHATML_TOOL_TURN,
        assistant=CONTENT + "<|im_end|>",
        separator="\n",
        end_of_turn="<|im_end|>",
        stop_words=("<|im_end|>", "<|im_start|>"),
        default_system="Du bist ein freundlicher und hilfsbereiter KI-Assistent.",
        official="VAGOsolutions/SauerkrautLM-Qwen-32b (a German ChatML fine-tune)",
    ),
    Template(
        name="opencoder",
        description="OpenCoder (ChatML with OpenCoder's default system prompt)",
        **CHATML,
        observation=CHATML_TOOL_TURN,
        default_system="You are OpenCoder, created by OpenCoder Team.",
        official="infly/OpenCoder-8B-Instruct",
    ),
    Template(
        name="solar",
        description="SOLAR ('### User:' / '### Assistant:')",
        system="### System:\n" + CONTENT + "\n\n",
        user="### User:\n" + CONTENT + "\n\n### ",
        generation="Assistant:\n",
        assistant=CONTENT,
        efficient_eos=True,
        official="upstage/SOLAR-10.7B-Instruct-v1.0",
    ),
    Template(
        name="ernie_nothink",
        description="ERNIE 4.5 without reasoning ('User: ... Assistant: ')",
        prefix="<|begin_of_sentence|>",
        system=CONTENT + "\n",
        user="User: " + CONTENT + "\n",
        generation="Assistant: ",
        assistant=CONTENT + "<|end_of_sentence|>",
        end_of_turn="<|end_of_sentence|>",
        stop_words=("<|end_of_sentence|>",),
        official="baidu/ERNIE-4.5-21B-A3B-PT",
    ),
    Template(
        name="llama4",
        description="Llama 4 (<|header_start|> ... <|eot|>)",
        prefix=BOS,
        system="<|header_start|>system<|header_end|>\n\n" + CONTENT + "<|eot|>",
        user="<|header_start|>user<|header_end|>\n\n" + CONTENT + "<|eot|>",
        generation="<|header_start|>assistant<|header_end|>\n\n",
        observation="<|header_start|>ipython<|header_end|>\n\n" + CONTENT + "<|eot|>",
        assistant=CONTENT + "<|eot|>",
        end_of_turn="<|eot|>",
        stop_words=("<|eot|>", "<|eom|>"),
        tool_format="llama3",
        modalities=('image',),
        official="meta-llama/Llama-4-Scout-17B-16E-Instruct",
    ),
    Template(
        name="minicpm_v",
        description="MiniCPM-V 2.6 (ChatML, 'You are a helpful assistant.')",
        **CHATML,
        default_system="You are a helpful assistant.",
        modalities=('image', 'video', 'audio'),
        official="openbmb/MiniCPM-V-2_6",
    ),
    Template(
        name="qwen2_omni",
        description="Qwen2.5-Omni (ChatML, Qwen tools)",
        **CHATML,
        **QWEN_TOOLS,
        default_system="You are a helpful assistant.",
        modalities=('image', 'video', 'audio'),
        official="Qwen/Qwen2.5-Omni-7B",
    ),
)
