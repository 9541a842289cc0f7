"""group_memberships: no foreign key to profile_groups

Revision ID: 0006_memberships_group_fk
Revises: 0005_profile_changes
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_memberships_group_fk"
down_revision: str | None = "0005_profile_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The per-row check of this key (a KEY SHARE lock on the group row for each inserted
    # membership) was a third of an evaluation's insert time. The lock order rules out a
    # membership of a missing group, and a group's deletion deletes its memberships itself
    # (docs/architecture.md).
    op.drop_constraint(
        "fk_group_memberships_group_id_profile_groups", "group_memberships", type_="foreignkey"
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM group_memberships gm WHERE NOT EXISTS "
        "(SELECT 1 FROM profile_groups g WHERE g.id = gm.group_id)"
    )
    op.create_foreign_key(
        "fk_group_memberships_group_id_profile_groups",
        "group_memberships",
        "profile_groups",
        ["group_id"],
        ["id"],
        ondelete="CASCADE",
    )
