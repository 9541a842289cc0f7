"""membership_changes: a profile's changes through a btree again, fed in profile order

Revision ID: 0011_change_log_profile_btree
Revises: 0009_webhooks
Create Date: 2026-12-02 01:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_change_log_profile_btree"
down_revision: str | None = "0009_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Measured with 16.8M changes logged (50,000 new ones, one group): the hash index cost
    # 2.04 s, a btree (application_id, profile_id, id) 1.03 s in random profile order and 0.56 s
    # in profile order, which is how every writer now inserts them (the hash's buckets are
    # random pages whatever the order, and it splits them as it grows).
    op.drop_index("ix_membership_changes_profile", table_name="membership_changes")
    op.create_index(
        "ix_membership_changes_profile",
        "membership_changes",
        ["application_id", "profile_id", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_membership_changes_profile", table_name="membership_changes")
    op.create_index(
        "ix_membership_changes_profile",
        "membership_changes",
        ["profile_id"],
        postgresql_using="hash",
    )
