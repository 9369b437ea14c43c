"""OpenAI chat messages → tunelab's internal `Message`s, with the OpenAI rules made explicit.

One leading system (or developer) message becomes the system prompt; assistant messages with
`tool_calls` (or the legacy `function_call`) become function-call turns (JSON, the internal form); `tool`
messages become observations. Tool turns are written as the official templates write them: where the
template's tool format writes an assistant's text beside its calls (Qwen), the turn keeps both, and
consecutive tool results the format writes in one turn (Qwen's `<tool_response>` blocks) become one
observation; a jinja (`template: auto`) template gets them as they came, since its jinja does both itself.
Anything the templates cannot express (a system message mid-conversation, media outside user messages)
is a 400 that says so, rather than being dropped silently.

Media parts of user messages (`image_url`, `video_url`, `input_audio`) become a `<image>` / `<video>` /
`<audio>` marker where the part stands in the text, and their files are collected in order, which is how
`ChatModel` takes them. The server reads `data:` URLs and files on its own machine (a path or a
`file://` URL); it never fetches a remote URL, so an `http(s)://` one is a 400 that says what to send instead.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data.conversation import Message, Role
from tunelab.data.media import MARKERS, is_remote
from tunelab.data.templates.tools import ToolCall, ToolFormat
from tunelab.serve.errors import ApiError
from tunelab.serve.protocol import ChatMessage, ContentPart

#: content part type -> the column its file joins
MEDIA_PARTS = {"image_url": "images", "video_url": "videos", "input_audio": "audios"}


@dataclass
class Conversation:
    """A request's messages in tunelab's terms: system prompt, turns, media, and where each kind of media
    first appears (`messages[1].content[0]`), so errors about them can name the part."""

    system: str | None
    turns: list[Message]
    files: dict[str, list[str]] = field(default_factory=lambda: {column: [] for column in MARKERS})
    first_part: dict[str, str] = field(default_factory=dict)


def _media_ref(part: ContentPart, where: str) -> str:
    """The file a media part names, as ChatModel takes it: a data URL or a local path."""
    if part.type == "input_audio":
        audio = part.input_audio
        if audio is None or not audio.data:
            raise ApiError(400, f"{where}.input_audio: needs {{\"data\": <base64>, \"format\": \"wav\"}}.",
                           param=where.replace("[", ".").replace("]", ""))
        return f"data:audio/{audio.format or 'wav'};base64,{audio.data}"
    value = getattr(part, part.type)
    url = value if isinstance(value, str) else (value.url if value is not None else "")
    param = where.replace("[", ".").replace("]", "")
    if not url:
        raise ApiError(400, f"{where}.{part.type}: needs a url (a data: URL, or a file path on the server).", param=param)
    if url.startswith("data:"):
        return url
    if is_remote(url):
        shown = url if len(url) <= 60 else url[:60] + "..."
        raise ApiError(400, f"{where}.{part.type}: {shown}: this server does not fetch remote URLs; send the file "
                       "as a base64 data URL (data:image/png;base64,...) or as a path on the server's machine.",
                       param=param, code="remote_url_not_supported")
    path = urllib.request.url2pathname(urllib.parse.urlparse(url).path) if url.lower().startswith("file://") else url
    if not Path(path).expanduser().exists():
        raise ApiError(400, f"{where}.{part.type}: {url}: no such file on the server; send the file as a base64 "
                       "data URL instead.", param=param)
    return str(Path(path).expanduser())


def _text(message: ChatMessage, index: int, conversation: Conversation | None = None) -> str:
    """The message's text; media parts become markers and join `conversation` (None: media are refused)."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for number, part in enumerate(content):
        column = MEDIA_PARTS.get(part.type)
        if column is not None:
            where = f"messages[{index}].content[{number}]"
            if conversation is None:
                raise ApiError(400, f"{where}: {part.type} parts are accepted in user messages only.",
                               param=f"messages.{index}.content.{number}")
            conversation.files[column].append(_media_ref(part, where))
            conversation.first_part.setdefault(column, where)
            texts.append(MARKERS[column])
            continue
        if part.type != "text" or part.text is None:
            raise ApiError(400, f"messages[{index}].content: part type '{part.type}' is not supported; this server "
                           "takes text, image_url, video_url and input_audio parts.", param=f"messages.{index}.content")
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


def _calls(message: ChatMessage, index: int) -> list[dict[str, Any]]:
    calls = list(message.tool_calls or [])
    functions = [c.function for c in calls] + ([message.function_call] if message.function_call else [])
    return [{"name": f.name, "arguments": _arguments(f.arguments, index)} for f in functions]


def _assistant(message: ChatMessage, index: int, tool_format: ToolFormat | None) -> Message:
    """An assistant turn: its text, its calls, or both where the tool format writes both."""
    calls = _calls(message, index)
    if not calls:
        return Message(Role.ASSISTANT, _text(message, index))
    text = _text(message, index)
    if text and tool_format is not None and tool_format.content_joiner is not None:
        written = tool_format.format_calls([ToolCall(c["name"], c["arguments"]) for c in calls])
        return Message(Role.ASSISTANT, text + tool_format.content_joiner + written)
    return Message(Role.FUNCTION, json.dumps(calls, ensure_ascii=False))


def to_internal(messages: list[ChatMessage], tool_format: ToolFormat | None = None) -> Conversation:
    """The system prompt, turns and media; the conversation must end with a user or tool turn.
    `tool_format`: the template's, when tunelab writes its tool turns (None: a jinja template writes them)."""
    system: str | None = None
    turns: list[Message] = []
    conversation = Conversation(system=None, turns=turns)
    previous_role = ""
    for index, message in enumerate(messages):
        if message.role in ("system", "developer"):
            if turns or system is not None:
                raise ApiError(400, f"messages[{index}]: a system message is only accepted as the first message.",
                               param=f"messages.{index}.role")
            system = _text(message, index)
        elif message.role == "user":
            turns.append(Message(Role.USER, _text(message, index, conversation)))
        elif message.role == "assistant":
            turns.append(_assistant(message, index, tool_format))
        else:  # tool / function results
            text = _text(message, index)
            joiner = tool_format.results_joiner if tool_format is not None else None
            if joiner is not None and previous_role in ("tool", "function") and turns[-1].role == Role.OBSERVATION:
                turns[-1] = Message(Role.OBSERVATION, turns[-1].content + joiner + text)
            else:
                turns.append(Message(Role.OBSERVATION, text))
        previous_role = message.role
    if not turns:
        raise ApiError(400, "messages: the conversation needs at least one user message.", param="messages")
    if turns[-1].role not in (Role.USER, Role.OBSERVATION):
        raise ApiError(400, "messages: the last message must be from the user or a tool, so the model answers it.",
                       param="messages")
    conversation.system = system
    return conversation
