"""People: who am I, list, create, change, assign to grids, reset passwords."""

from __future__ import annotations

from flask import Blueprint, g
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from server.api.access import caller_scope
from server.api.operation import operation
from server.api.schemas import MAX_ROW_ID, PageQuery, UserOut, page_of, row_id
from server.auth import csrf_token
from server.db import db_session
from server.errors import ApiError, ErrorCode
from server.models import Grid, Role, User
from server.users import (
    MAX_DISPLAY_NAME,
    MAX_USERNAME,
    ROLES,
    assign_grids,
    create_user,
    reset_password,
    update_user,
    users_query,
)

bp = Blueprint("users", __name__, url_prefix="/api/v1")
TAGS = ("people",)


class MeOut(UserOut):
    scope_grid_ids = fields.List(fields.Integer(), allow_none=True, required=True)
    csrf_token = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "Send as X-CSRF-Token on changes made with the web session."},
    )


class UsersQuery(PageQuery):
    role = fields.String(validate=validate.OneOf(ROLES))
    after = fields.Integer(
        validate=validate.Range(0, MAX_ROW_ID),
        metadata={"description": "The last user id of the previous page."},
    )


class UserCreate(Schema):
    username = fields.String(required=True, validate=validate.Length(1, MAX_USERNAME))
    password = fields.String(required=True, validate=validate.Length(1, 1024), load_only=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    display_name = fields.String(load_default="", validate=validate.Length(max=MAX_DISPLAY_NAME))
    grid_ids = fields.List(row_id(), load_default=list)


class UserChange(Schema):
    display_name = fields.String(validate=validate.Length(1, MAX_DISPLAY_NAME))
    role = fields.String(validate=validate.OneOf(ROLES))
    disabled = fields.Boolean()


class GridIds(Schema):
    grid_ids = fields.List(row_id(), required=True)


class NewPassword(Schema):
    password = fields.String(required=True, validate=validate.Length(1, 1024), load_only=True)


def _grids(ids: list[int], *, within_scope: bool) -> list[Grid]:
    """The grids with these ids, all of them live (and in the caller's scope)."""
    session = db_session()
    ids = sorted(set(ids))
    query = select(Grid).where(Grid.id.in_(ids), Grid.retired_at.is_(None))
    if within_scope:
        query = query.where(caller_scope().path_filter())
    grids = list(session.scalars(query))
    missing = sorted(set(ids) - {grid.id for grid in grids})
    if missing:
        errors = [
            {"path": "/grid_ids", "message": f"no live grid {grid_id}"} for grid_id in missing
        ]
        raise ApiError(ErrorCode.VALIDATION_FAILED, "some grids are unknown", errors=errors)
    return grids


@bp.get("/me")
@operation("The caller, their grids and scope", tags=TAGS, response=MeOut)
def me():
    from server.scope import scope_grid_ids

    user = g.user
    return {
        **{name: getattr(user, name) for name in UserOut().fields},
        "scope_grid_ids": scope_grid_ids(db_session(), user),
        "csrf_token": csrf_token() if g.get("device") is None else None,
    }


@bp.get("/users")
@operation(
    "Users in the caller's scope",
    tags=TAGS,
    query=UsersQuery,
    response=page_of(UserOut, "UserPage"),
)
def list_users(query):
    statement = users_query(caller_scope(), query.get("role")).order_by(None).order_by(User.id)
    if "after" in query:
        statement = statement.where(User.id > query["after"])
    users = list(db_session().scalars(statement.limit(query["limit"] + 1)))
    more = len(users) > query["limit"]
    users = users[: query["limit"]]
    return {"items": users, "next": str(users[-1].id) if more else None}


@bp.post("/users", endpoint="create_user")
@operation(
    "Create a user",
    tags=TAGS,
    body=UserCreate,
    response=UserOut,
    status=201,
    errors=[ErrorCode.CONFLICT],
)
def create_user_view(body):
    session = db_session()
    grids = _grids(body["grid_ids"], within_scope=False)
    user = create_user(
        session, body["username"], body["password"], body["role"], body["display_name"], grids
    )
    session.commit()
    return user


@bp.get("/users/<row_id:user_id>")
@operation("One user", tags=TAGS, response=UserOut)
def get_user(user_id: int):
    return db_session().get(User, user_id)


@bp.patch("/users/<row_id:user_id>", endpoint="update_user")
@operation(
    "Change a user's name or role, or disable them (their devices are revoked)",
    tags=TAGS,
    body=UserChange,
    response=UserOut,
)
def update_user_view(user_id: int, body):
    session = db_session()
    user = session.get(User, user_id)
    if user.id == g.user.id and (body.get("disabled") or body.get("role", user.role) != user.role):
        raise ApiError(ErrorCode.CONFLICT, "you cannot disable yourself or change your own role")
    update_user(session, user, **body)
    session.commit()
    return user


@bp.put("/users/<row_id:user_id>/grids")
@operation(
    "Assign a user to grids (supervisors: field staff, within their own scope)",
    tags=TAGS,
    body=GridIds,
    response=UserOut,
)
def set_user_grids(user_id: int, body):
    session = db_session()
    user = session.get(User, user_id)
    staff_target = user.role in (Role.ADMIN, Role.SUPERVISOR)
    if g.user.role != Role.ADMIN and staff_target:
        raise ApiError(ErrorCode.FORBIDDEN, "only an admin assigns grids to supervisors")
    grids = _grids(body["grid_ids"], within_scope=g.user.role != Role.ADMIN)
    if g.user.role != Role.ADMIN:
        # A supervisor's list replaces the part of the assignment in their own scope;
        # the user's grids outside it are another supervisor's to change.
        scope = caller_scope()
        grids += [grid for grid in user.grids if not scope.contains_path(grid.path)]
    assign_grids(session, user, grids)
    session.commit()
    return user


@bp.post("/users/<row_id:user_id>/password", endpoint="reset_password")
@operation(
    "Set a new password (ends the user's web sessions, lifts sign-in locks)",
    tags=TAGS,
    body=NewPassword,
    status=204,
)
def reset_password_view(user_id: int, body):
    session = db_session()
    reset_password(session, session.get(User, user_id), body["password"])
    session.commit()
