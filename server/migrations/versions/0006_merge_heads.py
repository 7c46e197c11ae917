"""one head again: forms, sync store, server API and audit tables

Revision ID: 0006
Revises: 0002, 0003, 0004, 0005
"""

revision = "0006"
down_revision = ("0002", "0003", "0004", "0005")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: this revision only joins the four branches."""


def downgrade() -> None:
    """Nothing to change: downgrading splits the branches again."""
