"""Form files for the tests: XLSForms and XForms built from rows, and broken workbooks."""

import io
import zipfile

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


def malformed_sheet(workbook):
    """The workbook with its first sheet's XML replaced by text that is not XML."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            body = b"<notxml" if name.endswith("sheet1.xml") else source.read(name)
            target.writestr(name, body)
    return out.getvalue()


def garbled_sheet(workbook):
    """The workbook with its first sheet's compressed bytes overwritten (invalid deflate)."""
    info = zipfile.ZipFile(io.BytesIO(workbook)).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return workbook[:start] + b"\xff" * info.compress_size + workbook[start + info.compress_size :]
