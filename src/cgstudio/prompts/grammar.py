"""JSON schema -> GBNF, for llama.cpp's grammar sampler: tool calls whose JSON always parses and
whose arguments match the function's parameters schema.

The common subset is converted exactly: ``object`` with ``properties`` (required ones first, in
declared order, then any subset of the optional ones in declared order; no other keys),
``string`` (``enum``/``const`` as literals), ``number``, ``integer``, ``boolean``, ``null``,
``array`` (``items``), ``enum``, ``const``, ``anyOf``/``oneOf`` and a list of types. Anything else
(``$ref``, ``patternProperties``, ``allOf``, an object with no ``properties``, nesting past
``MAX_DEPTH``) falls back to any JSON value of the right kind. Whitespace is at most one space,
so a small model cannot fill its budget with blanks.

Rule names are generated (``r1``, ``r2``...): nothing from the schema becomes grammar syntax
except through ``literal``, which escapes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cgstudio.core.tools import ToolSpec

MAX_DEPTH = 12
MAX_RULES = 4000  # a schema that needs more falls back to generic JSON values

JSON_RULES = {
    "ws": '" "?',
    "value": 'object | array | string | number | integer | "true" | "false" | "null"',
    "object": '"{" ws ( string ":" ws value ( "," ws string ":" ws value )* )? "}"',
    "array": '"[" ws ( value ( "," ws value )* )? "]"',
    "string": '"\\"" ( [^"\\\\\\x00-\\x1f] | "\\\\" ( ["\\\\/bfnrt] | "u" hex hex hex hex ) )* "\\""',
    "hex": "[0-9a-fA-F]",
    "integer": '"-"? ( [0-9] | [1-9] [0-9]* )',
    "number": 'integer ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?',
    "boolean": '"true" | "false"',
    "null": '"null"',
}
_PRIMITIVE = {"string", "number", "integer", "boolean", "null", "object", "array"}


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def json_literal(value: Any) -> str:
    return literal(json.dumps(value, ensure_ascii=False))


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def add(self, body: str) -> str:
        name = f"r{len(self.rules) + 1}"
        self.rules[name] = body
        return name

    def schema(self, s: Any, depth: int = 0) -> str:
        """A rule reference (or a short expression) matching schema ``s``."""
        if not isinstance(s, dict) or depth > MAX_DEPTH or len(self.rules) > MAX_RULES:
            return "value"
        if "const" in s:
            return json_literal(s["const"])
        if isinstance(s.get("enum"), list) and s["enum"]:
            return self.add(" | ".join(json_literal(v) for v in s["enum"]))
        for key in ("anyOf", "oneOf"):
            if isinstance(s.get(key), list) and s[key]:
                return self.add(" | ".join(self.schema(v, depth + 1) for v in s[key]))
        kind = s.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k in _PRIMITIVE]
            if not kinds:
                return "value"
            return self.add(" | ".join(self.schema({**s, "type": k}, depth + 1) for k in kinds))
        if kind == "object":
            return self.object(s, depth)
        if kind == "array":
            items = s.get("items")
            if not isinstance(items, dict):
                return "array"
            item = self.schema(items, depth + 1)
            return self.add(f'"[" ws ( {item} ( "," ws {item} )* )? "]"')
        if kind in _PRIMITIVE:
            return str(kind)
        return "value"

    def object(self, s: dict[str, Any], depth: int) -> str:
        props = s.get("properties")
        if not isinstance(props, dict):
            return "object"
        if not props:
            return literal("{") + " ws " + literal("}")
        required = s["required"] if isinstance(s.get("required"), list) else []
        kv = {
            k: self.add(f"{json_literal(str(k))} {literal(':')} ws {self.schema(v, depth + 1)}")
            for k, v in props.items()
        }
        req = [kv[k] for k in props if k in required]
        opt = [kv[k] for k in props if k not in required]
        if req:
            body = ' "," ws '.join(req) + "".join(f' ( "," ws {o} )?' for o in opt)
        else:
            # Any ordered subset of the optional keys, the empty one included.
            starts = [o + "".join(f' ( "," ws {p} )?' for p in opt[i + 1 :]) for i, o in enumerate(opt)]
            body = "( " + " | ".join(starts) + " )?"
        return self.add(f'"{{" ws {body} "}}"')

    def text(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        lines += [f"{name} ::= {body}" for name, body in JSON_RULES.items()]
        return "\n".join(lines) + "\n"


def schema_grammar(schema: Any) -> str:
    """A grammar whose root is one JSON value matching ``schema``."""
    b = _Builder()
    return b.text(b.schema(schema))


def tool_call_grammar(tools: Sequence[ToolSpec], open_text: str, close_text: str) -> str:
    """One tool call to any of ``tools``: ``open_text``, a newline, the call's JSON
    ``{"name": ..., "arguments": {...}}``, a newline, ``close_text``."""
    if not tools:
        raise ValueError("a tool-call grammar needs at least one tool")
    b = _Builder()
    calls = []
    for t in tools:
        args = b.schema(t.parameters or {"type": "object", "properties": {}})
        calls.append(
            b.add(
                f'"{{" {json_literal("name")} ":" ws {json_literal(t.name)} "," ws '
                f'{json_literal("arguments")} ":" ws {args} "}}"'
            )
        )
    call = b.add(" | ".join(calls))
    return b.text(f"{literal(open_text + chr(10))} {call} {literal(chr(10) + close_text)}")
