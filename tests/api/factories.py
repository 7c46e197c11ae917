"""Small builders for API tests: a grid tree, users of every role, and their tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.db import Database
from server.devices import register_device
from server.grids import create_grid
from server.models import Grid, GridLevel, Role, User
from server.users import create_user

PASSWORD = "correct horse battery"


@dataclass
class World:
    """Two communities: supervisor, leader and worker in the first, worker2 in the other."""

    database: Database
    grids: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def add_user(self, username: str, role: str, grid_codes=()) -> int:
        with self.database.session() as session:
            grids = [session.get(Grid, self.grids[code]) for code in grid_codes]
            user = create_user(session, username, PASSWORD, role, grids=grids)
            device, token = register_device(session, user, f"{username}'s phone")
            self.users[username], self.tokens[username] = user.id, token
            self.devices[username] = device.id
            return user.id


def build_world(database: Database) -> World:
    world = World(database)
    with database.session() as session:
        street = create_grid(session, "S", "Street", GridLevel.STREET)
        c1 = create_grid(session, "S-C1", "Community 1", GridLevel.COMMUNITY, street)
        c2 = create_grid(session, "S-C2", "Community 2", GridLevel.COMMUNITY, street)
        r1 = create_grid(session, "S-C1-R1", "Compound 1", GridLevel.COMPOUND, c1)
        r2 = create_grid(session, "S-C2-R1", "Compound 2", GridLevel.COMPOUND, c2)
        g1 = create_grid(session, "S-C1-R1-G1", "Grid 1", GridLevel.HOUSEHOLD_GRID, r1)
        g2 = create_grid(session, "S-C1-R1-G2", "Grid 2", GridLevel.HOUSEHOLD_GRID, r1)
        g3 = create_grid(session, "S-C2-R1-G1", "Grid 3", GridLevel.HOUSEHOLD_GRID, r2)
        for grid in (street, c1, c2, r1, r2, g1, g2, g3):
            world.grids[grid.code] = grid.id
    world.add_user("admin", Role.ADMIN)
    world.add_user("supervisor", Role.SUPERVISOR, ["S-C1"])
    world.add_user("leader", Role.GRID_LEADER, ["S-C1-R1"])
    world.add_user("worker", Role.WORKER, ["S-C1-R1-G1"])
    world.add_user("worker2", Role.WORKER, ["S-C2-R1-G1"])
    return world


def user_named(database: Database, username: str) -> User:
    from sqlalchemy import select

    with database.session() as session:
        return session.scalar(select(User).where(User.username == username))
