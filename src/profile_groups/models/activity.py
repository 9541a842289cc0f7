"""Activity storage: raw events, per-profile aggregates, distinct leaderboards (docs/activity.md).

Rules over millions of profiles read the aggregates in one pass (one row per active profile, kept
current in the same transaction as the insert); only rolling windows (`window_days`) read raw
events.
Raw events are pruned after EVENT_RETENTION_DAYS; the aggregates, and the distinct leaderboard ids,
keep counting what was pruned.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ForeignKeyConstraint,
    Identity,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from profile_groups.models.base import Base


def _profile_fk() -> ForeignKeyConstraint:
    # A deleted profile's activity goes with it (docs/profiles.md).
    return ForeignKeyConstraint(
        ["application_id", "profile_id"],
        ["profiles.application_id", "profiles.id"],
        ondelete="CASCADE",
    )


class Event(Base):
    """One accepted event. `seq` is the accept order: ties on `occurred_at` go to the later one."""

    __tablename__ = "events"

    application_id: Mapped[UUID] = mapped_column(primary_key=True)
    profile_id: Mapped[UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    # An event's `value`, by kind: streak length / reward amount, or the tier name.
    value_num: Mapped[Decimal | None] = mapped_column(Numeric)
    value_text: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any] | None]
    client_event_id: Mapped[str | None] = mapped_column(String(255))
    accepted_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # A profile's events by its key, carrying what windowed counts read (time and type): an
        # incremental update counts a few profiles' windows from the index alone (an index-only
        # scan, once vacuum has marked the pages all-visible), not from a random heap page per
        # profile (migration 0012).
        PrimaryKeyConstraint(
            "application_id",
            "profile_id",
            "seq",
            name="pk_events",
            postgresql_include=["occurred_at", "type"],
        ),
        _profile_fk(),
        # Idempotency: a client id is accepted once per application.
        Index(
            "uq_events_application_client_event_id",
            "application_id",
            "client_event_id",
            unique=True,
            postgresql_where=text("client_event_id IS NOT NULL"),
        ),
        # Rolling windows: one application's events since a cutoff.
        Index("ix_events_application_occurred", "application_id", "occurred_at"),
        # Pruning by age across applications; BRIN is tiny and cheap to maintain on insert because
        # events mostly arrive in time order.
        Index("ix_events_occurred_brin", "occurred_at", postgresql_using="brin"),
    )


class ProfileActivity(Base):
    """All-time aggregates of one profile's events (one row once it has any event).

    "Latest" values carry their (time, seq) so a late-arriving older event never overwrites them:
    every column is an order-independent fold (count, sum, min, max, arg-max by (time, seq)).
    """

    __tablename__ = "profile_activity"

    application_id: Mapped[UUID] = mapped_column(primary_key=True)
    profile_id: Mapped[UUID] = mapped_column(primary_key=True)

    # Counts per event type (and per tier direction).
    comments_posted: Mapped[int] = mapped_column(BigInteger, server_default="0")
    comment_replies: Mapped[int] = mapped_column(BigInteger, server_default="0")
    comments_reported: Mapped[int] = mapped_column(BigInteger, server_default="0")
    reactions: Mapped[int] = mapped_column(BigInteger, server_default="0")
    polls_answered: Mapped[int] = mapped_column(BigInteger, server_default="0")
    social_added: Mapped[int] = mapped_column(BigInteger, server_default="0")
    social_removed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    quests_started: Mapped[int] = mapped_column(BigInteger, server_default="0")
    quests_completed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    quests_failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    quest_rewards_earned: Mapped[int] = mapped_column(BigInteger, server_default="0")
    quest_rewards_claimed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    streak_activities: Mapped[int] = mapped_column(BigInteger, server_default="0")
    streak_milestones: Mapped[int] = mapped_column(BigInteger, server_default="0")
    streak_resets: Mapped[int] = mapped_column(BigInteger, server_default="0")
    tier_changes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    tier_upgrades: Mapped[int] = mapped_column(BigInteger, server_default="0")
    tier_downgrades: Mapped[int] = mapped_column(BigInteger, server_default="0")
    rewards_earned: Mapped[int] = mapped_column(BigInteger, server_default="0")
    reward_actions: Mapped[int] = mapped_column(BigInteger, server_default="0")
    leaderboard_views: Mapped[int] = mapped_column(BigInteger, server_default="0")
    leaderboards_ranked_on: Mapped[int] = mapped_column(BigInteger, server_default="0")

    # Sums of reward amounts.
    reward_earned_sum: Mapped[Decimal] = mapped_column(Numeric, server_default="0")
    reward_spent_sum: Mapped[Decimal] = mapped_column(Numeric, server_default="0")

    # Latest / earliest times.
    last_event_at: Mapped[datetime | None]
    last_comment_at: Mapped[datetime | None]
    last_reaction_at: Mapped[datetime | None]
    last_poll_at: Mapped[datetime | None]
    last_quest_started_at: Mapped[datetime | None]
    last_quest_completed_at: Mapped[datetime | None]
    last_reward_earned_at: Mapped[datetime | None]
    first_streak_at: Mapped[datetime | None]
    last_streak_at: Mapped[datetime | None]

    # Streaks: the latest activity of any type / per streak_type, with its value.
    longest_streak: Mapped[Decimal] = mapped_column(Numeric, server_default="0")
    streak_seq: Mapped[int | None] = mapped_column(BigInteger)
    streak_value: Mapped[Decimal | None] = mapped_column(Numeric)
    consecutive_at: Mapped[datetime | None]
    consecutive_seq: Mapped[int | None] = mapped_column(BigInteger)
    consecutive_value: Mapped[Decimal | None] = mapped_column(Numeric)
    periodic_at: Mapped[datetime | None]
    periodic_seq: Mapped[int | None] = mapped_column(BigInteger)
    periodic_value: Mapped[Decimal | None] = mapped_column(Numeric)
    reset_at: Mapped[datetime | None]
    reset_seq: Mapped[int | None] = mapped_column(BigInteger)
    frozen_at: Mapped[datetime | None]
    frozen_seq: Mapped[int | None] = mapped_column(BigInteger)
    unfrozen_at: Mapped[datetime | None]
    unfrozen_seq: Mapped[int | None] = mapped_column(BigInteger)

    # Tiers: the latest tier_changed.
    tier_at: Mapped[datetime | None]
    tier_seq: Mapped[int | None] = mapped_column(BigInteger)
    tier_name: Mapped[str | None] = mapped_column(Text)
    tier_rank: Mapped[int | None] = mapped_column(BigInteger)

    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    # Rows are updated by every batch that touches the profile: free space on each page lets
    # those updates stay on the page (HOT), without a new primary-key index entry.
    __table_args__ = (_profile_fk(), {"postgresql_with": {"fillfactor": 80}})


class ProfileLeaderboard(Base):
    """Distinct leaderboards a profile was ranked on; survives pruning of raw events."""

    __tablename__ = "profile_leaderboards"

    application_id: Mapped[UUID] = mapped_column(primary_key=True)
    profile_id: Mapped[UUID] = mapped_column(primary_key=True)
    leaderboard_id: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (_profile_fk(),)
