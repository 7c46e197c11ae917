"""The JSON Schemas of every sync message, loaded and compiled once.

`validate(name, instance)` checks one message against `schemas/<name>.json` and
returns its errors as JSON-pointer paths with short messages; it never raises on
any instance, so a server can feed it whatever a client sent.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

MAX_ERRORS = 100
MAX_MESSAGE = 300


@dataclass(frozen=True, order=True)
class SchemaError:
    """One way an instance fails its schema: where (JSON pointer) and what."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


def _load_documents() -> dict[str, dict[str, Any]]:
    folder = resources.files("mobile_schema") / "schemas"
    documents = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            documents[entry.name.removesuffix(".json")] = json.loads(entry.read_text("utf-8"))
    return documents


ANNOTATIONS = frozenset({"description", "title", "$comment"})
DATA_KEYWORDS = frozenset({"enum", "const", "$defs"})


def _inline(node: Any, current: str, documents: dict[str, Any], depth: int = 0) -> Any:
    """`node` with every $ref replaced by what it names (the schemas are not recursive).

    Resolving references while validating costs more than the checks themselves
    (3.5 s against 0.65 s for a 5,000-op push), so each schema is inlined once.
    """
    if depth > 64:
        raise ValueError(f"$ref nesting too deep in {current}.json")
    if isinstance(node, list):
        return [_inline(item, current, documents, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        file, _, fragment = node["$ref"].partition("#")
        name = file.removesuffix(".json") if file else current
        target = documents[name]
        for part in filter(None, fragment.split("/")):
            target = target[part]
        body = _inline(target, name, documents, depth + 1)
        body = {k: v for k, v in body.items() if k not in ("$id", "$schema", "$defs")}
        rest = {k: _inline(v, current, documents, depth) for k, v in node.items() if k != "$ref"}
        if set(rest) <= ANNOTATIONS:
            return {**body, **rest}
        return {"allOf": [body], **rest}
    return {
        key: value if key in DATA_KEYWORDS else _inline(value, current, documents, depth)
        for key, value in node.items()
    }


@functools.cache
def _compiled() -> dict[str, Draft202012Validator]:
    documents = _load_documents()
    validators = {}
    for name, document in documents.items():
        Draft202012Validator.check_schema(document)
        validators[name] = Draft202012Validator(_inline(document, name, documents))
    return validators


@functools.cache
def _documents() -> dict[str, dict[str, Any]]:
    return _load_documents()


def schema_names() -> list[str]:
    """The name of every message schema (the file names without .json)."""
    return sorted(name for name in _compiled() if name != "common")


def schema(name: str) -> dict[str, Any]:
    """The schema document as written (with its $refs), for serving or documenting it."""
    _validator(name)
    return _documents()[name]


def bundled(name: str) -> dict[str, Any]:
    """The schema with every $ref inlined: one self-contained document per message."""
    return _validator(name).schema


def _validator(name: str) -> Draft202012Validator:
    validators = _compiled()
    if name not in validators:
        raise KeyError(f"no message schema named {name!r}; known: {', '.join(schema_names())}")
    return validators[name]


def json_pointer(parts: Any) -> str:
    """RFC 6901 pointer for a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


_MESSAGES = {
    "type": "must be of type {expected}",
    "pattern": "must match {expected}",
    "minLength": "must be at least {expected} characters long",
    "maxLength": "must be at most {expected} characters long",
    "minimum": "must be at least {expected}",
    "maximum": "must be at most {expected}",
    "minItems": "must hold at least {expected} items",
    "maxItems": "must hold at most {expected} items",
    "maxProperties": "must hold at most {expected} properties",
    "uniqueItems": "must not repeat an item",
    "enum": "must be one of {expected}",
    "const": "must be {expected!r}",
    "anyOf": "is not a value of any accepted shape",
    "oneOf": "is not a value of exactly one accepted shape",
}


def _describe(error: ValidationError) -> str:
    """A message that names the rule broken without echoing the (possibly secret) value."""
    rule, expected = error.validator, error.validator_value
    if rule == "required":
        missing = [key for key in expected if key not in error.instance]
        return f"{', '.join(repr(key) for key in missing)} is required"
    if rule == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(key) for key in error.instance if key not in allowed)
        return f"unexpected field {', '.join(repr(key) for key in extra)}"
    template = _MESSAGES.get(rule)
    message = template.format(expected=expected) if template else error.message
    return message[:MAX_MESSAGE]


def _leaf(error: ValidationError) -> ValidationError:
    """The most specific error under an anyOf/oneOf that failed every branch."""
    while error.context and error.validator in ("oneOf", "anyOf"):
        deepest = max(error.context, key=lambda sub: len(sub.absolute_path))
        if len(deepest.absolute_path) <= len(error.absolute_path):
            break
        error = deepest
    return error


def validate(name: str, instance: Any) -> list[SchemaError]:
    """Every way `instance` fails schema `name` (empty when it is valid); at most 100."""
    validator = _validator(name)
    found: set[SchemaError] = set()
    try:
        for error in validator.iter_errors(instance):
            leaf = _leaf(error)
            found.add(SchemaError(json_pointer(leaf.absolute_path), _describe(leaf)))
            if len(found) >= MAX_ERRORS:
                break
    except RecursionError:
        # Only a pathologically nested instance gets here; it is invalid either way.
        found.add(SchemaError("", "the message is nested too deeply"))
    return sorted(found)


def is_valid(name: str, instance: Any) -> bool:
    """Whether `instance` matches schema `name`."""
    return not validate(name, instance)
