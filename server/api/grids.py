"""The grid tree: list a scope or subtree, create, rename, move, retire, import a CSV."""

from __future__ import annotations

from flask import Blueprint, request
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from server.api.access import caller_scope
from server.api.operation import operation
from server.api.schemas import GridOut, PageQuery, page_of, row_id
from server.db import db_session
from server.errors import ApiError, ErrorCode
from server.grids import (
    LEVELS,
    MAX_CODE,
    MAX_NAME,
    add_grid,
    import_grids,
    move_grid,
    rename_grid,
    retire_grid,
)
from server.models import Grid

bp = Blueprint("grids", __name__, url_prefix="/api/v1/grids")
TAGS = ("grids",)
MAX_CSV_BYTES = 2 * 1024 * 1024


class GridsQuery(PageQuery):
    under = row_id(metadata={"description": "Only this grid and its sub-grids."})
    level = fields.String(validate=validate.OneOf(LEVELS))
    include_retired = fields.Boolean(load_default=False)
    after = row_id(metadata={"description": "The last grid id of the previous page."})


class GridCreate(Schema):
    code = fields.String(required=True, validate=validate.Length(1, MAX_CODE))
    name = fields.String(required=True, validate=validate.Length(1, MAX_NAME))
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent_id = row_id(allow_none=True, load_default=None)


class GridChange(Schema):
    name = fields.String(validate=validate.Length(1, MAX_NAME))
    parent_id = row_id(
        allow_none=True, metadata={"description": "Move under this grid; null: to the top."}
    )


class ImportOut(Schema):
    imported = fields.Integer(required=True)
    grids = fields.List(fields.Nested(GridOut), required=True)


class RetireOut(Schema):
    retired = fields.Integer(required=True)
    grid = fields.Nested(GridOut, required=True)


def _parent(parent_id: int | None) -> Grid | None:
    if parent_id is None:
        return None
    parent = db_session().get(Grid, parent_id)
    if parent is None:
        message = f"no grid {parent_id}"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED,
            message,
            errors=[{"path": "/parent_id", "message": message}],
        )
    return parent


@bp.get("")
@operation(
    "Grids in the caller's scope, optionally one subtree or level",
    tags=TAGS,
    query=GridsQuery,
    response=page_of(GridOut, "GridPage"),
)
def list_grids(query):
    session = db_session()
    statement = select(Grid).where(caller_scope().path_filter()).order_by(Grid.id)
    if "under" in query:
        root = session.get(Grid, query["under"])
        if root is None or not caller_scope().contains_path(root.path):
            raise ApiError(ErrorCode.NOT_FOUND, "no such grid")
        statement = statement.where(Grid.path.startswith(root.path))
    if "level" in query:
        statement = statement.where(Grid.level == query["level"])
    if not query["include_retired"]:
        statement = statement.where(Grid.retired_at.is_(None))
    if "after" in query:
        statement = statement.where(Grid.id > query["after"])
    grids = list(session.scalars(statement.limit(query["limit"] + 1)))
    more = len(grids) > query["limit"]
    grids = grids[: query["limit"]]
    return {"items": grids, "next": str(grids[-1].id) if more else None}


@bp.post("", endpoint="create_grid")
@operation(
    "Create a grid",
    tags=TAGS,
    body=GridCreate,
    response=GridOut,
    status=201,
    errors=[ErrorCode.CONFLICT],
)
def create_grid_view(body):
    session = db_session()
    parent = _parent(body["parent_id"])
    grid = add_grid(session, body["code"], body["name"], body["level"], parent)
    session.commit()
    return grid


@bp.post("/import", endpoint="import_grids")
@operation(
    "Import grids from a CSV (code,name,level,parent_code): all rows or none",
    tags=TAGS,
    description="A bad row answers 422 with one entry per bad row in `errors` "
    "(path /line/N) and nothing is imported.",
    body_type="text/csv",
    response=ImportOut,
    status=201,
)
def import_grids_view():
    if (request.content_length or 0) > MAX_CSV_BYTES:
        raise ApiError(ErrorCode.PAYLOAD_TOO_LARGE, "a grid CSV may hold at most 2 MiB")
    try:
        text = request.get_data(cache=False).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(ErrorCode.VALIDATION_FAILED, "the CSV must be UTF-8") from None
    session = db_session()
    grids = import_grids(session, text)
    session.commit()
    return {"imported": len(grids), "grids": grids}


@bp.get("/<row_id:grid_id>")
@operation("One grid", tags=TAGS, response=GridOut)
def get_grid(grid_id: int):
    return db_session().get(Grid, grid_id)


@bp.patch("/<row_id:grid_id>", endpoint="update_grid")
@operation(
    "Rename a grid, or move it with its subtree", tags=TAGS, body=GridChange, response=GridOut
)
def update_grid_view(grid_id: int, body):
    session = db_session()
    grid = session.get(Grid, grid_id)
    if "name" in body:
        grid = rename_grid(session, grid, body["name"])
    if "parent_id" in body and body["parent_id"] != grid.parent_id:
        grid = move_grid(session, grid, _parent(body["parent_id"]))
    session.commit()
    return grid


@bp.post("/<row_id:grid_id>/retire", endpoint="retire_grid")
@operation("Retire a grid and its sub-grids (their records stay)", tags=TAGS, response=RetireOut)
def retire_grid_view(grid_id: int):
    session = db_session()
    count = retire_grid(session, session.get(Grid, grid_id))
    session.commit()
    return {"retired": count, "grid": session.get(Grid, grid_id)}
