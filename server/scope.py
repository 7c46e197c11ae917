"""Grid scope: the grids a user may see and edit (their grids and every grid below).

`Scope.grid_filter(column)` turns a scope into one SQL condition on any grid-id
column, so every list is filtered in the database, never in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from server.models import Grid, Role, User


@dataclass(frozen=True)
class Scope:
    """Whose scope, and the materialised paths of its root grids (admin: everything)."""

    user_id: int
    everything: bool
    roots: tuple[str, ...] = ()

    def grid_ids_query(self):
        """SELECT of the ids of every grid in the scope (not for `everything`)."""
        return select(Grid.id).where(or_(*[Grid.path.startswith(path) for path in self.roots]))

    def grid_filter(self, column: ColumnElement) -> ColumnElement[bool]:
        """A condition true for rows whose grid id (`column`) is in the scope."""
        if self.everything:
            return true()
        if not self.roots:
            return false()
        return column.in_(self.grid_ids_query())

    def path_filter(self) -> ColumnElement[bool]:
        """A condition on `Grid` rows: the grid lies in the scope."""
        if self.everything:
            return true()
        if not self.roots:
            return false()
        return or_(*[Grid.path.startswith(path) for path in self.roots])

    def root_ids(self) -> list[int]:
        """The ids of the scope's root grids (the last step of each path)."""
        return [int(path.rstrip("/").rsplit("/", 1)[-1]) for path in self.roots]

    def contains_path(self, path: str) -> bool:
        """True when the grid with this materialised path is in the scope."""
        return self.everything or any(path.startswith(root) for root in self.roots)

    def contains_any(self, session: Session, grid_ids: Iterable[int]) -> bool:
        """True when at least one of these grids is in the scope."""
        ids = [grid_id for grid_id in grid_ids if grid_id is not None]
        if self.everything:
            return True
        if not ids or not self.roots:
            return False
        query = select(Grid.id).where(Grid.id.in_(ids), self.path_filter()).limit(1)
        return session.scalar(query) is not None


def scope_of(user: User) -> Scope:
    """The scope of a user: everything for admins, else their grids' subtrees."""
    if user.role == Role.ADMIN:
        return Scope(user_id=user.id, everything=True)
    roots = sorted({grid.path for grid in user.grids})
    # A root under another root adds nothing; dropping it keeps the SQL short.
    kept = tuple(path for path in roots if not any(path.startswith(r) and path != r for r in roots))
    return Scope(user_id=user.id, everything=False, roots=kept)


def scope_grid_ids(session: Session, user: User) -> list[int] | None:
    """Ids of the grids in the user's scope; None means every grid (admin)."""
    scope = scope_of(user)
    if scope.everything:
        return None
    if not scope.roots:
        return []
    return list(session.scalars(scope.grid_ids_query().order_by(Grid.id)))
