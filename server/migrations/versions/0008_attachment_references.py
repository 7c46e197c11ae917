"""attachment references: the records whose ops named each blob

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The stored ops whose value is an attachment object, as each backend reads JSON text.
BACKFILL = {
    "postgresql": (
        "SELECT DISTINCT value ->> 'sha256', record_id FROM ops"
        " WHERE json_typeof(value) = 'object' AND length(value ->> 'sha256') = 64"
    ),
    "sqlite": (
        "SELECT DISTINCT json_extract(value, '$.sha256'), record_id FROM ops"
        " WHERE json_valid(value) AND json_type(value) = 'object'"
        " AND json_type(value, '$.sha256') = 'text'"
        " AND length(json_extract(value, '$.sha256')) = 64"
    ),
}


def upgrade() -> None:
    op.create_table(
        "attachment_references",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("sha256", "record_id", name=op.f("pk_attachment_references")),
    )
    dialect = op.get_bind().dialect.name
    op.execute("INSERT INTO attachment_references (sha256, record_id) " + BACKFILL[dialect])


def downgrade() -> None:
    op.drop_table("attachment_references")
