"""People: creating, changing, disabling users, their passwords and their grids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from server.audit.events import Action, record_event
from server.errors import ApiError, ErrorCode
from server.models import Device, Grid, Role, User, UserGrid, utcnow
from server.passwords import hash_password, password_problem
from server.scope import Scope
from server.signin import clear_failures

ROLES = tuple(str(role) for role in Role)
# The lengths of the username and display_name columns: longer text is refused here,
# for the API and the CLI alike, since PostgreSQL would refuse it as a 500 and SQLite
# would keep it.
MAX_USERNAME = 100
MAX_DISPLAY_NAME = 200


def _check_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise ApiError(
            ErrorCode.VALIDATION_FAILED,
            problem,
            errors=[{"path": "/password", "message": problem}],
        )


def _check_length(path: str, text: str, longest: int) -> None:
    """422 at `path` when the text is longer than its column holds."""
    if len(text) > longest:
        message = f"the {path[1:].replace('_', ' ')} holds at most {longest} characters"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": path, "message": message}]
        )


def _check_role(role: str) -> str:
    if role not in ROLES:
        message = f"role must be one of {', '.join(ROLES)}"
        raise ApiError(
            ErrorCode.VALIDATION_FAILED, message, errors=[{"path": "/role", "message": message}]
        )
    return role


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    grids: Sequence[Grid] = (),
) -> User:
    """A new enabled user; 409 when the username is taken."""
    username = username.strip()
    if not username:
        raise ApiError(ErrorCode.VALIDATION_FAILED, "a username is required")
    _check_length("/username", username, MAX_USERNAME)
    _check_length("/display_name", display_name, MAX_DISPLAY_NAME)
    _check_role(role)
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ApiError(ErrorCode.CONFLICT, f"the username {username!r} is taken")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=hash_password(password),
        disabled=False,
        failed_logins=0,
    )
    user.grids = list(grids)
    session.add(user)
    session.flush()
    details = {"username": username, "role": role, "display_name": user.display_name}
    record_event(session, Action.USER_CREATED, "user", user.id, details, grid_ids=_grid_ids(user))
    return user


def find_user(session: Session, username: str) -> User:
    """The user with this username; 404 otherwise."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no user named {username!r}")
    return user


def users_query(scope: Scope, role: str | None = None, include_disabled: bool = True) -> Select:
    """Users visible in the scope (those assigned to a grid in it), by username."""
    query = select(User).order_by(User.username)
    if not scope.everything:
        query = query.where(
            exists().where(UserGrid.user_id == User.id).where(scope.grid_filter(UserGrid.grid_id))
        )
    if role:
        query = query.where(User.role == role)
    if not include_disabled:
        query = query.where(User.disabled.is_(False))
    return query


def update_user(
    session: Session,
    user: User,
    *,
    display_name: str | None = None,
    role: str | None = None,
    disabled: bool | None = None,
) -> User:
    """Change a user's name, role or enabled state."""
    before = {"display_name": user.display_name, "role": user.role}
    if display_name is not None:
        _check_length("/display_name", display_name, MAX_DISPLAY_NAME)
        user.display_name = display_name
    if role is not None:
        user.role = _check_role(role)
    if disabled is False and user.disabled:
        before["disabled"] = True
        user.disabled = False
    session.flush()
    _record_change(session, user, before)
    if disabled is True:
        disable_user(session, user)
    return user


def _grid_ids(user: User) -> list[int]:
    return [grid.id for grid in user.grids]


def _record_change(session: Session, user: User, before: dict) -> None:
    """One audit event with the old and new value of every field that changed."""
    changes = {
        name: {"old": old, "new": getattr(user, name)}
        for name, old in before.items()
        if getattr(user, name) != old
    }
    if changes:
        record_event(
            session, Action.USER_CHANGED, "user", user.id, changes, grid_ids=_grid_ids(user)
        )


def disable_user(session: Session, user: User) -> User:
    """Disable the user and revoke every device they hold; their tokens stop at once."""
    was_disabled = user.disabled
    user.disabled = True
    now = utcnow()
    revoked = []
    for device in session.scalars(
        select(Device).where(Device.user_id == user.id, Device.revoked_at.is_(None))
    ):
        device.revoked_at = now
        revoked.append(device.id)
    session.flush()
    if not was_disabled:
        details = {"disabled": {"old": False, "new": True}, "devices_revoked": sorted(revoked)}
        record_event(
            session, Action.USER_CHANGED, "user", user.id, details, grid_ids=_grid_ids(user)
        )
    return user


def reset_password(session: Session, user: User, password: str) -> User:
    """Set a new password; web sessions signed in with the old one end, locks are lifted."""
    _check_password(password)
    user.password_hash = hash_password(password)
    clear_failures(session, user.username)
    session.flush()
    # The event says that it happened, never what the password is.
    details = {"password": "reset"}
    record_event(session, Action.USER_CHANGED, "user", user.id, details, grid_ids=_grid_ids(user))
    return user


def assign_grids(session: Session, user: User, grids: Iterable[Grid]) -> User:
    """Make `grids` the user's grids (their scope is these and everything below)."""
    old = sorted(_grid_ids(user))
    user.grids = list({grid.id: grid for grid in grids}.values())
    session.flush()
    new = sorted(_grid_ids(user))
    if new != old:
        details = {"grid_ids_assigned": {"old": old, "new": new}}
        record_event(session, Action.USER_CHANGED, "user", user.id, details, grid_ids=[*old, *new])
    return user
