"""SQL of the operational endpoints: the migration revision and the domain metrics that only the
database knows (what the worker did), read at scrape time (docs/operations.md).

Every metric query is bounded whatever the size of the tables: it reads a partial index, an index
range of a recent window, or a capped prefix of a queue, never a whole big table.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from profile_groups.models import ProfileGroup
from profile_groups.models.changes import membership_changes
from profile_groups.models.segmentation import DynamicGroup, GroupEvaluation, profile_changes

E = GroupEvaluation

# The freshness queue is read up to this many rows: its depth is exact below the cap and the lag
# is that of the oldest row among the ones the worker takes next (both read in heap order).
CHANGES_CAP = 10_000
# At most this many recent evaluations are summarised per scrape.
RECENT_CAP = 100_000
DUE_CAP = 10_000
# Membership changes summarised per scrape, newest first.
MEMBERSHIP_CHANGES_CAP = 100_000


async def current_revision(conn: AsyncConnection) -> str | None:
    result = await conn.execute(text("SELECT version_num FROM alembic_version"))
    return result.scalar_one_or_none()


@dataclass(frozen=True)
class OpenEvaluations:
    status: str  # queued | running
    count: int
    oldest_created_at: datetime


@dataclass(frozen=True)
class RecentEvaluations:
    """Evaluations of one final status finished within the window."""

    status: str  # succeeded | failed
    count: int
    matched: int
    added: int
    removed: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class DueGroups:
    count: int  # capped at DUE_CAP
    oldest_due_at: datetime | None


@dataclass(frozen=True)
class PendingChanges:
    count: int  # capped at CHANGES_CAP
    oldest_changed_at: datetime | None


class MetricsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def bound(self, timeout_ms: int) -> None:
        """Bound every statement of this (scrape's) transaction: a slow one fails the collector,
        never the scrape."""
        await self.session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))

    async def now(self) -> datetime:
        value: datetime = (await self.session.execute(select(func.now()))).scalar_one()
        return value

    async def open_evaluations(self) -> list[OpenEvaluations]:
        # The partial index ix_group_evaluations_open: at most two rows per group.
        stmt = (
            select(E.status, func.count(), func.min(E.created_at))
            .where(E.status.in_(("queued", "running")))
            .group_by(E.status)
        )
        return [OpenEvaluations(*row) for row in await self.session.execute(stmt)]

    async def recent_evaluations(
        self, now: datetime, window: timedelta, job_timeout: timedelta
    ) -> list[RecentEvaluations]:
        """Evaluations finished in (now - window, now], by status. Candidates come from the index
        on created_at: one finished in the window was created at most a job timeout earlier."""
        recent = (
            select(
                E.status,
                E.finished_at,
                E.duration_ms,
                E.matched_count,
                E.added_count,
                E.removed_count,
            )
            .where(E.created_at >= now - window - job_timeout)
            .order_by(E.created_at.desc())
            .limit(RECENT_CAP)
            .subquery()
        )
        r = recent.c
        stmt = (
            select(
                r.status,
                func.count(),
                func.coalesce(func.sum(r.matched_count), 0),
                func.coalesce(func.sum(r.added_count), 0),
                func.coalesce(func.sum(r.removed_count), 0),
                func.percentile_cont(0.5).within_group(r.duration_ms),
                func.percentile_cont(0.95).within_group(r.duration_ms),
                func.max(r.duration_ms),
            )
            .where(r.status.in_(("succeeded", "failed")), r.finished_at > now - window)
            .group_by(r.status)
        )
        return [
            RecentEvaluations(
                status,
                count,
                int(matched),
                int(added),
                int(removed),
                None if p50 is None else float(p50),
                None if p95 is None else float(p95),
                None if top is None else float(top),
            )
            for status, count, matched, added, removed, p50, p95, top in await self.session.execute(
                stmt
            )
        ]

    async def due_groups(self, now: datetime) -> DueGroups:
        """Active dynamic groups whose scheduled evaluation is due (the index on
        next_evaluation_at; the scheduler's tick normally leaves none older than a few seconds)."""
        due = (
            select(DynamicGroup.next_evaluation_at)
            .join(ProfileGroup, ProfileGroup.id == DynamicGroup.group_id)
            .where(DynamicGroup.next_evaluation_at <= now, ProfileGroup.is_active.is_(True))
            .order_by(DynamicGroup.next_evaluation_at)
            .limit(DUE_CAP)
            .subquery()
        )
        count, oldest = (
            await self.session.execute(select(func.count(), func.min(due.c.next_evaluation_at)))
        ).one()
        return DueGroups(count, oldest)

    async def pending_changes(self) -> PendingChanges:
        """The queue of profile changes not yet applied to dynamic groups (no index: the worker
        consumes it in heap order, so a capped prefix in heap order is what it takes next)."""
        head = select(profile_changes.c.changed_at).limit(CHANGES_CAP).subquery()
        count, oldest = (
            await self.session.execute(select(func.count(), func.min(head.c.changed_at)))
        ).one()
        return PendingChanges(count, oldest)

    async def recent_membership_changes(
        self, now: datetime, window: timedelta
    ) -> list[tuple[str, str, int]]:
        """[(change, reason, count)] of the change log within the window: the BRIN index on
        occurred_at reads only the recent block ranges, and at most MEMBERSHIP_CHANGES_CAP rows."""
        mc = membership_changes.c
        recent = (
            select(mc.change, mc.reason)
            .where(mc.occurred_at > now - window)
            .limit(MEMBERSHIP_CHANGES_CAP)
            .subquery()
        )
        stmt = select(recent.c.change, recent.c.reason, func.count()).group_by(
            recent.c.change, recent.c.reason
        )
        return [
            (change, reason, count) for change, reason, count in await self.session.execute(stmt)
        ]
