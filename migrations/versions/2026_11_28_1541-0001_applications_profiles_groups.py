"""applications profiles groups

Revision ID: 0001
Revises:
Create Date: 2026-11-28 15:41:16.726082
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("client_secret", sa.String(length=128), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("client_id", name=op.f("uq_applications_client_id")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_api_tokens_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_api_tokens_application_id"), "api_tokens", ["application_id"], unique=False
    )
    op.create_table(
        "custom_attributes",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=2000), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_custom_attributes_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("application_id", "key", name=op.f("pk_custom_attributes")),
    )
    op.create_table(
        "profile_groups",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("custom_id", sa.String(length=255), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("membership_type", sa.String(length=16), server_default="static", nullable=False),
        sa.Column("profile_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "membership_type IN ('static', 'dynamic')",
            name=op.f("ck_profile_groups_membership_type"),
        ),
        sa.CheckConstraint("profile_count >= 0", name=op.f("ck_profile_groups_profile_count")),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_profile_groups_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_groups")),
    )
    op.create_index(
        "ix_profile_groups_application_created",
        "profile_groups",
        ["application_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_profile_groups_attributes",
        "profile_groups",
        ["attributes"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
    )
    op.create_index(
        "uq_profile_groups_application_custom_id",
        "profile_groups",
        ["application_id", "custom_id"],
        unique=True,
    )
    op.create_table(
        "profiles",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("custom_id", sa.String(length=255), nullable=True),
        sa.Column("nickname", sa.String(length=255), nullable=True),
        sa.Column(
            "custom_attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_profiles_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("application_id", "id", name=op.f("pk_profiles")),
    )
    op.create_index(
        "uq_profiles_application_custom_id",
        "profiles",
        ["application_id", "custom_id"],
        unique=True,
    )
    op.create_table(
        "group_memberships",
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["application_id", "profile_id"],
            ["profiles.application_id", "profiles.id"],
            name=op.f("fk_group_memberships_application_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["profile_groups.id"],
            name=op.f("fk_group_memberships_group_id_profile_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "profile_id", name=op.f("pk_group_memberships")),
    )
    op.create_index(
        "ix_group_memberships_group_created",
        "group_memberships",
        ["group_id", "created_at", "profile_id"],
        unique=False,
    )
    op.create_index(
        "ix_group_memberships_profile",
        "group_memberships",
        ["application_id", "profile_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_group_memberships_profile", table_name="group_memberships")
    op.drop_index("ix_group_memberships_group_created", table_name="group_memberships")
    op.drop_table("group_memberships")
    op.drop_index("uq_profiles_application_custom_id", table_name="profiles")
    op.drop_table("profiles")
    op.drop_index("uq_profile_groups_application_custom_id", table_name="profile_groups")
    op.drop_index(
        "ix_profile_groups_attributes",
        table_name="profile_groups",
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
    )
    op.drop_index("ix_profile_groups_application_created", table_name="profile_groups")
    op.drop_table("profile_groups")
    op.drop_table("custom_attributes")
    op.drop_index(op.f("ix_api_tokens_application_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("applications")
