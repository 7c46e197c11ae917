from sqlalchemy import func, select

from server import demo
from server.models import Grid, GridLevel, User
from server.passwords import verify_password
from server.scope import scope_grid_ids


def test_demo_tree_and_logins(database):
    with database.session() as session:
        assert demo.load(session) is True
    with database.session() as session:
        counts = dict(
            session.execute(select(Grid.level, func.count()).group_by(Grid.level)).tuples().all()
        )
        assert counts == {
            GridLevel.STREET: 1,
            GridLevel.COMMUNITY: 2,
            GridLevel.COMPOUND: 4,
            GridLevel.HOUSEHOLD_GRID: 12,
        }
        users = {user.username: user for user in session.scalars(select(User))}
        assert {login.username for login in demo.DEMO_LOGINS} == set(users)
        for login in demo.DEMO_LOGINS:
            assert verify_password(login.password, users[login.username].password_hash)
        assert scope_grid_ids(session, users["admin"]) is None
        assert len(scope_grid_ids(session, users["supervisor"])) == 19
        assert len(scope_grid_ids(session, users["leader"])) == 4
        assert len(scope_grid_ids(session, users["worker1"])) == 2
        assert demo.load(session) is False
