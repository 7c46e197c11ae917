"""The releases of quarantined ops (`op_releases` rows) and the events that state them.

A row of `op_releases` makes its op apply, so every row must be stated by one
`quarantine.released` event: the op's position in its details, the releaser as the
event's user, and (in events written since it was recorded) the release time in
details as `released_at`. Events written before that carry no time; for them the
position and the releaser are compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, select

from server.audit.covered_ops import utc_text
from server.audit.driver import stream
from sync.store.tables import op_releases


@dataclass(frozen=True)
class Release:
    """One release: the op's position, who released it and when (`format_time` text).

    `released_at` is None when a release event written before the time was recorded
    states it; `event_id` is the stating event's (None for a stored row).
    """

    position: int
    released_by: int | None
    released_at: str | None
    event_id: int | None = None

    def describe(self) -> str:
        when = "" if self.released_at is None else f" at {self.released_at}"
        return f"position {self.position} by user {self.released_by}{when}"


@dataclass(frozen=True)
class Mismatch:
    """The first release where the rows and the events disagree (either side may be absent)."""

    stated: Release | None
    stored: Release | None


def stated_release(event_id: int, user_id: int | None, details_json: str) -> Release:
    """What a `quarantine.released` event states; ValueError if its details lack a position."""
    details = json.loads(details_json)
    if not isinstance(details, dict) or type(details.get("position")) is not int:
        raise ValueError("its details name no op position")
    released_at = details.get("released_at")
    if released_at is not None and not isinstance(released_at, str):
        raise ValueError("its released_at is not a time")
    return Release(details["position"], user_id, released_at, event_id)


def stored_releases(connection: Connection) -> Iterator[Release]:
    """Every `op_releases` row, in position order, its time as the database formats it."""
    released_at = utc_text(op_releases.c.released_at, connection.dialect.name)
    columns = (op_releases.c.op_position, op_releases.c.released_by, released_at)
    statement = select(*columns).order_by(op_releases.c.op_position)
    for position, released_by, at in stream(connection, statement):
        yield Release(position, released_by, at)


def first_mismatch(stated: Mapping[int, Release], stored: Iterable[Release]) -> Mismatch | None:
    """The lowest position whose stored row differs from its statement, or has none."""
    claims = iter(sorted(stated.items()))
    claim = next(claims, None)
    for row in stored:
        if claim is not None and claim[0] < row.position:
            return Mismatch(claim[1], None)
        if claim is None or claim[0] > row.position:
            return Mismatch(None, row)
        if not _matches(claim[1], row):
            return Mismatch(claim[1], row)
        claim = next(claims, None)
    return None if claim is None else Mismatch(claim[1], None)


def _matches(claim: Release, row: Release) -> bool:
    when_agrees = claim.released_at is None or claim.released_at == row.released_at
    return claim.released_by == row.released_by and when_agrees
