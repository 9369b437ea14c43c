"""Layouts many families share, written once: ChatML, the tool turns written with it, LLaMA-Factory's think blocks.

Qwen, Yi, InternLM, SmolLM, DBRX, MiniCPM and a dozen LLaMA-Factory names write the same ChatML turns
and differ only in a default system prompt, a bos, a tool-result turn or a think block; their records
say `**CHATML` and only what differs.
"""

from __future__ import annotations

from tunelab.data.templates.base import Thinking
from tunelab.data.templates.markup import CONTENT

CHATML = dict(
    system="<|im_start|>system\n" + CONTENT + "<|im_end|>\n",
    user="<|im_start|>user\n" + CONTENT + "<|im_end|>\n",
    generation="<|im_start|>assistant\n",
    assistant=CONTENT + "<|im_end|>",
    separator="\n",
    end_of_turn="<|im_end|>",
    stop_words=("<|im_end|>",),
)
# a tool result as Qwen2.5 / Qwen3 write it: a user turn wrapping <tool_response>
QWEN_TOOL_RESULT = "<|im_start|>user\n<tool_response>\n" + CONTENT + "\n</tool_response><|im_end|>\n"
# a tool result as a turn of its own role (LLaMA-Factory's ChatML formats)
CHATML_TOOL_TURN = "<|im_start|>tool\n" + CONTENT + "<|im_end|>\n"
# Qwen's tool use: results in <tool_response>, calls in <tool_call> (tools.QwenTools)
QWEN_TOOLS = dict(observation=QWEN_TOOL_RESULT, tool_format="qwen")
# LLaMA-Factory's reasoning format: a block before every answer, an empty one when the answer has none
ANCHOR_THINKING = Thinking(open="<think>", close="</think>", block="<think>\n{reasoning}\n</think>\n\n",
                           empty="<think>\n\n</think>\n\n", every_turn=True)
