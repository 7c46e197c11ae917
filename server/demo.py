"""Demo data for `make run`: one street's grid tree and one user of each role."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.form_store import install_builtin
from server.grids import create_grid
from server.models import Grid, GridLevel, Role, User
from server.passwords import hash_password

STREET_CODE = "HP"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: Role
    grid_codes: tuple[str, ...]


DEMO_LOGINS = (
    DemoLogin("admin", "admin-demo-2026", Role.ADMIN, ()),
    DemoLogin("supervisor", "supervisor-demo-2026", Role.SUPERVISOR, (STREET_CODE,)),
    DemoLogin("leader", "leader-demo-2026", Role.GRID_LEADER, ("HP-C1-R1",)),
    DemoLogin("worker1", "worker1-demo-2026", Role.WORKER, ("HP-C1-R1-G1", "HP-C1-R1-G2")),
    DemoLogin("worker2", "worker2-demo-2026", Role.WORKER, ("HP-C2-R1-G1",)),
)

COMMUNITIES = (("C1", "和平社区 Heping Community"), ("C2", "光明社区 Guangming Community"))
COMPOUNDS = (("R1", "幸福小区 Xingfu Compound"), ("R2", "阳光小区 Yangguang Compound"))


def _build_grids(session: Session) -> dict[str, Grid]:
    grids: dict[str, Grid] = {}
    street = create_grid(session, STREET_CODE, "和平街道 Heping Street", GridLevel.STREET)
    grids[street.code] = street
    for community_code, community_name in COMMUNITIES:
        community = create_grid(
            session,
            f"{STREET_CODE}-{community_code}",
            community_name,
            GridLevel.COMMUNITY,
            street,
        )
        grids[community.code] = community
        for compound_code, compound_name in COMPOUNDS:
            compound = create_grid(
                session,
                f"{community.code}-{compound_code}",
                compound_name,
                GridLevel.COMPOUND,
                community,
            )
            grids[compound.code] = compound
            for number in (1, 2, 3):
                grid = create_grid(
                    session,
                    f"{compound.code}-G{number}",
                    f"{compound_name} 第{number}网格 Grid {number}",
                    GridLevel.HOUSEHOLD_GRID,
                    compound,
                )
                grids[grid.code] = grid
    return grids


def load(session: Session) -> bool:
    """Create the demo data unless it is there already; True when it was created."""
    if session.scalar(select(Grid.id).where(Grid.code == STREET_CODE)) is not None:
        return False
    install_builtin(session)
    grids = _build_grids(session)
    for login in DEMO_LOGINS:
        user = User(
            username=login.username,
            display_name=login.username.capitalize(),
            role=str(login.role),
            password_hash=hash_password(login.password),
        )
        user.grids = [grids[code] for code in login.grid_codes]
        session.add(user)
    session.flush()
    return True
