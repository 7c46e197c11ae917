"""Reading form files: what each reader makes of its format, and what it refuses (by name)."""

import io

import pytest

from forms.io import FormFileError, read_definition

HEADER = ["type", "name", "label"]


def xlsx(survey, choices=None, settings=(("form_id",), ("f",))):
    """An .xlsx XLSForm of the given sheet rows (a settings sheet naming form `f` by default)."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in (("survey", survey), ("choices", choices), ("settings", settings)):
        if rows is not None:
            sheet = workbook.create_sheet(title)
            for row in rows:
                sheet.append(list(row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def xform(binds, fields="<a/>"):
    """An XForm with the given primary instance fields and bind elements."""
    return f"""<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
        xmlns:fs="http://fieldsync.dev/xforms">
<h:head><h:title>t</h:title><model>
<instance><data id="t">{fields}</data></instance>
{binds}
</model></h:head>
<h:body><input ref="/data/a"><label>A</label></input></h:body></h:html>""".encode()


@pytest.mark.parametrize(
    ("field_type", "column", "value", "message"),
    [
        ("text", "bind::fs:max_length", "abc", "bind::fs:max_length must be a number, not 'abc'"),
        ("text", "bind::fs:max_length", "1.5", "bind::fs:max_length must be a whole number"),
        ("integer", "bind::fs:min", "ten", "bind::fs:min must be a number, not 'ten'"),
        ("decimal", "bind::fs:max", "1,5", "bind::fs:max must be a number, not '1,5'"),
    ],
)
def test_an_xlsform_fs_attribute_that_is_not_a_number_is_refused(
    field_type, column, value, message
):
    data = xlsx([[*HEADER, column], [field_type, "a", "A", value]])
    with pytest.raises(FormFileError, match=f"f.xlsx: question 'a': {message}"):
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
    with pytest.raises(FormFileError, match=f"question 'a': {attribute} must be a number"):
        read_definition(data, "t.xml")
