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
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_BASE = "https://fieldsync.dev/schemas/v1/"
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


@functools.cache
def _compiled() -> dict[str, Draft202012Validator]:
    documents = _load_documents()
    registry = Registry().with_resources(
        (SCHEMA_BASE + f"{name}.json", Resource.from_contents(doc, DRAFT202012))
        for name, doc in documents.items()
    )
    validators = {}
    for name, document in documents.items():
        Draft202012Validator.check_schema(document)
        validators[name] = Draft202012Validator(document, registry=registry)
    return validators


def schema_names() -> list[str]:
    """The name of every message schema (the file names without .json)."""
    return sorted(name for name in _compiled() if name != "common")


def schema(name: str) -> dict[str, Any]:
    """The schema document itself, for serving or documenting it."""
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
