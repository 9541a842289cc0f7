"""membership_changes: the change log of group membership

Revision ID: 0007_membership_changes
Revises: 0006_memberships_group_fk
Create Date: 2026-12-01 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_membership_changes"
down_revision: str | None = "0006_memberships_group_fk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Append-only and without foreign keys (models/changes.py says why). Memberships that exist
    # when this runs get no backfilled 'entered' rows: the log starts here.
    op.create_table(
        "membership_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("application_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("group_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("profile_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("custom_id", sa.Text()),
        sa.Column("change", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evaluation_id", postgresql.UUID(as_uuid=True)),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("member_since", sa.DateTime(timezone=True)),
        sa.CheckConstraint("change IN ('entered', 'exited')", name="membership_changes_change"),
        sa.CheckConstraint(
            "reason IN ('manual', 'evaluation', 'activity', 'profile_deleted')",
            name="membership_changes_reason",
        ),
    )
    op.create_index("ix_membership_changes_group", "membership_changes", ["group_id", "id"])
    op.create_index(
        "ix_membership_changes_profile",
        "membership_changes",
        ["application_id", "profile_id", "id"],
    )
    op.create_index(
        "ix_membership_changes_occurred_at",
        "membership_changes",
        ["occurred_at"],
        postgresql_using="brin",
    )


def downgrade() -> None:
    op.drop_table("membership_changes")
