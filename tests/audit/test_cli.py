"""`fieldsync audit verify` and `fieldsync audit anchor` through the real command line."""

import datetime as dt

import pytest
from click.testing import CliRunner

from server.cli import cli
from tests.audit.helpers import append_events, event_row, execute


def run(args, database, tmp_path):
    env = {
        "FIELDSYNC_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    return CliRunner().invoke(cli, args, env=env)


def test_verify_prints_ok_with_the_count_and_the_head(database, tmp_path):
    append_events(database, 3)
    result = run(["audit", "verify"], database, tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 3 events and 0 ops")
    assert event_row(database, 3)["hash"] in result.output


def test_verify_reports_the_first_broken_link_with_exit_2(database, tmp_path):
    append_events(database, 4)
    stored = event_row(database, 2)["hash"]
    execute(database, "UPDATE audit_events SET details = '{}' WHERE id = 2")
    execute(database, "UPDATE audit_events SET details = '{}' WHERE id = 3")
    result = run(["audit", "verify"], database, tmp_path)
    assert result.exit_code == 2
    assert "BROKEN at event 2 (hash)" in result.output
    assert f"found {stored}" in result.output


def test_verify_from_a_date_and_a_bad_date(database, tmp_path):
    append_events(database, 2)
    assert run(["audit", "verify", "--from", "2000-01-01"], database, tmp_path).exit_code == 0
    result = run(["audit", "verify", "--from", "yesterday"], database, tmp_path)
    assert result.exit_code == 2
    assert "--from 'yesterday' is not an ISO date" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "verify", "--from", "0001-01-01T00:00+01:00"],
        ["audit", "verify", "--from", "9999-12-31T23:00-05:00"],
        ["audit", "history", "r", "--as-of", "0001-01-01T00:00+05:00"],
    ],
)
def test_a_time_utc_cannot_hold_is_refused_with_exit_2(database, tmp_path, args):
    result = run(args, database, tmp_path)
    assert result.exit_code == 2, result.output
    assert f"{args[-2]} {args[-1]!r}: Not a time between the years 1 and 9999 in UTC" in (
        result.output
    )


def test_times_are_moved_to_utc():
    from server.cli.audit import parse_time

    moment = parse_time("2026-05-01T08:00+05:00", "--from")
    assert (moment, moment.utcoffset()) == (
        dt.datetime(2026, 5, 1, 3, 0, tzinfo=dt.UTC),
        dt.timedelta(0),
    )


def test_anchor_then_verify_with_anchors(database, tmp_path):
    assert "nothing to anchor" in run(["audit", "anchor"], database, tmp_path).output
    append_events(database, 2)
    result = run(["audit", "anchor"], database, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"anchored event 2 {event_row(database, 2)['hash']}" in result.output
    result = run(["audit", "verify", "--anchors"], database, tmp_path)
    assert result.exit_code == 0, result.output
    assert "1 anchors" in result.output
