"""Reading form files: what each reader makes of its format, and what it refuses (by name)."""

import json
import re

import pytest

from forms import from_dict
from forms.io import FormFileError, read_definition, write_form
from forms.xlsform import XLSFormError, convert, read_xlsform
from tests.forms.files import HEADER, garbled_sheet, malformed_sheet, xform, xlsx


@pytest.mark.parametrize(
    ("field_type", "column", "value"),
    [
        ("text", "bind::fs:max_length", "abc"),
        ("integer", "bind::fs:min", "ten"),
        ("decimal", "bind::fs:max", "1,5"),
        ("decimal", "bind::fs:min", "nan"),
        ("decimal", "bind::fs:max", "1e400"),
        ("integer", "bind::fs:min", "-inf"),
    ],
)
def test_an_xlsform_fs_attribute_that_is_not_a_finite_number_is_refused(field_type, column, value):
    data = xlsx([[*HEADER, column], [field_type, "a", "A", value]])
    message = f"f.xlsx: question 'a': {column} must be a finite number, not '{value}'"
    with pytest.raises(FormFileError, match=message):
        read_definition(data, "f.xlsx")


def test_an_xlsform_max_length_must_be_whole():
    data = xlsx([[*HEADER, "bind::fs:max_length"], ["text", "a", "A", "1.5"]])
    with pytest.raises(FormFileError, match="bind::fs:max_length must be a whole number"):
        read_definition(data, "f.xlsx")


def test_xlsform_fs_numbers_are_read_as_numbers():
    data = xlsx(
        [
            [*HEADER, "bind::fs:min", "bind::fs:max", "bind::fs:max_length"],
            ["decimal", "a", "A", "-1.5", "10", None],
            ["text", "b", "B", None, None, "20"],
        ]
    )
    fields = read_definition(data, "f.xlsx")[0]["fields"]
    assert (fields[0]["min"], fields[0]["max"], fields[1]["max_length"]) == (-1.5, 10, 20)


@pytest.mark.parametrize(("attribute", "value"), [("fs:max_length", "abc"), ("fs:min", "ten")])
def test_an_xform_fs_attribute_that_is_not_a_number_is_refused(attribute, value):
    data = xform(f'<bind nodeset="/data/a" type="string" {attribute}="{value}"/>')
    with pytest.raises(FormFileError, match=f"question 'a': {attribute} must be a finite number"):
        read_definition(data, "t.xml")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_json_form_with_nan_or_infinity_is_refused(constant):
    text = f'{{"form_id": "f", "fields": [{{"name": "a", "type": "decimal", "min": {constant}}}]}}'
    with pytest.raises(FormFileError, match=f"{constant.lstrip('-')} is not a JSON number"):
        read_definition(text.encode(), "f.json")


def test_a_json_bound_beyond_the_float_range_is_refused():
    text = b'{"form_id": "f", "fields": [{"name": "a", "type": "decimal", "max": 1e400}]}'
    with pytest.raises(FormFileError, match="field 'a': max must be a finite number"):
        read_definition(text, "f.json")


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("choices", ["l"], "choices must be text"),
        ("appearance", ["x"], "appearance must be text"),
        ("xml_name", 5, "xml_name must be text"),
        ("xml_name", "a/b", "xml_name 'a/b' is not an element name"),
        ("source_type", {"k": "v"}, "source_type must be text"),
        ("relevant", 1, "relevant must be text"),
        ("other_of", ["a"], "other_of must be text"),
        ("required", ["yes"], "required must be true, false or a condition"),
        ("readonly", "yes", "readonly must be true or false"),
        ("default", True, "default must be text or a number"),
        ("max_length", True, "max_length must be a positive whole number"),
        ("max_length", 2.5, "max_length must be a positive whole number"),
    ],
)
def test_a_json_field_attribute_of_the_wrong_type_is_refused(attribute, value, message):
    field = {"name": "a", "type": "select_one", "choices": "l", attribute: value}
    definition = {"form_id": "f", "fields": [field], "choices": {"l": [{"name": "x"}]}}
    with pytest.raises(FormFileError, match=f"f.json: field 'a': {re.escape(message)}"):
        read_definition(json.dumps(definition).encode(), "f.json")


def test_a_json_default_language_must_be_text():
    definition = {"form_id": "f", "fields": [], "default_language": ["en"]}
    with pytest.raises(FormFileError, match="default_language must be text"):
        read_definition(json.dumps(definition).encode(), "f.json")


@pytest.mark.parametrize(("fmt", "suffix"), [("xlsform", ".xlsx"), ("xform", ".xml")])
def test_a_question_without_label_is_exported_labelled_with_its_name(fmt, suffix):
    fields = [
        {"name": "a", "type": "text"},
        {"name": "b", "type": "integer", "hint": "how many"},
        {"name": "c", "type": "calculate", "calculation": "${b} + 1"},
        {"name": "d", "type": "note", "media": {"image": "map.png"}},
    ]
    version = from_dict({"form_id": "f", "fields": fields})
    again = read_definition(write_form(version, fmt), "f" + suffix)[0]["fields"]
    labels = {field["name"]: field.get("label") for field in again}
    assert labels == {"a": {"default": "a"}, "b": None, "c": None, "d": None}


@pytest.mark.parametrize("corrupt", [malformed_sheet, garbled_sheet])
def test_a_corrupt_workbook_is_refused_as_unreadable(corrupt):
    data = corrupt(xlsx([HEADER, ["text", "a", "A"]]))
    with pytest.raises(FormFileError, match=r"f.xlsx: not a readable XLSForm \("):
        read_definition(data, "f.xlsx")


def test_an_xlsform_without_form_id_is_named_after_its_file():
    data = xlsx([HEADER, ["text", "a", "A"]], settings=None)
    assert read_definition(data, "household survey (2).xlsx")[0]["form_id"] == "household_survey_2"
    assert read_definition(data, "2024.xlsx")[0]["form_id"] == "form_2024"
    assert read_definition(data, "x.xlsx", form_id="given")[0]["form_id"] == "given"
    named = xlsx([HEADER, ["text", "a", "A"]], settings=[["form_id"], ["data"]])
    assert read_definition(named, "other.xlsx")[0]["form_id"] == "data"


def test_an_xlsform_without_form_id_or_usable_file_name_is_refused():
    data = xlsx([HEADER, ["text", "a", "A"]], settings=None)
    with pytest.raises(FormFileError, match="the form has no form_id: set form_id in its settings"):
        read_definition(data, "问卷.xlsx")
    with pytest.raises(XLSFormError, match="the form has no form_id"):
        read_xlsform(data, ".xlsx")


def test_an_xform_without_id_is_named_after_its_file():
    data = xform('<bind nodeset="/data/a" type="string"/>').replace(b' id="t"', b"")
    assert read_definition(data, "village-check.xml")[0]["form_id"] == "village-check"
    with pytest.raises(FormFileError, match="the form has no form_id"):
        read_definition(data, "__.xml")


@pytest.mark.parametrize(
    ("question_type", "source"),
    [
        ("select_one_from_file villages.csv", "the file villages.csv"),
        ("select_multiple_from_file villages.xml", "the file villages.xml"),
        ("select_one ${pname}", "the answers to ${pname}"),
    ],
)
def test_an_xlsform_select_whose_choices_are_not_listed_is_refused(question_type, source):
    data = xlsx(
        [
            HEADER,
            ["begin_repeat", "people", "People"],
            ["text", "pname", "Name"],
            ["end_repeat", None, None],
            [question_type, "pick", "Pick"],
        ]
    )
    message = f"question 'pick': choices from {source} are not supported"
    with pytest.raises(FormFileError, match=re.escape(message)):
        read_definition(data, "f.xlsx")


def test_an_xform_select_whose_choices_are_in_a_file_is_refused():
    sheet = xlsx([HEADER, ["select_one_from_file villages.csv", "village", "Village"]])
    data = convert(sheet, ".xlsx").xform.encode()
    message = "field 'village': choices from the file jr://file-csv/villages.csv are not supported"
    with pytest.raises(FormFileError, match=re.escape(message)):
        read_definition(data, "f.xml")


@pytest.mark.parametrize(
    ("calculate", "expected"),
    [
        (
            "concat('saved under /data/a here: ', /data/a)",
            "concat('saved under /data/a here: ', ${a})",
        ),
        (
            "concat(\"../a is \", ../a, ' and /data/a')",
            "concat(\"../a is \", ${a}, ' and /data/a')",
        ),
        ("if(/data/a = 'x', 1, 2)", "if(${a} = 'x', 1, 2)"),
    ],
)
def test_xform_paths_become_references_outside_string_literals_only(calculate, expected):
    binds = f"""<bind nodeset="/data/a" type="string"/>
<bind nodeset="/data/c" type="string" calculate="{calculate.replace('"', "&quot;")}"/>"""
    fields = read_definition(xform(binds, fields="<a/><c/>"), "t.xml")[0]["fields"]
    assert fields[1]["calculation"] == expected


def test_a_question_keyed_by_a_path_longer_than_a_field_key_is_refused():
    # The name repeats in two groups, so each question is keyed by its path.
    group = "g" * 70
    survey = [HEADER]
    for n in (1, 2):
        survey += [["begin_group", f"{group}{n}", "G"], ["text", "q" * 60, "Q"], ["end_group"]]
    with pytest.raises(FormFileError, match=r"its key has 132 characters, more than the 128"):
        read_definition(xlsx(survey), "f.xlsx")
    fits = [HEADER, ["begin_group", "g1", "G"], ["text", "q", "Q"], ["end_group"]]
    fits += [["begin_group", "g2", "G"], ["text", "q", "Q"], ["end_group"]]
    assert [f["name"] for f in read_definition(xlsx(fits), "f.xlsx")[0]["fields"][0]["fields"]] == [
        "g1/q"
    ]


def test_a_form_that_asks_for_encrypted_submissions_is_refused_by_name():
    """Stored as plain text, its submissions would not be what the form's author asked."""
    message = r"encrypted submissions \(public_key in its settings\)"
    settings = (("form_id", "public_key"), ("f", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIB"))
    with pytest.raises(FormFileError, match=message):
        read_definition(xlsx([HEADER, ["text", "a", "A"]], settings=settings), "f.xlsx")
    encrypted = xform('<submission base64RsaPublicKey="MIIBIjANBgkqhkiG9w0B"/>')
    with pytest.raises(FormFileError, match=message):
        read_definition(encrypted, "t.xml")
    assert read_definition(xform('<submission method="post"/>'), "t.xml")[0]["fields"]
