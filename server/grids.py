"""The grid tree: materialised paths, create, rename, move, retire, and CSV import.

A grid's `path` is the ids from the root down ("/1/4/9/"), so a subtree is one
prefix match. Which level may sit under which is `ALLOWED_PARENTS`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from forms.unicode import UNSTORABLE
from server.audit.events import Action, record_event
from server.errors import ApiError, ErrorCode
from server.models import Grid, GridLevel, utcnow

L = GridLevel
# None stands for "top of the tree".
ALLOWED_PARENTS: dict[str, set[str | None]] = {
    L.STREET: {None},
    L.COMMUNITY: {L.STREET},
    L.COMPOUND: {L.COMMUNITY},
    L.HOUSEHOLD_GRID: {L.COMPOUND, L.COMMUNITY},
    L.ENTERPRISE: {L.STREET, L.COMMUNITY, L.COMPOUND},
    L.INSTITUTION: {L.STREET, L.COMMUNITY, L.COMPOUND},
}
LEVELS = tuple(str(level) for level in GridLevel)
CSV_COLUMNS = ("code", "name", "level", "parent_code")
MAX_PATH = 1000
# The lengths of the code and name columns: POST /grids and the CSV import both refuse
# longer text, which PostgreSQL would refuse as a 500 and SQLite would keep.
MAX_CODE = 64
MAX_NAME = 200


def create_grid(
    session: Session, code: str, name: str, level: GridLevel | str, parent: Grid | None = None
) -> Grid:
    """Add a grid under `parent` and give it its path (no checks: demo data and tests)."""
    grid = Grid(code=code, name=name, level=str(level), parent=parent, path="")
    session.add(grid)
    session.flush()
    grid.path = f"{parent.path if parent else '/'}{grid.id}/"
    session.flush()
    return grid


def placement_problem(level: str, parent: Grid | None) -> str | None:
    """Why a grid of `level` may not sit under `parent`, or None."""
    if level not in ALLOWED_PARENTS:
        return f"level must be one of {', '.join(LEVELS)}"
    if parent is not None and parent.retired_at is not None:
        return f"the parent grid {parent.code!r} is retired"
    parent_level = parent.level if parent is not None else None
    if parent_level not in ALLOWED_PARENTS[level]:
        where = f"under a {parent_level}" if parent_level else "at the top of the tree"
        return f"a {level} cannot sit {where}"
    return None


def _fail(message: str, path: str = "") -> ApiError:
    errors = [{"path": path, "message": message}] if path else []
    return ApiError(ErrorCode.VALIDATION_FAILED, message, errors=errors)


# Any 64-bit number no other lock of the database uses: b"gridtree".
TREE_LOCK = int.from_bytes(b"gridtree", "big") - 2**63


def lock_tree(session: Session, *grids: Grid | None) -> None:
    """Take the tree for this transaction, then read these grids again.

    Paths are derived from other grids' paths, so changes to the tree must not
    interleave: two opposite moves would each see the other's old path and make a
    cycle, and a grid added under a parent that moves meanwhile would get a path
    outside it. On PostgreSQL a transaction-level advisory lock orders them; on SQLite
    every write transaction holds the database from its BEGIN IMMEDIATE already. The
    grids given were read before the lock, so their paths may have changed since.
    """
    if session.connection().dialect.name != "postgresql":
        return
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TREE_LOCK})
    for grid in grids:
        if grid is not None:
            session.refresh(grid)


def add_grid(
    session: Session, code: str, name: str, level: str, parent: Grid | None = None
) -> Grid:
    """A new grid after checking its code, name and place in the tree."""
    lock_tree(session, parent)
    code, name = code.strip(), name.strip()
    if not code or not name:
        raise _fail("code and name are required")
    problem = placement_problem(level, parent)
    if problem:
        raise _fail(problem, "/level" if level not in ALLOWED_PARENTS else "/parent_id")
    if session.scalar(select(Grid.id).where(Grid.code == code)) is not None:
        raise ApiError(ErrorCode.CONFLICT, f"a grid with code {code!r} exists")
    grid = create_grid(session, code, name, level, parent)
    details = {"code": code, "name": name, "level": level, "parent_id": grid.parent_id}
    record_event(session, Action.GRID_CREATED, "grid", grid.id, details, grid_ids=[grid.id])
    return grid


def rename_grid(session: Session, grid: Grid, name: str) -> Grid:
    """Give the grid a new display name."""
    if not name.strip():
        raise _fail("a name is required", "/name")
    details = {"name": {"old": grid.name, "new": name.strip()}}
    grid.name = name.strip()
    session.flush()
    record_event(session, Action.GRID_CHANGED, "grid", grid.id, details, grid_ids=[grid.id])
    return grid


def move_grid(session: Session, grid: Grid, new_parent: Grid | None) -> Grid:
    """Hang the grid (with its whole subtree) under `new_parent`, in one UPDATE."""
    lock_tree(session, grid, new_parent)
    if new_parent is not None and new_parent.path.startswith(grid.path):
        raise _fail("a grid cannot move under itself or its own sub-grids", "/parent_id")
    problem = placement_problem(grid.level, new_parent)
    if problem:
        raise _fail(problem, "/parent_id")
    old_path, old_parent = grid.path, grid.parent_id
    new_path = f"{new_parent.path if new_parent else '/'}{grid.id}/"
    deepest = session.scalar(
        select(func.max(func.length(Grid.path))).where(Grid.path.startswith(old_path))
    )
    if (deepest or 0) - len(old_path) + len(new_path) > MAX_PATH:
        raise _fail("the tree would become too deep", "/parent_id")
    grid.parent_id = new_parent.id if new_parent else None
    session.flush()
    session.execute(
        update(Grid)
        .where(Grid.path.startswith(old_path))
        .values(path=new_path + func.substr(Grid.path, len(old_path) + 1)),
        execution_options={"synchronize_session": False},
    )
    session.expire_all()
    moved = session.get(Grid, grid.id)
    details = {
        "parent_id": {"old": old_parent, "new": moved.parent_id},
        "path": {"old": old_path, "new": new_path},
    }
    record_event(session, Action.GRID_CHANGED, "grid", moved.id, details, grid_ids=[moved.id])
    return moved


def retire_grid(session: Session, grid: Grid) -> int:
    """Retire the grid and its sub-grids (records stay); the number of grids retired."""
    lock_tree(session, grid)
    grid_id, path = grid.id, grid.path
    result = session.execute(
        update(Grid)
        .where(Grid.path.startswith(path), Grid.retired_at.is_(None))
        .values(retired_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    session.expire_all()
    details = {"retired": result.rowcount, "path": path}
    record_event(session, Action.GRID_CHANGED, "grid", grid_id, details, grid_ids=[grid_id])
    return result.rowcount


@dataclass(frozen=True)
class GridRow:
    line: int
    code: str
    name: str
    level: str
    parent_code: str


def _row_problem(cells: dict[str, str]) -> str | None:
    """Why a CSV row's cells cannot be stored as a grid, or None."""
    if any(UNSTORABLE.search(cell) for cell in cells.values()):
        return "a cell holds NUL or a lone UTF-16 surrogate, which is not text"
    if not cells["code"] or not cells["name"] or not cells["level"]:
        return "code, name and level are needed"
    if len(cells["code"]) > MAX_CODE:
        return f"a code holds at most {MAX_CODE} characters"
    if len(cells["name"]) > MAX_NAME:
        return f"a name holds at most {MAX_NAME} characters"
    return None


def parse_grid_csv(text: str) -> tuple[list[GridRow], list[dict[str, str]]]:
    """The rows of a grid CSV (code, name, level, parent_code) and the problems found."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in CSV_COLUMNS if name not in header]
    if missing:
        return [], [{"path": "/line/1", "message": f"the header lacks {', '.join(missing)}"}]
    rows, errors = [], []
    for record in reader:
        line = reader.line_num
        values = {key.strip(): (value or "").strip() for key, value in record.items() if key}
        if None in record:
            errors.append({"path": f"/line/{line}", "message": "more cells than the header"})
            continue
        cells = {name: values.get(name, "") for name in CSV_COLUMNS}
        problem = _row_problem(cells)
        if problem:
            errors.append({"path": f"/line/{line}", "message": problem})
            continue
        rows.append(GridRow(line, **cells))
    if not rows and not errors:
        errors.append({"path": "/line/2", "message": "the file holds no grids"})
    return rows, errors


def _order_rows(
    rows: list[GridRow], existing: dict[str, Grid], errors: list[dict[str, str]]
) -> list[list[GridRow]]:
    """The rows in waves: each wave's parents exist already or were in an earlier wave."""
    by_code: dict[str, GridRow] = {}
    for row in rows:
        if row.code in by_code:
            errors.append({"path": f"/line/{row.line}", "message": f"code {row.code!r} repeats"})
        elif row.code in existing:
            errors.append(
                {"path": f"/line/{row.line}", "message": f"a grid {row.code!r} exists already"}
            )
        else:
            by_code[row.code] = row
    placed: set[str] = set()
    waves: list[list[GridRow]] = []
    pending = list(by_code.values())
    while pending:
        wave = [
            row
            for row in pending
            if not row.parent_code or row.parent_code in existing or row.parent_code in placed
        ]
        if not wave:
            break
        waves.append(wave)
        placed.update(row.code for row in wave)
        pending = [row for row in pending if row.code not in placed]
    for row in pending:
        known = row.parent_code in by_code
        reason = "is part of a cycle" if known else "does not exist"
        errors.append(
            {"path": f"/line/{row.line}", "message": f"parent {row.parent_code!r} {reason}"}
        )
    return waves


def _check_levels(waves, existing: dict[str, Grid], errors: list[dict[str, str]]) -> None:
    level_of = {code: grid.level for code, grid in existing.items()}
    retired = {code for code, grid in existing.items() if grid.retired_at is not None}
    for wave in waves:
        for row in wave:
            level_of[row.code] = row.level
    for wave in waves:
        for row in wave:
            if row.level not in ALLOWED_PARENTS:
                message = f"level must be one of {', '.join(LEVELS)}"
            elif row.parent_code in retired:
                message = f"the parent grid {row.parent_code!r} is retired"
            elif (level_of.get(row.parent_code) if row.parent_code else None) not in (
                ALLOWED_PARENTS[row.level]
            ):
                parent_level = level_of.get(row.parent_code)
                where = f"under a {parent_level}" if parent_level else "at the top of the tree"
                message = f"a {row.level} cannot sit {where}"
            else:
                continue
            errors.append({"path": f"/line/{row.line}", "message": message})


def import_grids(session: Session, text: str) -> list[Grid]:
    """Create every grid of a CSV, or none: any bad row raises with one error per row."""
    rows, errors = parse_grid_csv(text)
    codes = {row.code for row in rows} | {row.parent_code for row in rows if row.parent_code}
    lock_tree(session)
    fresh = select(Grid).where(Grid.code.in_(codes)).execution_options(populate_existing=True)
    existing = {grid.code: grid for grid in session.scalars(fresh)}
    waves = _order_rows(rows, existing, errors)
    _check_levels(waves, existing, errors)
    if errors:
        errors.sort(key=lambda error: int(error["path"].rsplit("/", 1)[1]))
        raise ApiError(
            ErrorCode.VALIDATION_FAILED,
            f"{len(errors)} bad row(s); nothing was imported",
            errors=errors,
        )
    paths = {code: grid.path for code, grid in existing.items()}
    ids = {code: grid.id for code, grid in existing.items()}
    for wave in waves:
        _insert_wave(session, wave, ids, paths)
    session.flush()
    imported = list(session.scalars(select(Grid).where(Grid.code.in_([r.code for r in rows]))))
    # One event for the whole file: an import may hold thousands of grids.
    details = {"imported": len(imported), "codes": sorted(grid.code for grid in imported)}
    record_event(
        session,
        Action.GRID_CREATED,
        "grid_import",
        None,
        details,
        grid_ids=[g.id for g in imported],
    )
    return imported


def _insert_wave(
    session: Session, wave: Iterable[GridRow], ids: dict[str, int], paths: dict[str, str]
) -> None:
    """One INSERT for the wave's grids, then one UPDATE of their paths."""
    wave = list(wave)
    inserted = session.execute(
        insert(Grid).returning(Grid.id, Grid.code),
        [
            {
                "code": row.code,
                "name": row.name,
                "level": row.level,
                "parent_id": ids[row.parent_code] if row.parent_code else None,
                "path": "",
            }
            for row in wave
        ],
    ).all()
    parent_of = {row.code: row.parent_code for row in wave}
    updates = []
    for grid_id, code in inserted:
        ids[code] = grid_id
        parent = parent_of[code]
        paths[code] = f"{paths[parent] if parent else '/'}{grid_id}/"
        updates.append({"id": grid_id, "path": paths[code]})
    session.execute(update(Grid), updates)
