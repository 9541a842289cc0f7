"""profiles: index for the profile list, newest first (SPEC §3)

Revision ID: 0004_profiles
Revises: 0003
Create Date: 2026-11-28 15:55:32.995040
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_profiles"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # GET /profiles/ reads (created_at, id) DESC keyset pages of one application; without this
    # index every page sorts all of the application's profiles.
    op.create_index(
        "ix_profiles_application_created",
        "profiles",
        ["application_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_profiles_application_created", table_name="profiles")
