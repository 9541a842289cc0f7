"""membership_changes: the log's start; a profile's changes found through a hash index

Revision ID: 0008_change_log
Revises: 0007_membership_changes
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_change_log"
down_revision: str | None = "0007_membership_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row: when the writers started recording (this migration ships with them). Membership
    # before then cannot be rebuilt from the log, so history reads refuse earlier instants
    # (docs/changes.md) instead of answering from an incomplete log.
    op.create_table(
        "membership_change_log",
        sa.Column("id", sa.SmallInteger(), primary_key=True, server_default=sa.text("1")),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.CheckConstraint("id = 1", name="membership_change_log_one_row"),
    )
    op.execute("INSERT INTO membership_change_log DEFAULT VALUES")
    # A profile's changes (its group history, a few rows each) through a hash index on
    # profile_id instead of the btree (application_id, profile_id, id): a first evaluation
    # inserts its changes in random profile order, and the btree's random inserts were most of
    # what recording them cost; a hash insert touches one bucket page. The history filters on
    # the application and sorts the profile's few rows by id.
    op.drop_index("ix_membership_changes_profile", table_name="membership_changes")
    op.create_index(
        "ix_membership_changes_profile",
        "membership_changes",
        ["profile_id"],
        postgresql_using="hash",
    )


def downgrade() -> None:
    op.drop_index("ix_membership_changes_profile", table_name="membership_changes")
    op.create_index(
        "ix_membership_changes_profile",
        "membership_changes",
        ["application_id", "profile_id", "id"],
    )
    op.drop_table("membership_change_log")
