"""sign-in throttle, attachments, reviews and comments

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_sign_in_throttle"),
    )
    op.create_table(
        "attachments",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_attachments_created_by_users"
        ),
        sa.PrimaryKeyConstraint("sha256", name="pk_attachments"),
    )
    op.create_table(
        "attachment_uploaders",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["attachments.sha256"],
            name="fk_attachment_uploaders_sha256_attachments",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_attachment_uploaders_user_id_users"
        ),
        sa.PrimaryKeyConstraint("sha256", "user_id", name="pk_attachment_uploaders"),
    )
    op.create_table(
        "reviews",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_reviews_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
    )
    op.create_index("ix_reviews_record_id_id", "reviews", ["record_id", "id"])
    op.create_table(
        "comments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_comments_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_comments"),
    )
    op.create_index("ix_comments_record_id_id", "comments", ["record_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_comments_record_id_id", table_name="comments")
    op.drop_table("comments")
    op.drop_index("ix_reviews_record_id_id", table_name="reviews")
    op.drop_table("reviews")
    op.drop_table("attachment_uploaders")
    op.drop_table("attachments")
    op.drop_table("sign_in_throttle")
