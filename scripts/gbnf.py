"""The scoring JSON schema as a GBNF grammar, the form llama.cpp enforces.

llama-cpp-python ships a JSON-schema converter, but it ignores an integer's minimum/maximum (RELEVANCE could
be 0 or 37) and lets a space follow every ':' and ','. This one covers exactly what schema.paper_schema
produces and writes what xgrammar enforces for vLLM and the transformers backend with
`any_whitespace=False, separators=(",", ":")`: keys in the schema's order, no whitespace, an enum as its
literal values, a bounded string as at most maxLength characters with no escape sequence (xgrammar's
bounded string admits none either), a bounded integer as its decimal values, an array of prefixItems as
exactly those items. Anything else raises ValueError: the grammar is never silently looser than the schema.
"""
from __future__ import annotations

import json
from typing import Any

MAX_ENUMERATED_INTEGERS = 1000
# One JSON string character: anything but '"', '\' and the control characters U+0000..U+001F.
STRING_CHAR = r'[^"\\\x00-\x1f]'


def _literal(text: str) -> str:
    """A GBNF literal matching `text` exactly."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def add(self, name: str, body: str) -> str:
        base, k = name, 1
        while name in self.rules and self.rules[name] != body:
            k += 1
            name = f"{base}-{k}"
        self.rules[name] = body
        return name

    def visit(self, schema: Any, name: str) -> str:
        """The rule body for `schema` (rules it needs are added under names derived from `name`)."""
        if not isinstance(schema, dict):
            raise ValueError(f"{name}: unsupported schema {schema!r}")
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            if not values:
                raise ValueError(f"{name}: empty enum")
            return " | ".join(_literal(json.dumps(v, ensure_ascii=False, separators=(",", ":")))
                              for v in values)
        kind = schema.get("type")
        if kind == "object":
            return self._object(schema, name)
        if kind == "array":
            return self._array(schema, name)
        if kind == "string":
            lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
            if set(schema) - {"type", "minLength", "maxLength"}:
                raise ValueError(f"{name}: unsupported string keywords {sorted(set(schema) - {'type'})}")
            char = self.add("char", STRING_CHAR)
            reps = f"{{{lo},}}" if hi is None else f"{{{lo},{int(hi)}}}"
            return f'"\\"" {char}{reps} "\\""'
        if kind == "integer":
            lo, hi = schema.get("minimum"), schema.get("maximum")
            if lo is None or hi is None:
                raise ValueError(f"{name}: an integer needs minimum and maximum")
            values = range(int(lo), int(hi) + 1)
            if not 0 < len(values) <= MAX_ENUMERATED_INTEGERS:
                raise ValueError(f"{name}: integer range {lo}..{hi} is empty or too wide")
            return " | ".join(_literal(str(v)) for v in values)
        if kind == "boolean":
            return '"true" | "false"'
        raise ValueError(f"{name}: unsupported schema type {kind!r}")

    def _object(self, schema: dict, name: str) -> str:
        props = schema.get("properties", {})
        if schema.get("additionalProperties", True) is not False:
            raise ValueError(f"{name}: an object must set additionalProperties to false")
        if set(schema.get("required", [])) != set(props):
            raise ValueError(f"{name}: every property must be required")
        parts = []
        for key, sub in props.items():
            rule = self.add(f"{name}-{_rule_name(key)}", self.visit(sub, f"{name}-{_rule_name(key)}"))
            parts.append(f"{_literal(json.dumps(key) + ':')} {rule}")
        inner = ' "," '.join(parts)
        return f'"{{" {inner} "}}"' if parts else '"{" "}"'

    def _array(self, schema: dict, name: str) -> str:
        items = schema.get("prefixItems")
        if items is None or schema.get("items", True) is not False:
            raise ValueError(f"{name}: only arrays of prefixItems with items: false are supported")
        if not schema.get("minItems", len(items)) == schema.get("maxItems", len(items)) == len(items):
            raise ValueError(f"{name}: minItems/maxItems must equal the number of prefixItems")
        rules = [self.add(f"{name}-{i}", self.visit(s, f"{name}-{i}")) for i, s in enumerate(items)]
        return '"[" ' + ' "," '.join(rules) + ' "]"' if rules else '"[" "]"'


def _rule_name(key: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in key.lower()) or "x"


def schema_to_gbnf(schema: dict) -> str:
    """A GBNF grammar (root rule `root`) accepting exactly the compact JSON texts `schema` allows."""
    b = _Builder()
    root = b.visit(schema, "root")
    lines = [f"root ::= {root}"] + [f"{k} ::= {v}" for k, v in b.rules.items()]
    return "\n".join(lines) + "\n"
