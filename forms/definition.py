"""Form versions to and from their canonical JSON definition (the `json` format).

The definition nests fields inside groups and repeats, as an author writes them;
`FormVersion.fields` is the same tree flattened in document order. Building a version
checks names, types, choice lists and every expression, so a version that exists is
one the validators can run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from forms.checks import compile_checkers, is_date, is_number
from forms.model import EMPTY, Choice, DefinitionError, Field, FormVersion, Texts, check_type_name
from forms.types import META_FIELDS, SELECT_TYPES

FORM_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}\Z")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]{0,199}\Z")
# Ops, pulls and the store carry a field's key in 128 characters (`field` in common.json).
MAX_KEY = 128
XML_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,199}\Z")
TEXT_KEYS = ("label", "hint", "required_message", "constraint_message")
EXPRESSION_KEYS = ("required", "relevant", "constraint", "default", "calculation")
TEXT_ATTRIBUTES = (
    "relevant",
    "constraint",
    "calculation",
    "choice_filter",
    "repeat_count",
    "choices",
    "appearance",
    "reference",
    "source_type",
    "other_of",
    "xml_name",
)
# The JSON types each field attribute may have (exact types: a boolean is no number here),
# and how a message says it. Texts, maps, numbers and dates are checked where they are read.
ATTRIBUTE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    **{key: ((str,), "text") for key in TEXT_ATTRIBUTES},
    "required": ((str, bool), "true, false or a condition"),
    "readonly": ((bool,), "true or false"),
    "or_other": ((bool,), "true or false"),
    "default": ((str, int, float), "text or a number"),
    "max_length": ((int,), "a positive whole number"),
}


def _texts(value: Any, where: str) -> Texts:
    if value is None:
        return EMPTY
    if isinstance(value, str):
        return MappingProxyType({"default": value})
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return MappingProxyType(dict(value))
    raise DefinitionError(f"{where}: expected text or a map of language to text")


def _strings(value: Any, where: str) -> Mapping[str, str]:
    if value is None:
        return EMPTY
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): str(v) for k, v in value.items()})
    raise DefinitionError(f"{where}: expected a map")


def _optional_number(raw: dict, key: str, name: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not is_number(value):
        # NaN and Infinity are not JSON: the bundle holding them would be unreadable.
        raise DefinitionError(f"field {name!r}: {key} must be a finite number")
    return value


def _optional_date(raw: dict, key: str, name: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not is_date(value):
        raise DefinitionError(f"field {name!r}: {key} must be a date YYYY-MM-DD")
    return value


TRUE_WORDS = frozenset({"yes", "true", "true()", "1"})
FALSE_WORDS = frozenset({"no", "false", "false()", "0", ""})


def _required(value: Any) -> str | None:
    """The required expression: None, "true()" or a condition."""
    if value is None or value is False:
        return None
    if value is True or str(value).strip().lower() in TRUE_WORDS:
        return "true()"
    if str(value).strip().lower() in FALSE_WORDS:
        return None
    return str(value)


def _choices(raw: Any) -> dict[str, tuple[Choice, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DefinitionError("choices: expected a map of list name to choices")
    lists: dict[str, tuple[Choice, ...]] = {}
    for list_name, items in raw.items():
        if not isinstance(items, list):
            raise DefinitionError(f"choice list {list_name!r}: expected a list")
        seen: set[str] = set()
        choices = []
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str | int):
                raise DefinitionError(f"choice list {list_name!r}: every choice needs a name")
            name = str(item["name"])
            if name in seen:
                raise DefinitionError(f"choice list {list_name!r}: choice {name!r} appears twice")
            seen.add(name)
            label = _texts(item.get("label"), f"choice {list_name}/{name}")
            extra = _strings(item.get("extra"), f"choice {list_name}/{name}")
            choices.append(Choice(name=name, label=label, extra=extra))
        lists[str(list_name)] = tuple(choices)
    return lists


def _check_attribute_types(raw: Mapping, name: str) -> None:
    """Refuse a field attribute of the wrong JSON type, naming the field and the attribute."""
    for key, (types, expected) in ATTRIBUTE_TYPES.items():
        value = raw.get(key)
        if value is not None and type(value) not in types:
            raise DefinitionError(f"field {name!r}: {key} must be {expected}")
    xml_name = raw.get("xml_name")
    if xml_name is not None and XML_NAME_RE.match(xml_name) is None:
        raise DefinitionError(f"field {name!r}: xml_name {xml_name!r} is not an element name")


def _field(raw: Any, parent: Field | None, lists: dict[str, tuple[Choice, ...]]) -> Field:
    if not isinstance(raw, Mapping):
        raise DefinitionError("every field is an object with a name and a type")
    name, field_type = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or NAME_RE.match(name) is None or name in META_FIELDS:
        raise DefinitionError(f"field name {name!r} is not a valid name")
    if len(name) > MAX_KEY:
        # A question whose name repeats in several groups is keyed by its path.
        raise DefinitionError(
            f"field {name!r}: its key has {len(name)} characters, more than the {MAX_KEY}"
            " a field's key may have"
        )
    if not isinstance(field_type, str):
        raise DefinitionError(f"field {name!r}: type is missing")
    check_type_name(name, field_type)
    _check_attribute_types(raw, name)
    list_name = raw.get("choices")
    options: tuple[Choice, ...] = ()
    if field_type in SELECT_TYPES:
        if list_name not in lists:
            raise DefinitionError(f"field {name!r}: choice list {list_name!r} does not exist")
        options = lists[list_name]
    elif list_name is not None:
        raise DefinitionError(f"field {name!r}: only select fields have choices")
    if field_type == "reference" and not isinstance(raw.get("reference"), str):
        raise DefinitionError(f"field {name!r}: a reference names the form it refers to")
    texts = {key: _texts(raw.get(key), f"field {name!r} {key}") for key in TEXT_KEYS}
    media_raw = raw.get("media") or {}
    if not isinstance(media_raw, Mapping):
        raise DefinitionError(f"field {name!r}: media is a map of kind to files")
    media = MappingProxyType(
        {str(kind): _texts(files, f"field {name!r} media") for kind, files in media_raw.items()}
    )
    max_length = raw.get("max_length")
    if max_length is not None and max_length <= 0:
        raise DefinitionError(f"field {name!r}: max_length must be a positive whole number")
    repeat = None
    if parent is not None:
        repeat = parent.name if parent.type == "repeat" else parent.repeat
    path = (*parent.path, raw.get("xml_name") or name) if parent else (raw.get("xml_name") or name,)
    return Field(
        name=name,
        type=field_type,
        required=_required(raw.get("required")),
        relevant=raw.get("relevant"),
        constraint=raw.get("constraint"),
        readonly=bool(raw.get("readonly", False)),
        default=None if raw.get("default") is None else str(raw["default"]),
        calculation=raw.get("calculation"),
        choice_list=list_name,
        options=options,
        choice_filter=raw.get("choice_filter"),
        or_other=bool(raw.get("or_other", False)),
        appearance=raw.get("appearance"),
        reference=raw.get("reference"),
        minimum=_optional_number(raw, "min", name),
        maximum=_optional_number(raw, "max", name),
        max_length=max_length,
        min_date=_optional_date(raw, "min_date", name),
        max_date=_optional_date(raw, "max_date", name),
        repeat_count=raw.get("repeat_count"),
        parameters=_strings(raw.get("parameters"), f"field {name!r} parameters"),
        source_type=raw.get("source_type"),
        bind=_strings(raw.get("bind"), f"field {name!r} bind"),
        other_of=raw.get("other_of"),
        media=media,
        parent=parent.name if parent else None,
        repeat=repeat,
        path=path,
        **texts,
    )


def _flatten(
    items: Any, parent: Field | None, lists: dict[str, tuple[Choice, ...]], out: dict[str, Field]
) -> None:
    if not isinstance(items, list):
        where = f"group {parent.name!r}" if parent else "the form"
        raise DefinitionError(f"{where}: fields must be a list")
    for raw in items:
        field = _field(raw, parent, lists)
        if field.name in out:
            raise DefinitionError(f"field name {field.name!r} appears twice")
        out[field.name] = field
        if field.type in ("group", "repeat"):
            _flatten(raw.get("fields", []), field, lists, out)
        elif raw.get("fields"):
            raise DefinitionError(f"field {field.name!r}: only groups and repeats hold fields")


def _languages(fields: dict[str, Field], title: Texts, lists: dict) -> tuple[str, ...]:
    seen: dict[str, None] = dict.fromkeys(title)
    for field in fields.values():
        for texts in (field.label, field.hint, field.required_message, field.constraint_message):
            seen.update(dict.fromkeys(texts))
    for choices in lists.values():
        for choice in choices:
            seen.update(dict.fromkeys(choice.label))
    return tuple(seen)


def from_dict(data: Any) -> FormVersion:
    """Build (and check) a form version from its JSON definition."""
    from forms.compile import compile_version

    if not isinstance(data, Mapping):
        raise DefinitionError("a form definition is a JSON object")
    form_id = data.get("form_id")
    if not isinstance(form_id, str) or FORM_ID_RE.match(form_id) is None:
        raise DefinitionError(
            f"form id {form_id!r} must start with a letter and hold only letters, digits, _ . -"
        )
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DefinitionError("version must be a whole number from 1")
    lists = _choices(data.get("choices"))
    fields: dict[str, Field] = {}
    _flatten(data.get("fields", []), None, lists, fields)
    for field in fields.values():
        if field.other_of is not None and field.other_of not in fields:
            raise DefinitionError(f"field {field.name!r}: other_of names no field")
    title = _texts(data.get("title") or form_id, "title")
    repeats = tuple(name for name, field in fields.items() if field.type == "repeat")
    default_language = data.get("default_language")
    if default_language is not None and not isinstance(default_language, str):
        raise DefinitionError("default_language must be text")
    built = FormVersion(
        form_id=form_id,
        version=version,
        title=title,
        fields=MappingProxyType(fields),
        choice_lists=MappingProxyType(lists),
        default_language=default_language,
        settings=_strings(data.get("settings"), "settings"),
        languages=_languages(fields, title, lists),
        repeats=repeats,
        checkers=MappingProxyType(compile_checkers(fields, repeats)),
    )
    return replace(built, compiled=compile_version(built))


def _field_dict(field: Field, version: FormVersion) -> dict[str, Any]:
    out: dict[str, Any] = {"name": field.name, "type": field.type}
    if field.xml_name != field.name:
        out["xml_name"] = field.xml_name
    simple = {
        "label": dict(field.label) or None,
        "hint": dict(field.hint) or None,
        "media": {kind: dict(files) for kind, files in field.media.items()} or None,
        "required": field.required,
        "required_message": dict(field.required_message) or None,
        "relevant": field.relevant,
        "constraint": field.constraint,
        "constraint_message": dict(field.constraint_message) or None,
        "readonly": field.readonly or None,
        "default": field.default,
        "calculation": field.calculation,
        "choices": field.choice_list,
        "choice_filter": field.choice_filter,
        "or_other": field.or_other or None,
        "appearance": field.appearance,
        "reference": field.reference,
        "min": field.minimum,
        "max": field.maximum,
        "max_length": field.max_length,
        "min_date": field.min_date,
        "max_date": field.max_date,
        "repeat_count": field.repeat_count,
        "parameters": dict(field.parameters) or None,
        "source_type": field.source_type,
        "bind": dict(field.bind) or None,
        "other_of": field.other_of,
    }
    out.update({key: value for key, value in simple.items() if value is not None})
    if field.type in ("group", "repeat"):
        out["fields"] = [_field_dict(child, version) for child in version.children(field.name)]
    return out


def _choice_dict(choice: Choice) -> dict[str, Any]:
    out: dict[str, Any] = {"name": choice.name, "label": dict(choice.label)}
    if choice.extra:
        out["extra"] = dict(choice.extra)
    return out


def to_dict(version: FormVersion) -> dict[str, Any]:
    """The JSON definition of a version; `from_dict(to_dict(v))` equals `v`."""
    out: dict[str, Any] = {
        "form_id": version.form_id,
        "version": version.version,
        "title": dict(version.title),
    }
    if version.default_language is not None:
        out["default_language"] = version.default_language
    if version.settings:
        out["settings"] = dict(version.settings)
    out["fields"] = [_field_dict(field, version) for field in version.children(None)]
    out["choices"] = {
        name: [_choice_dict(choice) for choice in choices]
        for name, choices in version.choice_lists.items()
    }
    return out
