"""ops, field_state: on SQLite the value column keeps a value's JSON text as sent

Revision ID: 0010
Revises: 0009

A column declared JSON has numeric affinity on SQLite: a number's text was stored as
an INTEGER or a REAL, so 2.0 read back as 2, -0.0 as 0, and an integer beyond 64 bits
as an inexact REAL. Declared BLOB, the column has no affinity and keeps the text.
SQLite cannot change a column's type in place, so both tables are rebuilt; the copy
moves each stored value as it is (no cast), so rows stored before keep their INTEGER
or REAL, which the store reads as the numbers they are, and which the audit chain
hashed as SQLite prints them. PostgreSQL's json columns keep the text already.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("ops", "field_state")
NUMERIC = sa.JSON(none_as_null=False)
# The DDL of `sync.store.tables.ValueJSON` on SQLite.
WITHOUT_AFFINITY = sa.JSON(none_as_null=False).with_variant(sa.BLOB(), "sqlite")


def upgrade() -> None:
    _value_type(NUMERIC, WITHOUT_AFFINITY)


def downgrade() -> None:
    _value_type(WITHOUT_AFFINITY, NUMERIC)


def _value_type(before: sa.types.TypeEngine, after: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        # Both types are JSON, so the copy moves each value without a CAST.
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column("value", existing_type=before, type_=after)
