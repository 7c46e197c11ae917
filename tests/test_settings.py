import re
from pathlib import Path

import pytest

from mobile_schema.schemas import schema
from server.settings import PUSH_SCHEMA_MAX_OPS, Settings, SettingsError, describe, from_env

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_need_nothing_in_the_environment():
    settings = from_env({})
    assert settings == Settings()
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("var/fieldsync.db")


def test_values_are_converted_to_their_types():
    settings = from_env(
        {
            "FIELDSYNC_MAX_PUSH_OPS": "100",
            "FIELDSYNC_SESSION_COOKIE_SECURE": "yes",
            "FIELDSYNC_LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.max_push_ops == 100
    assert settings.session_cookie_secure is True
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    ("env", "value", "says"),
    [
        ("FIELDSYNC_MAX_PUSH_OPS", "many", "FIELDSYNC_MAX_PUSH_OPS='many'"),
        ("FIELDSYNC_MAX_PUSH_OPS", "-5", "from 1 to 5000"),
        ("FIELDSYNC_MAX_PUSH_OPS", "0", "from 1 to 5000"),
        ("FIELDSYNC_MAX_PUSH_OPS", "5001", "FIELDSYNC_MAX_PUSH_OPS='5001'"),
        ("FIELDSYNC_LOG_LEVEL", "loud", "must be one of"),
        ("FIELDSYNC_SESSION_COOKIE_SECURE", "perhaps", "true/false"),
        ("FIELDSYNC_BLOB_BACKEND", "ftp", "local, s3"),
        ("FIELDSYNC_DATABASE_URL", "garbage", "FIELDSYNC_DATABASE_URL: not a SQLAlchemy URL"),
        ("FIELDSYNC_DATABASE_URL", "mysql://db/x", "must be one of sqlite, postgresql"),
        ("FIELDSYNC_VAR_DIR", __file__, "is not a folder"),
    ],
)
def test_a_bad_value_fails_with_a_message_naming_it(env, value, says):
    with pytest.raises(SettingsError, match=re.escape(says)):
        from_env({env: value})


def test_good_database_urls_and_folders_are_kept(tmp_path):
    postgres = "postgresql+psycopg://user@host/db"
    assert from_env({"FIELDSYNC_DATABASE_URL": postgres}).database_url == postgres
    assert from_env({"FIELDSYNC_DATABASE_URL": " "}).database_url == ""
    fresh = str(tmp_path / "not yet made")
    assert from_env({"FIELDSYNC_VAR_DIR": fresh}).var_dir == fresh


def test_a_database_url_in_error_is_not_repeated():
    with pytest.raises(SettingsError) as raised:
        from_env({"FIELDSYNC_DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(raised.value)


def test_the_push_limit_is_the_push_schemas():
    ops = schema("push_request")["properties"]["ops"]
    assert ops["maxItems"] == PUSH_SCHEMA_MAX_OPS
    assert from_env({"FIELDSYNC_MAX_PUSH_OPS": "5000"}).max_push_ops == 5000


def test_s3_needs_a_bucket():
    with pytest.raises(SettingsError, match="FIELDSYNC_S3_BUCKET"):
        from_env({"FIELDSYNC_BLOB_BACKEND": "s3"})


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().max_push_ops = 1  # type: ignore[misc]


def test_readme_lists_every_setting_and_no_other():
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(FIELDSYNC_[A-Z0-9_]+)`", section, flags=re.MULTILINE))
    declared = {env for env, _default, _help in describe()}
    assert listed == declared
