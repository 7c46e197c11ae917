"""Reading a form file of any supported format, and writing a version in each format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

from forms.definition import from_dict, to_dict
from forms.model import DefinitionError, FormVersion
from forms.unicode import unstorable_path
from forms.xform import read_xform, write_xform
from forms.xlsform import XLSFormError, one_line, read_xlsform, write_xlsform

FORMATS = ("xlsform", "xform", "json")
SUFFIXES = {"xlsform": ".xlsx", "xform": ".xml", "json": ".json"}
MAX_FILE_BYTES = 20 * 1024 * 1024


class FormFileError(ValueError):
    """A file that does not hold a usable form; the message is one line naming why."""


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _read_json(data: bytes) -> dict:
    try:
        parsed = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise FormFileError(f"not a JSON form definition ({one_line(error)})") from None
    if not isinstance(parsed, dict):
        raise FormFileError("not a JSON form definition (the document is not an object)")
    where = unstorable_path(parsed)
    if where is not None:
        raise FormFileError(f"not a JSON form definition (NUL or a lone surrogate at {where})")
    return parsed


def read_definition(data: bytes, name: str, form_id: str | None = None) -> tuple[dict, str]:
    """The checked JSON definition of a file's content and the format it was in."""
    suffix = Path(name).suffix.lower()
    if len(data) > MAX_FILE_BYTES:
        raise FormFileError(f"{name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        if suffix in (".xlsx", ".xls"):
            definition, source = read_xlsform(data, suffix, form_id, name), "xlsform"
        elif suffix == ".xml":
            definition, source = read_xform(data, form_id, name), "xform"
        elif suffix == ".json":
            definition, source = _read_json(data), "json"
            if form_id:
                definition["form_id"] = form_id
        else:
            raise FormFileError(f"{name}: unsupported file type (use .xlsx, .xls, .xml or .json)")
        from_dict(definition)
    except (XLSFormError, DefinitionError) as error:
        raise FormFileError(f"{name}: {one_line(error)}") from None
    except RecursionError:
        raise FormFileError(f"{name}: nested too deeply") from None
    return definition, source


def read_form(path: Path, form_id: str | None = None) -> tuple[dict, str]:
    """The checked JSON definition of a form file and its format."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise FormFileError(f"{path.name}: cannot read ({error.strerror or error})") from None
    return read_definition(data, path.name, form_id)


def write_form(version: FormVersion, fmt: str) -> bytes:
    """The version in `fmt` (xlsform: .xlsx bytes; xform: XML; json: the definition)."""
    if fmt == "xlsform":
        return write_xlsform(version)
    if fmt == "xform":
        return write_xform(version).encode("utf-8")
    if fmt == "json":
        text = json.dumps(to_dict(version), ensure_ascii=False, indent=1, allow_nan=False)
        return (text + "\n").encode("utf-8")
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
