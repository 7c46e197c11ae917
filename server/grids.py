"""The grid tree: creation with materialised paths, and scope queries."""

from __future__ import annotations

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
