"""XLSForm (.xlsx, .xls) to JSON definitions through pyxform, and definitions back to .xlsx.

pyxform checks the XLSForm and expands what the sheet abbreviates (loops, or_other);
the survey it builds becomes our definition. What XLSForm cannot say natively (ranges,
text lengths, references to other forms) travels as `bind::fs:*` columns, which
XForms carry as attributes in the fieldsync namespace.
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
import zlib
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any
from xml.etree.ElementTree import ParseError
from zipfile import BadZipFile

from forms.model import Field, FormVersion
from forms.types import CONTAINER_TYPES, XLSFORM_TYPES

FS_NAMESPACE = "http://fieldsync.dev/xforms"
NAMESPACES_SETTING = f'fs="{FS_NAMESPACE}"'
# Our field attributes carried as fs:* bind attributes (XLSForm has no column for them).
FS_ATTRIBUTES = {
    "fs:min": "min",
    "fs:max": "max",
    "fs:max_length": "max_length",
    "fs:min_date": "min_date",
    "fs:max_date": "max_date",
    "fs:reference": "reference",
}
BIND_KEYS = {
    "relevant": "relevant",
    "required": "required",
    "constraint": "constraint",
    "calculate": "calculation",
    "readonly": "readonly",
}
MESSAGE_KEYS = {"jr:constraintMsg": "constraint_message", "jr:requiredMsg": "required_message"}
META_GROUP = "meta"
# Type names pyxform itself writes for ours; not worth remembering as the source type.
NORMALISED_TYPES = frozenset({"select one", "select all that apply", "photo"})
FORM_ID_CLEAN = re.compile(r"[^A-Za-z0-9_.-]+")
TRUE_WORDS = {"true()", "yes", "true", "1"}
# Files select_one_from_file and select_multiple_from_file take their choices from.
CHOICE_FILE_SUFFIXES = (".csv", ".xml", ".geojson")


# The spreadsheet readers (zipfile, zlib and XML for .xlsx, xlrd's parser and its
# assertions for .xls) fail in many ways on a file that is not a sound spreadsheet.
UNREADABLE_FILE_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    OSError,
    EOFError,
    NotImplementedError,
    AssertionError,
    ParseError,
    BadZipFile,
    struct.error,
    zlib.error,
)


class XLSFormError(ValueError):
    """The file is not an XLSForm that converts; the message says why, on one line."""


def one_line(text: str) -> str:
    """A message folded onto one line."""
    return " ".join(str(text).split())


def first_problem(text: str) -> str:
    """pyxform's first complaint on one line, with a count of the others."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return one_line(text)
    return f"{lines[0]} (and {len(lines) - 1} more problems like it)"


def clean_form_id(raw: str | None) -> str | None:
    """A form id made of `raw` (letters, digits, _ . -, a letter first), or None if none is left."""
    cleaned = FORM_ID_CLEAN.sub("_", (raw or "").strip()).strip("_")[:100]
    if not cleaned:
        return None
    return cleaned if cleaned[0].isalpha() else ("form_" + cleaned)[:100]


def choose_form_id(given: str | None, own: str | None, file_name: str | None) -> str:
    """The id to store a form under: the one given, else the form's own, else the file's stem.

    A form that names no id is never stored under a shared guess (pyxform's `data`), so
    unrelated forms cannot replace each other's drafts.
    """
    chosen = given or clean_form_id(own) or clean_form_id(PurePath(file_name or "").stem)
    if chosen is None:
        raise XLSFormError(
            "the form has no form_id: set form_id in its settings, or give one when importing"
        )
    return chosen


def texts(value: Any, default_language: str) -> dict[str, str] | None:
    """Labels as a map of language to text ('default' for an untranslated one)."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        out = {str(lang): str(text) for lang, text in value.items() if text is not None}
        return out or None
    return {default_language: str(value)}


def _number(question: str, attribute: str, text: Any) -> float | int:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise XLSFormError(
            f"question {question!r}: {attribute} must be a finite number, not {text!r}"
        )
    return int(value) if value.is_integer() else value


def fs_attribute(question: str, attribute: str, text: Any) -> tuple[str, Any]:
    """The definition key and value of one `fs:*` attribute (`attribute` as the file spells it).

    min and max are numbers and max_length a whole number; anything else is an
    XLSFormError naming the question and the attribute.
    """
    key = FS_ATTRIBUTES[attribute.removeprefix("bind::")]
    if key in ("min", "max"):
        return key, _number(question, attribute, text)
    if key == "max_length":
        value = _number(question, attribute, text)
        if not isinstance(value, int):
            raise XLSFormError(
                f"question {question!r}: {attribute} must be a whole number, not {text!r}"
            )
        return key, value
    return key, text


def _bind(node: dict, out: dict, default_language: str) -> None:
    extra: dict[str, str] = {}
    for key, value in (node.get("bind") or {}).items():
        if key in BIND_KEYS:
            target = BIND_KEYS[key]
            if target == "readonly":
                out["readonly"] = str(value).strip().lower() in TRUE_WORDS
            else:
                out[target] = str(value)
        elif key in MESSAGE_KEYS:
            out[MESSAGE_KEYS[key]] = texts(value, default_language)
        elif key == "fs:type":
            continue  # the type column says it; XForms need this attribute
        elif key in FS_ATTRIBUTES:
            name, number_or_text = fs_attribute(node.get("name"), f"bind::{key}", value)
            out[name] = number_or_text
        else:
            extra[key] = str(value)
    if extra:
        out["bind"] = extra


GENERATED_OTHER_LABEL = "Specify other."


def mark_or_other(fields: list[dict], lists: dict[str, list[dict]]) -> None:
    """Find the text fields pyxform made for `or_other` selects and mark both sides."""
    for index, select in enumerate(fields[:-1]):
        if select.get("fields"):
            mark_or_other(select["fields"], lists)
        sibling = fields[index + 1]
        name = select.get("xml_name") or select.get("name")
        choices = lists.get(select.get("choices"), [])
        generated = (
            select.get("type") in ("select_one", "select_multiple")
            and choices
            and choices[-1].get("name") == "other"
            and sibling.get("name") == f"{select['name']}_other"
            and sibling.get("type") == "text"
            and set((sibling.get("label") or {}).values()) == {GENERATED_OTHER_LABEL}
            and (sibling.get("relevant") or "").replace(" ", "")
            in (f"selected(../{name},'other')", f"selected(${{{select['name']}}},'other')")
        )
        if generated:
            select["or_other"] = True
            sibling["other_of"] = select["name"]
            sibling["relevant"] = f"selected(${{{select['name']}}}, 'other')"
    if fields and fields[-1].get("fields"):
        mark_or_other(fields[-1]["fields"], lists)


class _Converter:
    """pyxform's survey JSON into our nested definition."""

    def __init__(self, survey: dict, raw: dict) -> None:
        self.language = survey.get("default_language") or "default"
        self.raw_choices = raw.get("choices") or {}
        self.lists: dict[str, list[dict]] = {}
        self.names: dict[str, int] = {}
        self._count_names(survey.get("children") or [])
        self.raw_binds: dict[tuple[str, ...], dict] = {}
        self._index_raw(raw.get("children") or [], ())

    def _index_raw(self, children: list[dict], path: tuple[str, ...]) -> None:
        # pyxform's built survey drops the binds of groups; its sheet JSON keeps them.
        for child in children:
            child_path = (*path, str(child.get("name")))
            if _is_section(child) and child.get("bind"):
                self.raw_binds[child_path] = child["bind"]
            if _is_section(child):
                self._index_raw(child.get("children") or [], child_path)

    def _count_names(self, children: list[dict]) -> None:
        for child in children:
            self.names[child.get("name")] = self.names.get(child.get("name"), 0) + 1
            self._count_names(child.get("children") or [] if _is_section(child) else [])

    def choices(self, list_name: str, items: list[dict]) -> None:
        if list_name in self.lists:
            return
        raw = {str(item.get("name")): item for item in self.raw_choices.get(list_name, [])}
        out = []
        for item in items:
            name = str(item.get("name"))
            choice: dict[str, Any] = {
                "name": name,
                "label": texts(item.get("label"), self.language) or {},
            }
            extra = {
                key: str(value)
                for key, value in raw.get(name, {}).items()
                if key not in ("name", "label", "media") and value is not None
            }
            if extra:
                choice["extra"] = extra
            out.append(choice)
        self.lists[list_name] = out

    def fields(self, children: list[dict], path: tuple[str, ...]) -> list[dict]:
        out: list[dict] = []
        for node in children:
            name = node.get("name")
            if not path and name == META_GROUP and node.get("type") == "group":
                continue  # pyxform's instanceID: a record's own id does this job
            kind = node.get("type")
            if kind not in XLSFORM_TYPES:
                raise XLSFormError(f"question {name!r}: type {kind!r} is not supported")
            field: dict[str, Any] = {"name": name, "type": XLSFORM_TYPES[kind]}
            if self.names.get(name, 0) > 1:
                field["name"] = "/".join((*path, name))
                field["xml_name"] = name
            if kind != field["type"] and kind not in NORMALISED_TYPES:
                field["source_type"] = kind
            for key in ("label", "hint"):
                value = texts(node.get(key), self.language)
                if value:
                    field[key] = value
            media = {
                kind: texts(value, self.language)
                for kind, value in (node.get("media") or {}).items()
            }
            if any(media.values()):
                field["media"] = {kind: value for kind, value in media.items() if value}
            if _is_section(node) and not node.get("bind"):
                node = {**node, "bind": self.raw_binds.get((*path, name), {})}
            _bind(node, field, self.language)
            control = node.get("control") or {}
            if control.get("appearance"):
                field["appearance"] = str(control["appearance"])
            if control.get("jr:count"):
                field["repeat_count"] = str(control["jr:count"])
            if node.get("default") not in (None, ""):
                field["default"] = str(node["default"])
            if node.get("parameters"):
                field["parameters"] = {str(k): str(v) for k, v in node["parameters"].items()}
            if node.get("choice_filter"):
                field["choice_filter"] = str(node["choice_filter"])
            if field["type"] in ("select_one", "select_multiple"):
                list_name = _choice_list_name(node)
                self.choices(list_name, node.get("children") or node.get("choices") or [])
                field["choices"] = list_name
            if field.get("reference"):
                field["type"] = "reference"
                field.pop("source_type", None)
            if _is_section(node):
                field["fields"] = self.fields(node.get("children") or [], (*path, name))
            out.append(field)
        return out


def _choice_list_name(node: dict) -> str:
    """The choices-sheet list of a select question; choices from anywhere else are refused.

    A file's choices (select_one_from_file) and another question's answers
    (select_one ${field}) are not in the definition, so every answer would be unknown.
    """
    name, itemset = node.get("name"), str(node.get("itemset") or "")
    if itemset.startswith("${"):
        source = f"the answers to {itemset}"
    elif itemset.lower().endswith(CHOICE_FILE_SUFFIXES):
        source = f"the file {itemset}"
    else:
        return itemset or node.get("list_name") or name
    raise XLSFormError(
        f"question {name!r}: choices from {source} are not supported;"
        " list them on the choices sheet"
    )


def _is_section(node: dict) -> bool:
    return node.get("type") in ("group", "repeat")


ENCRYPTION_REFUSED = (
    "the form asks for encrypted submissions (public_key in its settings); the server "
    "merges and checks each field's value, so it cannot collect them encrypted: remove "
    "public_key to collect this form"
)


def survey_to_definition(survey: dict, raw: dict, form_id: str) -> dict:
    """Our JSON definition of a pyxform survey (`raw` is pyxform's sheet JSON)."""
    if survey.get("public_key"):
        raise XLSFormError(ENCRYPTION_REFUSED)
    converter = _Converter(survey, raw)
    fields = converter.fields(survey.get("children") or [], ())
    mark_or_other(fields, converter.lists)
    language = converter.language
    settings = {}
    if survey.get("version"):
        settings["xform_version"] = str(survey["version"])
    definition: dict[str, Any] = {
        "form_id": form_id,
        "version": 1,
        "title": {language: str(survey.get("title") or form_id)},
        "fields": fields,
        "choices": converter.lists,
    }
    if survey.get("default_language") and survey["default_language"] != "default":
        definition["default_language"] = survey["default_language"]
    if settings:
        definition["settings"] = settings
    return definition


def convert(data: bytes | dict, file_type: str | None = None) -> Any:
    """pyxform's conversion of an XLSForm (bytes) or its sheet JSON; XLSFormError on failure.

    Bytes go in with an empty file name, so a survey's id_string is the form_id its
    settings give or nothing, never pyxform's fallback `data`.
    """
    from pyxform.errors import PyXFormError
    from pyxform.xls2json_backends import Definition
    from pyxform.xls2xform import convert as pyxform_convert
    from xlrd.biffh import XLRDError
    from xlrd.compdoc import CompDocError

    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and document properties, which a form does not use.
            warnings.simplefilter("ignore", UserWarning)
            return pyxform_convert(
                xlsform=data if isinstance(data, dict) else Definition(io.BytesIO(data), None, ""),
                validate=False,
                pretty_print=True,
                file_type=file_type,
                warnings=[],
            )
    except PyXFormError as error:
        raise XLSFormError(first_problem(str(error))) from None
    except (*UNREADABLE_FILE_ERRORS, XLRDError, CompDocError) as error:
        raise XLSFormError(
            f"not a readable XLSForm ({type(error).__name__}: {one_line(error)})"
        ) from None


def read_xlsform(
    data: bytes, file_type: str, form_id: str | None = None, file_name: str | None = None
) -> dict:
    """The JSON definition of an .xlsx or .xls XLSForm (see `choose_form_id` for its id)."""
    result = convert(data, file_type)
    survey = result._survey.to_json_dict()
    chosen = choose_form_id(form_id, survey.get("id_string"), file_name)
    return survey_to_definition(survey, result._pyxform or {}, chosen)


# --- export -------------------------------------------------------------------------

# XLSForm types pyxform puts no control on screen for, so they need no label.
UNSHOWN = frozenset(
    {
        "calculate",
        "hidden",
        "start",
        "end",
        "today",
        "deviceid",
        "uri:deviceid",
        "subscriberid",
        "simserial",
        "phonenumber",
        "username",
        "email",
        "audit",
        "start-geopoint",
        "background-audio",
        "xml-external",
        "csv-external",
    }
)


def _languages(version: FormVersion) -> list[str]:
    return list(version.languages) or ["default"]


def _text_columns(prefix: str, values: dict[str, str] | None, languages: list[str]) -> dict:
    out = {}
    for language in languages:
        text = (values or {}).get(language)
        if text is not None:
            column = prefix if language == "default" else f"{prefix}::{language}"
            out[column] = text
    return out


def _type_text(field: Any) -> str:
    if field.type == "select_one":
        return f"select_one {field.choice_list}" + (" or_other" if field.or_other else "")
    if field.type == "select_multiple":
        if field.source_type == "rank":
            return f"rank {field.choice_list}"
        return f"select_multiple {field.choice_list}" + (" or_other" if field.or_other else "")
    if field.type == "reference":
        return "text"
    if field.source_type and XLSFORM_TYPES.get(field.source_type) == field.type:
        return field.source_type
    return field.type


def _label(field: Field, languages: list[str]) -> Mapping[str, str]:
    """The field's label; a question shown on screen with no label, hint or media gets its name.

    pyxform refuses such a question, while our definitions allow it.
    """
    shown = field.type not in CONTAINER_TYPES and _type_text(field).split(" ")[0] not in UNSHOWN
    if field.label or field.hint or field.media or not shown:
        return field.label
    return dict.fromkeys(languages, field.name)


def _survey_rows(version: FormVersion, parent: str | None, languages: list[str]) -> Iterable[dict]:
    for field in version.children(parent):
        if field.other_of is not None and version.fields[field.other_of].or_other:
            continue  # pyxform makes this text field again from `or_other`
        row: dict[str, Any] = {"name": field.xml_name}
        if field.type in ("group", "repeat"):
            row["type"] = f"begin_{field.type}"
        else:
            row["type"] = _type_text(field)
        row.update(_text_columns("label", _label(field, languages), languages))
        row.update(_text_columns("hint", field.hint, languages))
        for kind, files in field.media.items():
            row.update(_text_columns(f"media::{kind}", dict(files), [*languages, "default"]))
        row.update(_text_columns("constraint_message", field.constraint_message, languages))
        row.update(_text_columns("required_message", field.required_message, languages))
        simple = {
            "required": field.required,
            "relevant": field.relevant,
            "constraint": field.constraint,
            "calculation": field.calculation,
            "readonly": "true()" if field.readonly else None,
            "default": field.default,
            "appearance": field.appearance,
            "choice_filter": field.choice_filter,
            "repeat_count": field.repeat_count,
            "parameters": " ".join(f"{k}={v}" for k, v in field.parameters.items()) or None,
        }
        row.update({key: value for key, value in simple.items() if value is not None})
        attributes: dict[str, Any] = {
            "fs:min": field.minimum,
            "fs:max": field.maximum,
            "fs:max_length": field.max_length,
            "fs:min_date": field.min_date,
            "fs:max_date": field.max_date,
            "fs:reference": field.reference,
        }
        if field.type not in ("group", "repeat"):
            attributes["fs:type"] = _type_text(field).split(" ")[0]
        for key, value in attributes.items():
            if value is not None:
                row[f"bind::{key}"] = value if not isinstance(value, float) else f"{value:g}"
        for key, value in field.bind.items():
            row[f"bind::{key}"] = value
        yield row
        if field.type in ("group", "repeat"):
            yield from _survey_rows(version, field.name, languages)
            yield {"type": f"end_{field.type}"}


def _choice_rows(version: FormVersion, languages: list[str]) -> list[dict]:
    generated = {field.choice_list for field in version.fields.values() if field.or_other}
    rows = []
    for list_name, choices in version.choice_lists.items():
        for choice in choices:
            if list_name in generated and choice.name == "other":
                continue  # pyxform adds it again for an or_other question
            row = {"list_name": list_name, "name": choice.name}
            row.update(_text_columns("label", dict(choice.label), languages))
            row.update(choice.extra)
            rows.append(row)
    return rows


def _sheet(workbook: Any, title: str, rows: list[dict], first: list[str]) -> None:
    sheet = workbook.create_sheet(title)
    columns = list(first)
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    sheet.append(columns)
    for row in rows:
        sheet.append([row.get(column) for column in columns])


def sheet_rows(version: FormVersion) -> tuple[list[dict], list[dict], list[dict]]:
    """The survey, choices and settings rows of a version's XLSForm."""
    languages = _languages(version)
    survey = list(_survey_rows(version, None, languages))
    choices = _choice_rows(version, languages)
    title_language = version.default_language or languages[0]
    settings = {
        "form_id": version.form_id,
        "form_title": version.title.get(title_language) or next(iter(version.title.values()), ""),
        "version": version.settings.get("xform_version") or str(version.version),
        "namespaces": NAMESPACES_SETTING,
    }
    if version.default_language:
        settings["default_language"] = version.default_language
    return survey, choices, [settings]


def write_xlsform(version: FormVersion) -> bytes:
    """The version as an .xlsx XLSForm (survey, choices and settings sheets)."""
    from openpyxl import Workbook

    survey, choices, settings = sheet_rows(version)
    workbook = Workbook()
    workbook.remove(workbook.active)
    _sheet(workbook, "survey", survey, ["type", "name"])
    _sheet(workbook, "choices", choices, ["list_name", "name"])
    _sheet(workbook, "settings", settings, ["form_id", "form_title", "version"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
