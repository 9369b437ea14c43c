"""An Ollama `Modelfile` written from a named template: TEMPLATE (Go template), SYSTEM, PARAMETER stop.

Ollama renders prompts with Go's text/template over `.System`, `.Messages` (`.Role`, `.Content`,
`.ToolCalls`) and `.Tools`, not with jinja, so the chat format is rebuilt from the template's format
strings. Choices that follow Ollama's own official templates:

- the first bos token is left to llama.cpp exactly when it adds one (the GGUF's `add_bos_token`, which
  tunelab writes true for templates that start with bos: `template_starts_with_bos`); otherwise the
  template writes it, so the prompt's ids equal the training ids either way;
- a conversation ending with an assistant turn is continued (that turn stays open);
- the template's default system prompt is the `SYSTEM` line, a request's system message replaces it;
- tools and tool calls are written for the families that have a tool format (qwen, llama3, glm4,
  mistral), with Ollama's `json` function; other templates show tool results as observations.
No trim markers (`{{-`) are used: every character outside `{{ }}` is the template's own text.
"""

from __future__ import annotations

from tunelab.data.templates.base import BOS, CONTENT, SpecialTokens, Template


def _text(text: str, tokens: SpecialTokens) -> str:
    """Literal template text: special tokens filled in, `{{` escaped for Go."""
    filled = tokens.fill(text)
    return filled.replace("{{", '{{ "{{" }}')


def _split(fmt: str) -> tuple[str, str]:
    before, _, after = fmt.partition(CONTENT)
    return before, after


def _wrap(fmt: str, expression: str, tokens: SpecialTokens) -> str:
    before, after = _split(fmt)
    return _text(before, tokens) + expression + _text(after, tokens)


_QWEN_TOOLS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{{ range .Tools }}\n{{ json . }}{{ end }}"
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
_GLM4_TOOLS = (
    "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，"
    "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具"
    "{{ range .Tools }}\n\n## {{ .Function.Name }}\n\n{{ json .Function }}\n在调用上述函数时，请使用 Json 格式表示调用的参数。{{ end }}"
)
_LLAMA3_TOOLS_SYSTEM = "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
_LLAMA3_TOOLS_USER = (
    "Given the following functions, please respond with a JSON for a function call with its proper "
    "arguments that best answers the given prompt.\n\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
    "Do not use variables.\n\n{{ range $.Tools }}{{ json . }}\n\n{{ end }}"
)
_CALLS: dict[str, str] = {
    "qwen": '{{ range $j, $c := .ToolCalls }}{{ if $j }}\n{{ end }}<tool_call>\n{"name": "{{ $c.Function.Name }}", '
    '"arguments": {{ $c.Function.Arguments }}}\n</tool_call>{{ end }}',
    "llama3": '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}',
    "glm4": "{{ range $j, $c := .ToolCalls }}{{ if $j }}\n{{ end }}{{ $c.Function.Name }}\n{{ $c.Function.Arguments }}{{ end }}",
    "mistral": '[TOOL_CALLS] [{{ range $j, $c := .ToolCalls }}{{ if $j }}, {{ end }}{"name": "{{ $c.Function.Name }}", '
    '"arguments": {{ $c.Function.Arguments }}}{{ end }}]',
}


def _system_text(template: Template) -> str:
    """The system content as a Go expression: the system prompt plus, per tool format, the tool list."""
    fmt = template.tool_format
    if fmt == "qwen":
        return "{{ if .System }}{{ .System }}{{ if .Tools }}\n\n{{ end }}{{ end }}{{ if .Tools }}" + _QWEN_TOOLS + "{{ end }}"
    if fmt == "glm4":
        return "{{ .System }}{{ if .Tools }}" + _GLM4_TOOLS + "{{ end }}"
    if fmt == "llama3":
        return "{{ if .Tools }}" + _LLAMA3_TOOLS_SYSTEM + "{{ end }}{{ .System }}"
    return "{{ .System }}"


def _system_condition(template: Template) -> str:
    return "or .System .Tools" if template.tool_format in ("qwen", "glm4", "llama3") else ".System"


def template_starts_with_bos(template: Template) -> bool:
    """Whether every rendering begins with bos: the prefix does, or (no prefix) the first turn always does."""
    if template.prefix:
        return template.prefix.startswith(BOS)
    first_user = template.user.startswith(BOS)
    return first_user and (template.system_in_user or template.system.startswith(BOS))


def go_template(template: Template, tokens: SpecialTokens, bos_added: bool = True) -> str:
    """The Go template that renders conversations like `template` (see the module notes). `bos_added`: llama.cpp
    puts bos before the prompt (the GGUF's add_bos_token); the first bos is then left out of the template."""
    prefix = template.prefix
    user = template.user
    leave_first_bos = bos_added and template_starts_with_bos(template)
    bos_left_to_llama_cpp = False
    if leave_first_bos and BOS in prefix:
        prefix = prefix.replace(BOS, "", 1)
        bos_left_to_llama_cpp = True
    out: list[str] = ["{{ $first := true }}"]
    if template.tool_format == "mistral":
        out.append('{{ $lastUser := -1 }}{{ range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}')
    out.append(_text(prefix, tokens))
    system = template.system
    system_takes_bos = (leave_first_bos and not bos_left_to_llama_cpp and not template.system_in_user
                        and system.startswith(BOS))
    if system_takes_bos:  # Seed-Coder: the system turn opens with bos; llama.cpp writes the first one
        system = system.removeprefix(BOS)
    if not template.system_in_user:
        out.append("{{ if " + _system_condition(template) + " }}" + _wrap(system, _system_text(template), tokens) + "{{ end }}")
    out.append('{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}{{ if eq .Role "user" }}')
    if template.tool_format == "mistral":
        out.append("{{ if and $.Tools (eq $i $lastUser) }}[AVAILABLE_TOOLS] {{ json $.Tools }}[/AVAILABLE_TOOLS]{{ end }}")
    before, after = _split(user)
    if leave_first_bos and not bos_left_to_llama_cpp and before.startswith(BOS):
        before = before.removeprefix(BOS)
        written = "not $first"
        if system_takes_bos:  # after a system turn the first user turn writes its own bos
            written = "or (not $first) (" + _system_condition(template).replace(".System", "$.System").replace(".Tools", "$.Tools") + ")"
        out.append("{{ if " + written + " }}" + _text(BOS, tokens) + "{{ end }}")
    out.append(_text(before, tokens))
    if template.system_in_user:
        out.append("{{ if and $first $.System }}" + _wrap(template.system, "{{ $.System }}", tokens) + "{{ end }}")
    if template.tool_format == "llama3":
        out.append("{{ if and $first $.Tools }}" + _LLAMA3_TOOLS_USER + "{{ end }}")
    out.append("{{ .Content }}" + _text(after, tokens) + "{{ $first = false }}")
    observation = template.observation or template.user
    out.append('{{ else if eq .Role "tool" }}' + _wrap(observation, "{{ .Content }}", tokens))
    answer_before, answer_after = _split(template.assistant)
    calls = _CALLS.get(template.tool_format)
    content = "{{ if .ToolCalls }}" + calls + "{{ else }}{{ .Content }}{{ end }}" if calls else "{{ .Content }}"
    thinking = template.thinking
    if thinking is not None and thinking.every_turn:  # LLaMA-Factory's reasoning formats: a block before every answer
        answer_before += thinking.empty
    out.append(
        '{{ else if eq .Role "assistant" }}' + _text(template.generation + answer_before, tokens) + content
        + "{{ if not $last }}" + _text(answer_after + template.separator, tokens) + "{{ end }}"
    )
    out.append('{{ end }}{{ if and $last (ne .Role "assistant") }}'
               + _text(template.generation + template.generation_suffix, tokens) + "{{ end }}{{ end }}")
    return "".join(part for part in out if part)


def stop_words(template: Template, tokens: SpecialTokens) -> list[str]:
    """The strings that end a turn: end-of-turn token first, then the template's stop words."""
    words: list[str] = []
    for word in (tokens.fill(template.end_of_turn), *template.stop_words):
        if word and word not in words:
            words.append(word)
    return words


def _quoted_block(text: str, what: str) -> str:
    if '"""' in text:
        raise ValueError(f"the {what} contains three double quotes, which a Modelfile cannot hold")
    return '"""' + text + '"""'


def modelfile_text(template: Template, tokens: SpecialTokens, source: str = ".", bos_added: bool = True) -> str:
    """The whole Modelfile; `source` is the FROM target (the export folder, or a .gguf file in it); `bos_added`:
    the model Ollama runs adds bos itself (its GGUF's add_bos_token, see `go_template`)."""
    lines = [
        f"# Ollama Modelfile written by tunelab from template '{template.name}'",
        f"FROM {source}",
        "TEMPLATE " + _quoted_block(go_template(template, tokens, bos_added), "template"),
    ]
    if template.default_system:
        lines.append("SYSTEM " + _quoted_block(template.default_system, "default system prompt"))
    for word in stop_words(template, tokens):
        if '"' in word:
            raise ValueError(f"stop word {word!r} contains a double quote")
        lines.append(f'PARAMETER stop "{word}"')
    return "\n".join(lines) + "\n"
