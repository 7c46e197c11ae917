"""The grid tree: creation with materialised paths, and scope queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Grid, GridLevel


def create_grid(
    session: Session, code: str, name: str, level: GridLevel | str, parent: Grid | None = None
) -> Grid:
    """Add a grid under `parent` and give it its path."""
    grid = Grid(code=code, name=name, level=str(level), parent=parent, path="")
    session.add(grid)
    session.flush()
    grid.path = f"{parent.path if parent else '/'}{grid.id}/"
    session.flush()
    return grid


def subtree_ids(session: Session, roots: list[Grid]) -> list[int]:
    """Ids of the given grids and every grid below them."""
    if not roots:
        return []
    clauses = [Grid.path.startswith(root.path) for root in roots]
    from sqlalchemy import or_

    return list(session.scalars(select(Grid.id).where(or_(*clauses))))
