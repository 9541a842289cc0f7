"""dynamic groups: rulesets, schedule, evaluation history (SPEC §7)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 15:49:33.656337
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_rulesets",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("rule_tree", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("attribute_keys", postgresql.ARRAY(sa.String(length=63)), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["profile_groups.id"],
            name=op.f("fk_group_rulesets_group_id_profile_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_rulesets")),
    )
    op.create_index(
        "ix_group_rulesets_attribute_keys",
        "group_rulesets",
        ["attribute_keys"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        op.f("ix_group_rulesets_group_id"), "group_rulesets", ["group_id"], unique=False
    )
    op.create_table(
        "dynamic_groups",
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("ruleset_id", sa.UUID(), nullable=False),
        sa.Column("next_evaluation_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["profile_groups.id"],
            name=op.f("fk_dynamic_groups_group_id_profile_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ruleset_id"],
            ["group_rulesets.id"],
            name=op.f("fk_dynamic_groups_ruleset_id_group_rulesets"),
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_dynamic_groups")),
    )
    op.create_index(
        op.f("ix_dynamic_groups_next_evaluation_at"),
        "dynamic_groups",
        ["next_evaluation_at"],
        unique=False,
    )
    op.create_table(
        "group_evaluations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("ruleset_id", sa.UUID(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("matched_count", sa.Integer(), nullable=True),
        sa.Column("added_count", sa.Integer(), nullable=True),
        sa.Column("removed_count", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_group_evaluations_status"),
        ),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'rule_change', 'manual')",
            name=op.f("ck_group_evaluations_trigger"),
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["profile_groups.id"],
            name=op.f("fk_group_evaluations_group_id_profile_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ruleset_id"],
            ["group_rulesets.id"],
            name=op.f("fk_group_evaluations_ruleset_id_group_rulesets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_evaluations")),
    )
    op.create_index(
        "ix_group_evaluations_created", "group_evaluations", ["created_at"], unique=False
    )
    op.create_index(
        "ix_group_evaluations_group_created",
        "group_evaluations",
        ["group_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_group_evaluations_open",
        "group_evaluations",
        ["status", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_index(
        op.f("ix_group_evaluations_ruleset_id"), "group_evaluations", ["ruleset_id"], unique=False
    )
    op.create_index(
        "uq_group_evaluations_queued",
        "group_evaluations",
        ["group_id"],
        unique=True,
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_group_evaluations_queued",
        table_name="group_evaluations",
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.drop_index(op.f("ix_group_evaluations_ruleset_id"), table_name="group_evaluations")
    op.drop_index(
        "ix_group_evaluations_open",
        table_name="group_evaluations",
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.drop_index("ix_group_evaluations_group_created", table_name="group_evaluations")
    op.drop_index("ix_group_evaluations_created", table_name="group_evaluations")
    op.drop_table("group_evaluations")
    op.drop_index(op.f("ix_dynamic_groups_next_evaluation_at"), table_name="dynamic_groups")
    op.drop_table("dynamic_groups")
    op.drop_index(op.f("ix_group_rulesets_group_id"), table_name="group_rulesets")
    op.drop_index(
        "ix_group_rulesets_attribute_keys", table_name="group_rulesets", postgresql_using="gin"
    )
    op.drop_table("group_rulesets")
