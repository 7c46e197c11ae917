"""The `fieldsync forms` commands against a real store (SQLite and PostgreSQL)."""

import json

import pytest
from click.testing import CliRunner

from server.cli import cli
from tests.conftest import REALFORMS


def run(args, database, tmp_path):
    env = {
        "FIELDSYNC_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    return CliRunner().invoke(cli, args, env=env)


def test_import_publish_export_list_retire(database, tmp_path):
    from forms.builtin import source_path

    result = run(
        ["forms", "import", str(source_path("hazard_check")), "--publish"], database, tmp_path
    )
    assert result.exit_code == 0, result.output
    assert "hazard_check v1 published" in result.output
    again = run(["forms", "import", str(source_path("hazard_check"))], database, tmp_path)
    assert "hazard_check v2 draft" in again.output
    listed = run(["forms", "list"], database, tmp_path)
    assert "v1    published" in listed.output
    assert "v2    draft" in listed.output
    out = tmp_path / "hazard.xlsx"
    exported = run(
        ["forms", "export", "hazard_check", "--format", "xlsform", "-o", str(out)],
        database,
        tmp_path,
    )
    assert exported.exit_code == 0, exported.output
    reimported = run(["forms", "import", str(out), "--form-id", "hazard_copy"], database, tmp_path)
    assert "hazard_copy v1 draft" in reimported.output, reimported.output
    as_json = run(
        ["forms", "export", "hazard_check", "--version", "1", "--format", "json"],
        database,
        tmp_path,
    )
    assert json.loads(as_json.output)["form_id"] == "hazard_check"
    retired = run(["forms", "retire", "hazard_check", "1"], database, tmp_path)
    assert "retired hazard_check v1" in retired.output
    twice = run(["forms", "retire", "hazard_check", "1"], database, tmp_path)
    assert twice.exit_code == 2
    assert "not published" in twice.output


@pytest.mark.parametrize(
    ("content", "name", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n not a sheet", "photo.xlsx", "not recognized as a supported type"),
        (b"<html><body/></html>", "page.xml", "not an XForm"),
        (b"<h:html", "broken.xml", "not well-formed XML"),
        (
            b'{"form_id": "x", "fields": [{"name": "a", "type": "text", "relevant": "nope(1)"}]}',
            "x.json",
            "unknown function nope()",
        ),
        (b"hello", "notes.txt", "unsupported file type"),
    ],
)
def test_bad_files_fail_on_one_line_and_store_nothing(database, tmp_path, content, name, problem):
    path = tmp_path / name
    path.write_bytes(content)
    result = run(["forms", "import", str(path)], database, tmp_path)
    assert result.exit_code == 2
    assert problem in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert "no forms" in run(["forms", "list"], database, tmp_path).output


def test_the_form_pyxform_rejects_fails_clearly(database, tmp_path):
    path = (
        REALFORMS
        / "forms/validmeasures__liberiaS3Mforms/round1/xlsform/liberiaCoverageVillageForm.xlsx"
    )
    if not path.exists():
        pytest.skip("realforms are absent")
    result = run(["forms", "import", str(path)], database, tmp_path)
    assert result.exit_code == 2
    assert "Choice names must be unique" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "no forms" in run(["forms", "list"], database, tmp_path).output
