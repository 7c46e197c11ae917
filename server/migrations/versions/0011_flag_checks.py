"""flag_checks: the records whose validation flags must be computed again

Revision ID: 0011
Revises: 0010

Every top-level record stored before this revision is marked once, so its flags are
computed by the first check that runs.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flag_checks",
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("mark", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_flag_checks")),
    )
    op.execute(
        "INSERT INTO flag_checks (record_id, mark) "
        "SELECT record_id, 'migration' FROM records WHERE parent_id IS NULL"
    )


def downgrade() -> None:
    op.drop_table("flag_checks")
