"""Dynamic groups: rulesets, per-group schedule and the evaluation history (docs/segmentation.md).

A dynamic group's rules live beside the group (the group table stays the same for static and dynamic
groups): every rule change is a new immutable `GroupRuleset`; `DynamicGroup` points at the current
one and carries the schedule; `GroupEvaluation` is both the queue entry and the history.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from profile_groups.models.base import Base


class GroupRuleset(Base):
    """One version of a dynamic group's rule tree, stored as given (docs/segmentation.md)."""

    __tablename__ = "group_rulesets"

    id: Mapped[UUID] = mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))
    group_id: Mapped[UUID] = mapped_column(
        ForeignKey("profile_groups.id", ondelete="CASCADE"), index=True
    )
    application_id: Mapped[UUID]
    rule_tree: Mapped[dict[str, Any]]
    # Canonical attribute keys the tree reads: answers "which groups use custom attribute K"
    # through a GIN index instead of walking every stored tree.
    attribute_keys: Mapped[list[str]] = mapped_column(ARRAY(String(63)))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index("ix_group_rulesets_attribute_keys", "attribute_keys", postgresql_using="gin"),
    )


class DynamicGroup(Base):
    """The current ruleset and the schedule of one dynamic group."""

    __tablename__ = "dynamic_groups"

    group_id: Mapped[UUID] = mapped_column(
        ForeignKey("profile_groups.id", ondelete="CASCADE"), primary_key=True
    )
    application_id: Mapped[UUID]
    ruleset_id: Mapped[UUID] = mapped_column(ForeignKey("group_rulesets.id"))
    # When the schedule next enqueues the group; the worker's tick picks up every due group.
    next_evaluation_at: Mapped[datetime] = mapped_column(index=True)


class GroupEvaluation(Base):
    """One evaluation: queued, then running, then succeeded or failed (docs/segmentation.md).

    At most one `queued` row per group (a partial unique index): requests that arrive while one is
    queued are coalesced into it; one that arrives while another runs queues exactly one follow-up.
    """

    __tablename__ = "group_evaluations"

    id: Mapped[UUID] = mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))
    group_id: Mapped[UUID] = mapped_column(ForeignKey("profile_groups.id", ondelete="CASCADE"))
    application_id: Mapped[UUID]
    ruleset_id: Mapped[UUID] = mapped_column(
        ForeignKey("group_rulesets.id", ondelete="CASCADE"), index=True
    )
    trigger: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    as_of: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    matched_count: Mapped[int | None]
    added_count: Mapped[int | None]
    removed_count: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Written every few seconds while it runs; silence for a minute means it was interrupted.
    heartbeat_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("trigger IN ('schedule', 'rule_change', 'manual')", name="trigger"),
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
        # History, newest first, keyset-paginated; also the latest evaluation of a group.
        Index("ix_group_evaluations_group_created", "group_id", "created_at", "id"),
        Index(
            "uq_group_evaluations_queued",
            "group_id",
            unique=True,
            postgresql_where=text("status = 'queued'"),
        ),
        # The worker's tick sweeps queued and running rows (lost jobs, crashed workers).
        Index(
            "ix_group_evaluations_open",
            "status",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        # Pruning old history.
        Index("ix_group_evaluations_created", "created_at"),
    )


# Profiles whose attributes changed since the worker last applied them to dynamic groups. Rows are
# written by triggers on `profiles` and `profile_activity` (migration 0005), in the transaction
# of the change, and consumed by groups.incremental. No key: an append-only queue.
profile_changes = Table(
    "profile_changes",
    Base.metadata,
    Column("application_id", PG_UUID(as_uuid=True), nullable=False),
    Column("profile_id", PG_UUID(as_uuid=True), nullable=False),
    Column("changed_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)
