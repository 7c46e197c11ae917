"""marshmallow schemas shared by several API modules: people, grids, devices, pages."""

from __future__ import annotations

import datetime as dt

from marshmallow import Schema, ValidationError, fields, validate

from server.grids import LEVELS
from server.models.base import MAX_ROW_ID, as_utc
from server.users import ROLES
from server.utc import to_utc

MAX_PAGE = 500
# Users, grids and form versions are numbered in INTEGER columns (up to MAX_ROW_ID),
# positions, event and conflict ids in BIGINT ones that JSON carries exactly up to
# 2^53 - 1. A number past its column's range matches nothing, but PostgreSQL refuses to
# compare it at all, so the API bounds every id it is given: 422 in a query or body,
# 404 in a path (and the CLI bounds its arguments alike, `server.cli.context.ROW_ID`).
MAX_POSITION = 2**53 - 1


def row_id(**kwargs) -> fields.Integer:
    """A user id, grid id or form version: 1 to 2^31 - 1."""
    return fields.Integer(validate=validate.Range(1, MAX_ROW_ID), **kwargs)


def position(**kwargs) -> fields.Integer:
    """A position or an event id, or 0 for "before the first": 0 to 2^53 - 1."""
    return fields.Integer(validate=validate.Range(0, MAX_POSITION), **kwargs)


class Moment(fields.AwareDateTime):
    """A time with its zone (RFC 3339), loaded as UTC.

    Stored times are UTC, and SQLite compares them as text, so a bound must be UTC
    before it meets them; a time that UTC would put outside years 1 to 9999 is refused.
    """

    def _deserialize(self, value, attr, data, **kwargs) -> dt.datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return to_utc(moment)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Time(fields.DateTime):
    """A stored time in a reply, always with its zone (UTC), on SQLite as on PostgreSQL.

    Every output schema writes its times with this field, never `fields.DateTime`.
    """

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None:
            value = as_utc(value)
        return super()._serialize(value, attr, obj, **kwargs)


def moment(**kwargs) -> Moment:
    """A time with its zone, as UTC."""
    return Moment(**kwargs)


class PageQuery(Schema):
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": "Most items to return."},
    )


class GridOut(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent_id = fields.Integer(allow_none=True, required=True)
    path = fields.String(required=True, metadata={"description": "Materialised path /1/4/9/."})
    retired_at = Time(allow_none=True, required=True)


class GridRef(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)


class UserOut(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    disabled = fields.Boolean(required=True)
    created_at = Time(required=True)
    grids = fields.List(fields.Nested(GridRef), required=True)


class UserRef(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    role = fields.String(required=True)


class DeviceOut(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    user = fields.Nested(UserRef, required=True)
    registered_at = Time(required=True)
    last_seen_at = Time(allow_none=True, required=True)
    last_sync_at = Time(allow_none=True, required=True)
    acked_seq = fields.Integer(required=True)
    revoked_at = Time(allow_none=True, required=True)


def page_of(item_schema: type[Schema], name: str) -> type[Schema]:
    """A schema for one page of items with the cursor of the next page."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next": fields.String(
                allow_none=True,
                required=True,
                metadata={"description": "Pass as `after` for the next page; null at the end."},
            ),
        },
        name=name,
    )
