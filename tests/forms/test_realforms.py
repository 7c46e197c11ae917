"""Every real form pyxform accepts imports and round-trips through XLSForm and XForm."""

import pytest

from forms import builtin, from_dict
from forms.expr import parse, to_text
from forms.io import FormFileError, read_definition, read_form, write_form
from tests.conftest import REALFORMS

FOLDER = REALFORMS / "forms"
FILES = sorted(p for p in FOLDER.rglob("*") if p.suffix in (".xls", ".xlsx", ".xml"))
REJECTED = {
    "liberiaCoverageVillageForm.xlsx": "Choice names must be unique",
    "WaterSimple.xml": "constraint '(. > 0 and . < )'",
    # encrypted submissions: the server cannot merge or check what it cannot read
    "xlsform_spec_test.xlsx": "encrypted submissions (public_key in its settings)",
}


def canon(text):
    return None if text is None else to_text(parse(text))


def shape(version, labels=True):
    fields = {
        f.name: (
            f.type,
            f.choices,
            f.repeat,
            f.parent,
            f.readonly,
            f.or_other,
            dict(f.bind),
            canon(f.relevant),
            canon(f.required),
            canon(f.constraint),
            canon(f.calculation),
            canon(f.choice_filter),
            tuple(sorted(f.label)) if labels else None,
        )
        for f in version.fields.values()
    }
    return fields, set(version.languages)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_form_imports_and_round_trips(path):
    if path.name in REJECTED:
        with pytest.raises(
            FormFileError,
            match=REJECTED[path.name].replace("(", r"\(").replace(")", r"\)").replace(".", r"\."),
        ):
            read_form(path)
        return
    version = from_dict(read_form(path)[0])
    for fmt, suffix in (("xlsform", ".xlsx"), ("xform", ".xml")):
        again = from_dict(
            read_definition(write_form(version, fmt), "x" + suffix, version.form_id)[0]
        )
        # XForms carry no labels for calculations, so labels are compared through XLSForm only.
        assert shape(again, fmt == "xlsform") == shape(version, fmt == "xlsform")


def test_realforms_are_there():
    if not FOLDER.exists():
        pytest.skip("realforms are absent")
    assert len(FILES) >= 10


@pytest.mark.parametrize("name", builtin.NAMES)
def test_builtin_forms_round_trip(name):
    version = builtin.load(name)
    assert {"zh", "en"} <= set(version.languages)
    for fmt, suffix in (("xlsform", ".xlsx"), ("xform", ".xml"), ("json", ".json")):
        again = from_dict(read_definition(write_form(version, fmt), "x" + suffix, name)[0])
        assert shape(again, fmt != "xform") == shape(version, fmt != "xform")
