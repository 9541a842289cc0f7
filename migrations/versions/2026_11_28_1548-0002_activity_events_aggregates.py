"""activity: raw events, per-profile aggregates, distinct leaderboards (SPEC §5.1-§5.3)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:48:53.119409
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value_num", sa.Numeric(), nullable=True),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("properties", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("client_event_id", sa.String(length=255), nullable=True),
        sa.Column(
            "accepted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["application_id", "profile_id"],
            ["profiles.application_id", "profiles.id"],
            name=op.f("fk_events_application_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("application_id", "profile_id", "seq", name=op.f("pk_events")),
    )
    op.create_index(
        "ix_events_application_occurred", "events", ["application_id", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_events_occurred_brin", "events", ["occurred_at"], unique=False, postgresql_using="brin"
    )
    op.create_index(
        "uq_events_application_client_event_id",
        "events",
        ["application_id", "client_event_id"],
        unique=True,
        postgresql_where=sa.text("client_event_id IS NOT NULL"),
    )
    op.create_table(
        "profile_activity",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("comments_posted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("comment_replies", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("comments_reported", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reactions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("polls_answered", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("social_added", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("social_removed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quests_started", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quests_completed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quests_failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quest_rewards_earned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quest_rewards_claimed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("streak_activities", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("streak_milestones", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("streak_resets", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tier_changes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tier_upgrades", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tier_downgrades", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rewards_earned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reward_actions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("leaderboard_views", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("leaderboards_ranked_on", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reward_earned_sum", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("reward_spent_sum", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_comment_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reaction_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_quest_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_quest_completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reward_earned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_streak_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_streak_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("longest_streak", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("streak_seq", sa.BigInteger(), nullable=True),
        sa.Column("streak_value", sa.Numeric(), nullable=True),
        sa.Column("consecutive_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_seq", sa.BigInteger(), nullable=True),
        sa.Column("consecutive_value", sa.Numeric(), nullable=True),
        sa.Column("periodic_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("periodic_seq", sa.BigInteger(), nullable=True),
        sa.Column("periodic_value", sa.Numeric(), nullable=True),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reset_seq", sa.BigInteger(), nullable=True),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("frozen_seq", sa.BigInteger(), nullable=True),
        sa.Column("unfrozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unfrozen_seq", sa.BigInteger(), nullable=True),
        sa.Column("tier_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tier_seq", sa.BigInteger(), nullable=True),
        sa.Column("tier_name", sa.Text(), nullable=True),
        sa.Column("tier_rank", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["application_id", "profile_id"],
            ["profiles.application_id", "profiles.id"],
            name=op.f("fk_profile_activity_application_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("application_id", "profile_id", name=op.f("pk_profile_activity")),
        postgresql_with={"fillfactor": 80},
    )
    op.create_table(
        "profile_leaderboards",
        sa.Column("application_id", sa.UUID(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column("leaderboard_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id", "profile_id"],
            ["profiles.application_id", "profiles.id"],
            name=op.f("fk_profile_leaderboards_application_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "application_id", "profile_id", "leaderboard_id", name=op.f("pk_profile_leaderboards")
        ),
    )


def downgrade() -> None:
    op.drop_table("profile_leaderboards")
    op.drop_table("profile_activity")
    op.drop_index(
        "uq_events_application_client_event_id",
        table_name="events",
        postgresql_where=sa.text("client_event_id IS NOT NULL"),
    )
    op.drop_index("ix_events_occurred_brin", table_name="events", postgresql_using="brin")
    op.drop_index("ix_events_application_occurred", table_name="events")
    op.drop_table("events")
