"""ops: on SQLite the position is the table's rowid

Revision ID: 0009
Revises: 0008

An INTEGER primary key is SQLite's rowid itself, where a BIGINT one needs an index of
its own beside the table: every stored op paid for a second B-tree insert. SQLite
cannot change a column's type in place, so the table is rebuilt (its rows copied, its
indexes made again). PostgreSQL keeps its BIGINT column: nothing changes there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _position_type(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    _position_type(sa.Integer(), sa.BigInteger())


def _position_type(before: sa.types.TypeEngine, after: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("ops", recreate="always") as batch:
        batch.alter_column(
            "position",
            existing_type=before,
            type_=after,
            existing_nullable=False,
            autoincrement=False,
        )
