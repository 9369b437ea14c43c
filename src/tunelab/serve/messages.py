"""OpenAI chat messages → tunelab's internal `Message`s, with the OpenAI rules made explicit.

One leading system (or developer) message becomes the system prompt; assistant messages with
`tool_calls` become function-call turns (JSON, the internal form); `tool` messages become
observations. Anything the templates cannot express (a system message mid-conversation, image
parts) is a 400 that says so, rather than being dropped silently.
"""

from __future__ import annotations

import json
from typing import Any

from tunelab.data.conversation import Message, Role
from tunelab.serve.errors import ApiError
from tunelab.serve.protocol import ChatMessage


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise ApiError(400, f"messages[{index}].content: part type '{part.type}' is not supported; "
                           "this server takes text only.", param=f"messages.{index}.content")
        texts.append(part.text)
    return "".join(texts)


def _arguments(value: str | dict[str, Any], index: int) -> Any:
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value) if value.strip() else {}
    except json.JSONDecodeError:
        raise ApiError(400, f"messages[{index}].tool_calls: arguments must be a JSON object string.",
                       param=f"messages.{index}.tool_calls") from None


def to_internal(messages: list[ChatMessage]) -> tuple[str | None, list[Message]]:
    """(system prompt, conversation turns); the conversation must end with a user or tool turn."""
    system: str | None = None
    turns: list[Message] = []
    for index, message in enumerate(messages):
        if message.role in ("system", "developer"):
            if turns or system is not None:
                raise ApiError(400, f"messages[{index}]: a system message is only accepted as the first message.",
                               param=f"messages.{index}.role")
            system = _text(message, index)
        elif message.role == "user":
            turns.append(Message(Role.USER, _text(message, index)))
        elif message.role == "assistant" and message.tool_calls:
            calls = [{"name": c.function.name, "arguments": _arguments(c.function.arguments, index)}
                     for c in message.tool_calls]
            turns.append(Message(Role.FUNCTION, json.dumps(calls, ensure_ascii=False)))
        elif message.role == "assistant":
            turns.append(Message(Role.ASSISTANT, _text(message, index)))
        else:  # tool / function results
            turns.append(Message(Role.OBSERVATION, _text(message, index)))
    if not turns:
        raise ApiError(400, "messages: the conversation needs at least one user message.", param="messages")
    if turns[-1].role not in (Role.USER, Role.OBSERVATION):
        raise ApiError(400, "messages: the last message must be from the user or a tool, so the model answers it.",
                       param="messages")
    return system, turns
