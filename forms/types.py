"""Field types, the XLSForm type names that map onto them, and the record meta fields."""

from __future__ import annotations

VALUE_TYPES = frozenset(
    {
        "text",
        "integer",
        "decimal",
        "date",
        "datetime",
        "time",
        "select_one",
        "select_multiple",
        "geopoint",
        "geotrace",
        "geoshape",
        "image",
        "audio",
        "video",
        "file",
        "barcode",
        "calculate",
        "acknowledge",
        "reference",
    }
)
CONTAINER_TYPES = frozenset({"group", "repeat"})
FIELD_TYPES = VALUE_TYPES | CONTAINER_TYPES | {"note"}
ATTACHMENT_TYPES = frozenset({"image", "audio", "video", "file"})
SELECT_TYPES = frozenset({"select_one", "select_multiple"})
NUMBER_TYPES = frozenset({"integer", "decimal"})

# Every record carries these, whatever its form (repeat rows are records of their own).
META_FIELDS = frozenset({"_parent", "_group", "_order", "_deleted"})

# XLSForm type names (as pyxform spells them) onto ours; the original is kept in
# `Field.source_type` so an export writes back what was imported.
XLSFORM_TYPES = {
    "text": "text",
    "string": "text",
    "integer": "integer",
    "int": "integer",
    "decimal": "decimal",
    "range": "decimal",
    "date": "date",
    "datetime": "datetime",
    "dateTime": "datetime",
    "time": "time",
    "select one": "select_one",
    "select_one": "select_one",
    "select all that apply": "select_multiple",
    "select_multiple": "select_multiple",
    "select one from file": "select_one",
    "select multiple from file": "select_multiple",
    "rank": "select_multiple",
    "geopoint": "geopoint",
    "gps": "geopoint",
    "geotrace": "geotrace",
    "geoshape": "geoshape",
    "image": "image",
    "photo": "image",
    "audio": "audio",
    "video": "video",
    "file": "file",
    "background-audio": "audio",
    "barcode": "barcode",
    "note": "note",
    "calculate": "calculate",
    "acknowledge": "acknowledge",
    "trigger": "acknowledge",
    "group": "group",
    "repeat": "repeat",
    "start": "datetime",
    "end": "datetime",
    "today": "date",
    "deviceid": "text",
    "uri:deviceid": "text",
    "subscriberid": "text",
    "simserial": "text",
    "phonenumber": "text",
    "username": "text",
    "email": "text",
    "audit": "file",
    "start-geopoint": "geopoint",
    "hidden": "text",
    "xml-external": "note",
    "csv-external": "note",
}

# The XForm bind type of each field type, for export and for reading XForms back.
XFORM_BIND_TYPES = {
    "text": "string",
    "integer": "int",
    "decimal": "decimal",
    "date": "date",
    "datetime": "dateTime",
    "time": "time",
    "select_one": "string",
    "select_multiple": "string",
    "geopoint": "geopoint",
    "geotrace": "geotrace",
    "geoshape": "geoshape",
    "image": "binary",
    "audio": "binary",
    "video": "binary",
    "file": "binary",
    "barcode": "barcode",
    "calculate": "string",
    "acknowledge": "string",
    "reference": "string",
    "note": "string",
}

# How long a text may be unless the field says otherwise (characters).
DEFAULT_MAX_TEXT = 10_000
# Integers travel as JSON numbers: beyond 2^53 JavaScript devices lose digits.
MAX_SAFE_INTEGER = 2**53 - 1
# Most vertices a geotrace or geoshape may have.
MAX_VERTICES = 10_000
