"""scope changes: record moves, and the scope and snapshot a device's cursor came from

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# Record ids compare by code point: PostgreSQL needs the "C" collation (as in 0003).
RECORD_ID = sa.String(length=36).with_variant(sa.String(length=36, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "record_moves",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("record_id", RECORD_ID, nullable=False),
        sa.Column("from_grid", sa.BigInteger(), nullable=False),
        sa.Column("to_grid", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_record_moves")),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("pulled_scope", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("snapshot_from", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("snapshot_from")
        batch.drop_column("pulled_scope")
    op.drop_table("record_moves")
