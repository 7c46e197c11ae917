from click.testing import CliRunner

from server.cli import cli
from server.grids import create_grid, retire_grid
from server.migrate import head_revisions


def run(args, database, tmp_path, extra_env=None):
    env = {
        "FIELDSYNC_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    env.update(extra_env or {})
    return CliRunner().invoke(cli, args, env=env)


def test_db_upgrade_and_check(database, tmp_path):
    result = run(["db", "upgrade"], database, tmp_path)
    assert result.exit_code == 0, result.output
    assert all(revision in result.output for revision in head_revisions())
    result = run(["db", "check"], database, tmp_path)
    assert result.exit_code == 0, result.output
    assert "matches" in result.output


def test_demo_load_is_done_once_and_prints_logins(database, tmp_path):
    first = run(["demo", "load"], database, tmp_path)
    assert first.exit_code == 0, first.output
    assert "demo data loaded" in first.output
    assert "admin-demo-2026" in first.output
    second = run(["demo", "load"], database, tmp_path)
    assert "already present" in second.output


def test_a_bad_setting_is_one_line_and_exit_2(database, tmp_path):
    result = run(["db", "check"], database, tmp_path, {"FIELDSYNC_MAX_PUSH_OPS": "lots"})
    assert result.exit_code == 2
    assert "FIELDSYNC_MAX_PUSH_OPS" in result.output
    assert "Traceback" not in result.output


def test_users_add_refuses_what_the_database_cannot_store(database, tmp_path):
    password = ["--role", "worker", "--password", "long enough pw"]
    cases = [
        (["u" * 101], "at most 100 characters"),
        (["bob", "--name", "n" * 201], "at most 200 characters"),
        (["bad\udcff"], "not valid UTF-8"),
        (["bob", "--grid", "S\x00"], "not valid UTF-8"),
    ]
    for args, message in cases:
        result = run(["users", "add", *args, *password], database, tmp_path)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert run(["users", "list"], database, tmp_path).output == ""


def test_ids_past_an_integer_column_are_refused_by_the_cli(database, tmp_path):
    too_big = str(2**31)
    for args in (
        ["forms", "export", "household", "--version", too_big],
        ["forms", "publish", "household", too_big],
        ["forms", "retire", "household", too_big],
        ["forms", "diff", "household", "1", too_big],
    ):
        result = run(args, database, tmp_path)
        assert result.exit_code == 2, (args, result.output)
        assert "1<=x<=2147483647" in result.output


def test_forms_export_to_a_folder_that_does_not_exist_is_one_line(database, tmp_path):
    assert run(["demo", "load"], database, tmp_path).exit_code == 0
    target = tmp_path / "missing" / "household.json"
    result = run(["forms", "export", "household", "--output", str(target)], database, tmp_path)
    assert result.exit_code == 2, result.output
    assert f"error: cannot write {target}: No such file or directory" in result.output


def test_users_add_refuses_a_retired_grid(database, tmp_path):
    with database.session() as session:
        street = create_grid(session, "OLD", "Old street", "street")
        retire_grid(session, street)
        session.commit()
    args = ["users", "add", "bob", "--role", "worker", "--password", "long enough pw"]
    result = run([*args, "--grid", "OLD"], database, tmp_path)
    assert result.exit_code == 2, result.output
    assert "error: retired grids take no new assignments: OLD" in result.output
    assert run(["users", "list"], database, tmp_path).output == ""
