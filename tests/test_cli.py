from click.testing import CliRunner

from server.cli import cli
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
