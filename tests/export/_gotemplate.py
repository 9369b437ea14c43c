"""A tiny interpreter for the subset of Go's text/template that tunelab's Modelfiles use.

Only for tests: it lets a test render a Modelfile's TEMPLATE like Ollama would and compare the text
with tunelab's own rendering of the same conversation. Supported: text, {{ expr }}, if / else if /
else / end, range [$i, $x :=] ... end, $x := / $x = assignments, and the functions eq, ne, and, or,
not, len, slice, json; operands .Field, $.Field, $var, $var.Field, "string", numbers, true/false.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def _truthy(value: Any) -> bool:
    return bool(value)


def _tokens(expr: str) -> list[str]:
    lexer = shlex.shlex(expr.replace("(", " ( ").replace(")", " ) "), posix=False)
    lexer.wordchars += ".$-"
    return list(lexer)


class _Scope:
    def __init__(self, parent: _Scope | None = None) -> None:
        self.vars: dict[str, Any] = {}
        self.parent = parent

    def get(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        raise KeyError(name)

    def set(self, name: str, value: Any) -> None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.vars:
                scope.vars[name] = value
                return
            scope = scope.parent
        raise KeyError(f"assignment to undeclared {name}")


def _field(value: Any, path: list[str]) -> Any:
    for part in path:
        value = value.get(part) if isinstance(value, dict) else getattr(value, part)
    return value


_FUNCS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "not": lambda a: not _truthy(a),
    "len": len,
    "slice": lambda seq, start: seq[start:],
    "json": lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
}


def _eval(tokens: list[str], dot: Any, root: Any, scope: _Scope) -> Any:
    def operand(position: int) -> tuple[Any, int]:
        token = tokens[position]
        if token == "(":
            depth, end = 1, position + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(tokens[end], 0)
                end += 1
            return _eval(tokens[position + 1 : end - 1], dot, root, scope), end
        if token.startswith('"'):
            return json.loads(token), position + 1
        if token in ("true", "false"):
            return token == "true", position + 1
        if re.fullmatch(r"-?\d+", token):
            return int(token), position + 1
        if token == ".":
            return dot, position + 1
        if token.startswith("$."):
            return _field(root, token[2:].split(".")), position + 1
        if token.startswith("$"):
            name, *path = token.split(".")
            return _field(scope.get(name), path), position + 1
        if token.startswith("."):
            return _field(dot, token[1:].split(".")), position + 1
        raise ValueError(f"unknown operand {token!r}")

    if tokens[0] in ("and", "or") or tokens[0] in _FUNCS:
        args, position = [], 1
        while position < len(tokens):
            value, position = operand(position)
            args.append(value)
        if tokens[0] == "and":
            return next((a for a in args if not _truthy(a)), args[-1])
        if tokens[0] == "or":
            return next((a for a in args if _truthy(a)), args[-1])
        return _FUNCS[tokens[0]](*args)
    value, _ = operand(0)
    return value


def _parse(source: str) -> list[Any]:
    """Nested nodes: ("text", s), ("expr", toks), ("if", [(cond|None, body)]), ("range", vars, toks, body), ("set", ...)."""
    pieces: list[tuple[str, str]] = []
    position = 0
    for match in _ACTION.finditer(source):
        pieces.append(("text", source[position : match.start()]))
        pieces.append(("action", match.group(1).strip()))
        position = match.end()
    pieces.append(("text", source[position:]))
    stream = iter(pieces)

    def block() -> tuple[list[Any], str]:
        nodes: list[Any] = []
        for kind, value in stream:
            if kind == "text":
                nodes.append(("text", value))
            elif value == "end" or value == "else" or value.startswith("else if "):
                return nodes, value
            elif value.startswith("if "):
                branches, cond = [], _tokens(value[3:])
                while True:
                    body, closer = block()
                    branches.append((cond, body))
                    if closer == "end":
                        break
                    cond = _tokens(closer[8:]) if closer.startswith("else if ") else None
                nodes.append(("if", branches))
            elif value.startswith("range "):
                spec = value[6:]
                names: list[str] = []
                if ":=" in spec:
                    left, spec = spec.split(":=", 1)
                    names = [n.strip() for n in left.split(",")]
                body, _ = block()
                nodes.append(("range", names, _tokens(spec.strip()), body))
            elif re.match(r"^\$\w+\s*:?=", value):
                name, op, expr = re.match(r"^(\$\w+)\s*(:?=)\s*(.*)$", value, re.DOTALL).groups()
                nodes.append(("set", name, op == ":=", _tokens(expr)))
            else:
                nodes.append(("expr", _tokens(value)))
        return nodes, ""

    nodes, _ = block()
    return nodes


def render(source: str, data: dict[str, Any]) -> str:
    out: list[str] = []

    def run(nodes: list[Any], dot: Any, scope: _Scope) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "expr":
                value = _eval(node[1], dot, data, scope)
                out.append("" if value is None else str(value))
            elif kind == "set":
                value = _eval(node[3], dot, data, scope)
                if node[2]:
                    scope.vars[node[1]] = value
                else:
                    scope.set(node[1], value)
            elif kind == "if":
                for cond, body in node[1]:
                    if cond is None or _truthy(_eval(cond, dot, data, scope)):
                        run(body, dot, _Scope(scope))
                        break
            elif kind == "range":
                for index, item in enumerate(_eval(node[2], dot, data, scope) or []):
                    inner = _Scope(scope)
                    if len(node[1]) == 2:
                        inner.vars[node[1][0]], inner.vars[node[1][1]] = index, item
                    elif len(node[1]) == 1:
                        inner.vars[node[1][0]] = item
                    run(node[3], item, inner)

    run(_parse(source), data, _Scope())
    return "".join(out)
