"""sync store: ops, field state, set elements, records, conflicts, inbox, position counter

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _code_point(length: int) -> sa.String:
    # Ids and field names compare by code point: PostgreSQL needs the "C" collation.
    return sa.String(length=length).with_variant(
        sa.String(length=length, collation="C"), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "conflicts",
        sa.Column("id", ID, nullable=False),
        sa.Column("record_id", _code_point(36), nullable=False),
        sa.Column("field", _code_point(128), nullable=False),
        sa.Column("first_position", sa.BigInteger(), nullable=False),
        sa.Column("second_position", sa.BigInteger(), nullable=False),
        sa.Column("winner_position", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_position", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    op.create_index(
        "ix_conflicts_second_position_first_position",
        "conflicts",
        ["second_position", "first_position"],
        unique=True,
    )
    op.create_index(
        "ix_conflicts_record_id_field", "conflicts", ["record_id", "field"], unique=False
    )
    op.create_index("ix_conflicts_status", "conflicts", ["status"], unique=False)
    op.create_table(
        "field_state",
        sa.Column("record_id", _code_point(36), nullable=False),
        sa.Column("field", _code_point(128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("hlc", sa.BigInteger(), nullable=False),
        sa.Column("device_id", _code_point(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("op_position", sa.BigInteger(), nullable=False),
        sa.Column("multi", sa.Boolean(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", "field", name=op.f("pk_field_state")),
    )
    op.create_index("ix_field_state_position", "field_state", ["position"], unique=True)
    op.create_table(
        "inbox",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("record_id", _code_point(36), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
    )
    op.create_index("ix_inbox_user_id_id", "inbox", ["user_id", "id"], unique=False)
    op.create_table(
        "op_releases",
        sa.Column("op_position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("released_by", sa.Integer(), nullable=False),
        sa.Column(
            "released_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("op_position", name=op.f("pk_op_releases")),
    )
    op.create_table(
        "ops",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("device_id", _code_point(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("record_id", _code_point(36), nullable=False),
        sa.Column("form_id", _code_point(128), nullable=False),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.BigInteger(), nullable=False),
        sa.Column("field", _code_point(128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("hlc", sa.BigInteger(), nullable=False),
        sa.Column("base", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_ops")),
    )
    op.create_index("ix_ops_device_id_seq", "ops", ["device_id", "seq"], unique=True)
    op.create_index(
        "ix_ops_record_id_field_position", "ops", ["record_id", "field", "position"], unique=False
    )
    op.create_table(
        "record_forms",
        sa.Column("record_id", _code_point(36), nullable=False),
        sa.Column("form_id", _code_point(128), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_record_forms")),
    )
    op.create_table(
        "records",
        sa.Column("record_id", _code_point(36), nullable=False),
        sa.Column("form_id", _code_point(128), nullable=False),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("grid_id", sa.BigInteger(), nullable=False),
        sa.Column("hlc", sa.BigInteger(), nullable=False),
        sa.Column("device_id", _code_point(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("parent_id", _code_point(36), nullable=True),
        sa.Column("repeat_group", _code_point(128), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_position", sa.BigInteger(), nullable=False),
        sa.Column("changed_position", sa.BigInteger(), nullable=False),
        sa.Column("validation_flags", sa.JSON(), nullable=True),
        sa.Column("review_status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_records")),
    )
    op.create_index(
        "ix_records_form_id_form_version", "records", ["form_id", "form_version"], unique=False
    )
    op.create_index("ix_records_grid_id", "records", ["grid_id"], unique=False)
    op.create_index("ix_records_parent_id", "records", ["parent_id"], unique=False)
    op.create_table(
        "set_elements",
        sa.Column("record_id", _code_point(36), nullable=False),
        sa.Column("field", _code_point(128), nullable=False),
        sa.Column("element", _code_point(1000), nullable=False),
        sa.Column("add_position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("device_id", _code_point(36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("removed_position", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint(
            "record_id", "field", "element", "add_position", name=op.f("pk_set_elements")
        ),
    )
    op.create_table(
        "set_removals",
        sa.Column("record_id", _code_point(36), nullable=False),
        sa.Column("field", _code_point(128), nullable=False),
        sa.Column("element", _code_point(1000), nullable=False),
        sa.Column("device_id", _code_point(36), nullable=False),
        sa.Column("max_seq", sa.BigInteger(), nullable=False),
        sa.Column("max_base", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "record_id", "field", "element", "device_id", name=op.f("pk_set_removals")
        ),
    )
    op.create_table(
        "sync_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("hlc", sa.BigInteger(), nullable=False),
        sa.Column("applied_hlc", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_clock")),
    )
    op.bulk_insert(
        sa.table(
            "sync_clock",
            sa.column("id"),
            sa.column("position"),
            sa.column("hlc"),
            sa.column("applied_hlc"),
        ),
        [{"id": 1, "position": 0, "hlc": 0, "applied_hlc": 0}],
    )


def downgrade() -> None:
    op.drop_table("sync_clock")
    op.drop_table("set_removals")
    op.drop_table("set_elements")
    op.drop_table("records")
    op.drop_table("record_forms")
    op.drop_table("ops")
    op.drop_table("op_releases")
    op.drop_table("inbox")
    op.drop_table("field_state")
    op.drop_table("conflicts")
