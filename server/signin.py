"""Checking a username and password, with failures throttled per username and per address.

After MAX_USER_FAILURES wrong passwords for one username within WINDOW, that username
is locked for LOCK_TIME; an address that fails MAX_ADDRESS_FAILURES times is locked
the same way. Unknown usernames are counted too, so a lock never tells whether an
account exists.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.audit.events import Action, record_event
from server.errors import ApiError, ErrorCode
from server.models import SignInThrottle, User, utcnow
from server.passwords import hash_password, verify_password

MAX_USER_FAILURES = 5
MAX_ADDRESS_FAILURES = 50
WINDOW = dt.timedelta(minutes=15)
LOCK_TIME = dt.timedelta(minutes=15)

# Verified against when the username is unknown, so both paths cost one scrypt.
_DUMMY_HASH = hash_password("not-a-real-password-ever")


def _keys(username: str, address: str | None) -> dict[str, int]:
    keys = {f"user:{username.strip().lower()}"[:200]: MAX_USER_FAILURES}
    if address:
        keys[f"ip:{address}"[:200]] = MAX_ADDRESS_FAILURES
    return keys


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every stored moment is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def locked_for(session: Session, username: str, address: str | None) -> int:
    """Seconds until sign-in is allowed again for this username or address (0: allowed)."""
    now = utcnow()
    rows = session.scalars(
        select(SignInThrottle).where(SignInThrottle.key.in_(list(_keys(username, address))))
    )
    waits = [
        (_aware(row.locked_until) - now).total_seconds()
        for row in rows
        if row.locked_until is not None and _aware(row.locked_until) > now
    ]
    return int(max(waits) + 1) if waits else 0


def _insert(session: Session):
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(SignInThrottle)


def record_failure(session: Session, username: str, address: str | None) -> None:
    """Count one failure under each key, starting a new window or a lock when due."""
    now = utcnow()
    for key, limit in _keys(username, address).items():
        # Insert-or-ignore then one UPDATE: safe when two failures race on a new key.
        session.execute(
            _insert(session)
            .values(key=key, failures=0, window_started_at=now, locked_until=None)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = session.get(SignInThrottle, key, with_for_update=True, populate_existing=True)
        if _aware(row.window_started_at) < now - WINDOW:
            row.failures, row.window_started_at = 0, now
        row.failures += 1
        if row.failures >= limit:
            row.locked_until = now + LOCK_TIME
            row.failures, row.window_started_at = 0, now
    session.flush()


def clear_failures(session: Session, username: str) -> None:
    """Forget the username's failures (after a good sign-in or a password reset)."""
    session.execute(
        update(SignInThrottle)
        .where(SignInThrottle.key == f"user:{username.strip().lower()}"[:200])
        .values(failures=0, locked_until=None)
    )


def authenticate(session: Session, username: str, password: str, address: str | None) -> User:
    """The enabled user with these credentials; raises 429 while locked, 401 when wrong.

    A failure is committed before the error is raised, so it counts although the
    request fails.
    """
    wait = locked_for(session, username, address)
    if wait:
        raise ApiError(
            ErrorCode.TOO_MANY_REQUESTS,
            f"too many failed sign-ins; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    user = session.scalar(select(User).where(User.username == username))
    good = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    if user is None or not good or user.disabled:
        record_failure(session, username, address)
        reason = "unknown_user" if user is None else "disabled" if good else "wrong_password"
        record_event(
            session,
            Action.SIGN_IN_FAILED,
            "user",
            user.id if user else None,
            {"username": username, "address": address, "reason": reason},
            grid_ids=[grid.id for grid in user.grids] if user else (),
        )
        session.commit()
        raise ApiError(ErrorCode.INVALID_CREDENTIALS)
    clear_failures(session, username)
    record_event(
        session,
        Action.SIGN_IN,
        "user",
        user.id,
        {"address": address},
        user_id=user.id,
        grid_ids=[grid.id for grid in user.grids],
    )
    return user
