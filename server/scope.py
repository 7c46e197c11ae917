"""Grid scope: the grids a user may see and edit (their grids and every grid below)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.models import Grid, Role, User


def scope_grid_ids(session: Session, user: User) -> list[int] | None:
    """Ids of the grids in the user's scope; None means every grid (admin)."""
    if user.role == Role.ADMIN:
        return None
    roots = list(user.grids)
    if not roots:
        return []
    clauses = [Grid.path.startswith(root.path) for root in roots]
    return list(session.scalars(select(Grid.id).where(or_(*clauses)).order_by(Grid.id)))


def in_scope(session: Session, user: User, grid_id: int | None) -> bool:
    scope = scope_grid_ids(session, user)
    return scope is None or (grid_id is not None and grid_id in scope)
