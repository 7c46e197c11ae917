"""The grid tree through the API and the CLI: create, rename, move, retire, CSV import."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from server.cli import cli
from server.grids import add_grid, move_grid
from server.models import Grid
from tests.api.problems import assert_problem

GOOD_CSV = """code,name,level,parent_code
N-H1,New grid 1,household_grid,N-R
N,New street,street,
N-C,New community,community,N
N-R,New compound,compound,N-C
N-E,A factory,enterprise,N-C
"""


def grid_count(database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Grid))


def import_csv(client, world, text: str):
    """POST a grid CSV as the admin."""
    return client.post(
        "/api/v1/grids/import",
        data=text.encode(),
        content_type="text/csv",
        headers=world.headers("admin"),
    )


def test_create_rename_move_retire(client, world, database):
    admin = world.headers("admin")
    c1, c2 = world.grids["S-C1"], world.grids["S-C2"]
    made = client.post(
        "/api/v1/grids",
        json={"code": "S-C1-R9", "name": "Compound 9", "level": "compound", "parent_id": c1},
        headers=admin,
    )
    assert made.status_code == 201, made.get_json()
    compound = made.get_json()
    assert compound["path"] == f"/{world.grids['S']}/{c1}/{compound['id']}/"
    body = {"code": "S-C1-R9-G1", "name": "G", "level": "household_grid"}
    child = client.post(
        "/api/v1/grids", json={**body, "parent_id": compound["id"]}, headers=admin
    ).get_json()
    renamed = client.patch(f"/api/v1/grids/{compound['id']}", json={"name": "Nine"}, headers=admin)
    assert renamed.get_json()["name"] == "Nine"
    moved = client.patch(f"/api/v1/grids/{compound['id']}", json={"parent_id": c2}, headers=admin)
    assert moved.get_json()["path"] == f"/{world.grids['S']}/{c2}/{compound['id']}/"
    child_now = client.get(f"/api/v1/grids/{child['id']}", headers=admin).get_json()
    assert child_now["path"] == f"/{world.grids['S']}/{c2}/{compound['id']}/{child['id']}/"
    retired = client.post(f"/api/v1/grids/{compound['id']}/retire", headers=admin).get_json()
    assert retired["retired"] == 2
    listed = client.get(f"/api/v1/grids?under={c2}", headers=admin).get_json()["items"]
    assert compound["id"] not in [grid["id"] for grid in listed]
    everything = client.get(f"/api/v1/grids?under={c2}&include_retired=true", headers=admin)
    assert compound["id"] in [grid["id"] for grid in everything.get_json()["items"]]


def test_tree_rules_are_enforced(client, world):
    admin = world.headers("admin")
    c1 = world.grids["S-C1"]
    wrong_level = client.post(
        "/api/v1/grids",
        json={"code": "X", "name": "X", "level": "street", "parent_id": c1},
        headers=admin,
    )
    assert_problem(wrong_level, 422, "validation_failed")
    under_itself = client.patch(
        f"/api/v1/grids/{c1}", json={"parent_id": world.grids["S-C1-R1"]}, headers=admin
    )
    assert_problem(under_itself, 422, "validation_failed")
    taken = client.post(
        "/api/v1/grids",
        json={"code": "S-C1", "name": "again", "level": "community", "parent_id": world.grids["S"]},
        headers=admin,
    )
    assert_problem(taken, 409, "conflict")


def test_grid_reads_follow_scope(client, world):
    worker = world.headers("worker")
    listed = client.get("/api/v1/grids", headers=worker).get_json()["items"]
    assert [grid["code"] for grid in listed] == ["S-C1-R1-G1"]
    supervisor = client.get("/api/v1/grids", headers=world.headers("supervisor")).get_json()
    assert {grid["code"] for grid in supervisor["items"]} == {
        "S-C1",
        "S-C1-R1",
        "S-C1-R1-G1",
        "S-C1-R1-G2",
    }
    outside = world.grids["S-C2-R1-G1"]
    assert_problem(client.get(f"/api/v1/grids/{outside}", headers=worker), 404, "not_found")
    assert_problem(client.get(f"/api/v1/grids?under={outside}", headers=worker), 404, "not_found")


def test_csv_import_through_the_api(client, world, database):
    admin = world.headers("admin")
    reply = client.post(
        "/api/v1/grids/import", data=GOOD_CSV.encode(), content_type="text/csv", headers=admin
    )
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["imported"] == 5
    with database.session() as session:
        household = session.scalar(select(Grid).where(Grid.code == "N-H1"))
        compound = session.scalar(select(Grid).where(Grid.code == "N-R"))
        assert household.parent_id == compound.id
        assert household.path == f"{compound.path}{household.id}/"
    assert_problem(
        client.post("/api/v1/grids/import", json={"csv": GOOD_CSV}, headers=admin),
        415,
        "unsupported_media_type",
    )


def test_a_bad_csv_imports_nothing_and_names_every_bad_row(client, world, database):
    before = grid_count(database)
    bad = (
        "code,name,level,parent_code\n"
        "B,Street B,street,\n"  # line 2: fine
        "B-C,Community,community,NOPE\n"  # line 3: unknown parent
        "B-X,Thing,castle,B\n"  # line 4: unknown level
        "S-C1,Dup,community,B\n"  # line 5: exists already
        "B-R,Compound,compound,B\n"  # line 6: compound under a street
        "L1,Loop,community,L2\n"  # line 7: cycle
        "L2,Loop,community,L1\n"  # line 8: cycle
        ",no code,street,\n"  # line 9: missing code
    )
    reply = import_csv(client, world, bad)
    problem = assert_problem(reply, 422, "validation_failed")
    lines = [error["path"] for error in problem["errors"]]
    assert lines == [f"/line/{n}" for n in (3, 4, 5, 6, 7, 8, 9)]
    assert grid_count(database) == before


def test_a_csv_row_that_cannot_be_stored_is_named(client, world, database):
    before = grid_count(database)
    bad = (
        "code,name,level,parent_code\n"
        f"{'X' * 65},Street,street,\n"  # line 2: code over 64 characters
        f"Y,{'n' * 201},street,\n"  # line 3: name over 200 characters
        "Z,a\x00b,street,\n"  # line 4: NUL
        "W,Street W,street,S\x00\n"  # line 5: NUL in the parent's code
        f"{'V' * 64},{'n' * 200},street,\n"  # line 6: at the limits, fine
    )
    reply = import_csv(client, world, bad)
    problem = assert_problem(reply, 422, "validation_failed")
    messages = {error["path"]: error["message"] for error in problem["errors"]}
    assert sorted(messages) == [f"/line/{n}" for n in (2, 3, 4, 5)]
    assert "at most 64" in messages["/line/2"]
    assert "at most 200" in messages["/line/3"]
    assert "NUL" in messages["/line/4"]
    assert grid_count(database) == before


def run_cli(args, database, tmp_path):
    env = {
        "FIELDSYNC_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
    }
    return CliRunner().invoke(cli, args, env=env)


def test_cli_grids_import(database, tmp_path):
    good = tmp_path / "grids.csv"
    good.write_text(GOOD_CSV, encoding="utf-8")
    result = run_cli(["grids", "import", str(good)], database, tmp_path)
    assert result.exit_code == 0, result.output
    assert "imported 5 grids" in result.output
    again = run_cli(["grids", "import", str(good)], database, tmp_path)
    assert again.exit_code == 2
    assert "grids.csv:2:" in again.output
    assert "nothing was imported" in again.output
    assert grid_count(database) == 5
    missing = run_cli(["grids", "import", str(tmp_path / "none.csv")], database, tmp_path)
    assert missing.exit_code == 2
    assert "Traceback" not in missing.output


def test_cli_users(database, tmp_path):
    made = run_cli(
        ["users", "add", "ann", "--role", "admin", "--password", "long enough pw"],
        database,
        tmp_path,
    )
    assert made.exit_code == 0, made.output
    short = run_cli(
        ["users", "add", "bob", "--role", "worker", "--password", "short"], database, tmp_path
    )
    assert short.exit_code == 2
    assert "at least" in short.output
    unknown_grid = run_cli(
        ["users", "add", "bob", "--role", "worker", "--password", "long enough pw", "--grid", "Q"],
        database,
        tmp_path,
    )
    assert unknown_grid.exit_code == 2
    listed = run_cli(["users", "list"], database, tmp_path)
    assert "ann\tadmin\tactive" in listed.output
    assert "bob" not in listed.output
    disabled = run_cli(["users", "disable", "ann"], database, tmp_path)
    assert disabled.exit_code == 0
    assert "ann\tadmin\tdisabled" in run_cli(["users", "list"], database, tmp_path).output
    reset = run_cli(
        ["users", "reset-password", "ann", "--password", "another long one"], database, tmp_path
    )
    assert reset.exit_code == 0
    nobody = run_cli(["users", "disable", "nobody"], database, tmp_path)
    assert nobody.exit_code == 2
    assert "no user named" in nobody.output


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_a_grid_added_under_a_parent_that_moves_meanwhile_gets_the_parents_new_path(world):
    """The adding transaction read its parent before the move committed: its path must
    still come from where the parent is now, or the grid would sit in another
    community's scope. (On SQLite the move would wait for the whole adding transaction.)"""
    database = world.database
    compound_id, elsewhere_id = world.grids["S-C1-R1"], world.grids["S-C2"]
    with database.sessions() as adding:
        parent = adding.get(Grid, compound_id)
        assert parent.path.startswith(adding.get(Grid, world.grids["S-C1"]).path)
        with database.session() as moving:
            move_grid(moving, moving.get(Grid, compound_id), moving.get(Grid, elsewhere_id))
        added = add_grid(adding, "S-C1-R1-G9", "Grid 9", "household_grid", parent)
        adding.commit()
        added_path = added.path
    with database.session() as session:
        moved_path = session.get(Grid, compound_id).path
    assert moved_path.startswith(f"/{world.grids['S']}/{elsewhere_id}/")
    assert added_path == f"{moved_path}{added.id}/"
