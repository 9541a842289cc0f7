"""SQL of `group_evaluations`: the evaluation queue and its history in one table."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    any_,
    case,
    delete,
    func,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.groups.repositories.membership import DiffCounts
from profile_groups.kit.repository import count_of, uuid_array
from profile_groups.models import ProfileGroup
from profile_groups.models.segmentation import DynamicGroup, GroupEvaluation, GroupRuleset

E = GroupEvaluation


class EvaluationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def request(self, group_id: UUID, trigger: str) -> tuple[GroupEvaluation | None, bool]:
        """Queue an evaluation of the group, or join the one already queued (coalescing).

        Returns (the queued evaluation, whether it is new); (None, False) for a group that is not
        dynamic. The partial unique index makes "one queued row per group" hold under concurrency.
        """
        for _ in range(3):
            source = select(
                DynamicGroup.group_id,
                DynamicGroup.application_id,
                DynamicGroup.ruleset_id,
                literal(trigger, String()),
            ).where(DynamicGroup.group_id == group_id)
            stmt = (
                insert(E)
                .from_select(["group_id", "application_id", "ruleset_id", "trigger"], source)
                .on_conflict_do_nothing(
                    index_elements=[E.group_id], index_where=text("status = 'queued'")
                )
                .returning(E)
            )
            created = (await self.session.execute(stmt)).scalar_one_or_none()
            if created is not None:
                return created, True
            found = (
                await self.session.execute(
                    select(E).where(E.group_id == group_id, E.status == "queued")
                )
            ).scalar_one_or_none()
            if found is not None:
                return found, False
            has_rules = await self.session.get(DynamicGroup, group_id)
            if has_rules is None:
                return None, False
            # The queued row was claimed between the two statements: queue a new one.
        raise RuntimeError("could not queue an evaluation")  # pragma: no cover

    async def request_due(
        self, now: datetime, interval: timedelta
    ) -> list[tuple[UUID, UUID, UUID]]:
        """Queue every active dynamic group whose schedule is due:
        [(application_id, group_id, evaluation_id)].

        One statement: advance each due group's next_evaluation_at by the interval (fixed rate,
        without a burst of catch-up runs after downtime) and insert its queued evaluation, skipping
        groups that already have one queued.
        """
        due_next = DynamicGroup.next_evaluation_at + interval
        due = (
            update(DynamicGroup)
            .where(
                DynamicGroup.next_evaluation_at <= now,
                ProfileGroup.id == DynamicGroup.group_id,
                ProfileGroup.is_active.is_(True),
            )
            .values(
                next_evaluation_at=case(
                    (due_next > now, due_next), else_=literal(now + interval, DateTime(True))
                )
            )
            .returning(DynamicGroup.group_id, DynamicGroup.application_id, DynamicGroup.ruleset_id)
            .cte("due")
        )
        stmt = (
            insert(E)
            .from_select(
                ["group_id", "application_id", "ruleset_id", "trigger"],
                select(
                    due.c.group_id,
                    due.c.application_id,
                    due.c.ruleset_id,
                    literal("schedule", String()),
                ),
            )
            .on_conflict_do_nothing(
                index_elements=[E.group_id], index_where=text("status = 'queued'")
            )
            .returning(E.application_id, E.group_id, E.id)
        )
        return [
            (row.application_id, row.group_id, row.id) for row in await self.session.execute(stmt)
        ]

    async def stale_queued(self, before: datetime) -> list[tuple[UUID, UUID]]:
        """Queued evaluations older than `before` (their job may have been lost: re-enqueue)."""
        stmt = select(E.group_id, E.id).where(E.status == "queued", E.created_at < before)
        return [(row.group_id, row.id) for row in await self.session.execute(stmt)]

    async def fail_silent(self, before: datetime, error: str, due_at: datetime) -> list[UUID]:
        """Mark failed the running evaluations whose last heartbeat is older than `before` (their
        worker died or lost the database), and make their groups due at `due_at` (the tick's
        now), so the same tick queues them again. Returns the failed evaluations."""
        failed = (
            update(E)
            .where(E.status == "running", func.coalesce(E.heartbeat_at, E.started_at) < before)
            .values(
                status="failed",
                error=error,
                finished_at=func.now(),
                duration_ms=_ms_since(E.started_at),
            )
            .returning(E.group_id, E.id)
            .cte("failed")
        )
        due = (
            update(DynamicGroup)
            .where(DynamicGroup.group_id.in_(select(failed.c.group_id)))
            .values(next_evaluation_at=due_at)
            .execution_options(synchronize_session=False)
            .cte("due")
        )
        stmt = select(failed.c.id).add_cte(due)
        return list((await self.session.execute(stmt)).scalars())

    async def beat(self, evaluation_ids: Sequence[UUID]) -> None:
        """The heartbeat of running evaluations."""
        await self.session.execute(
            update(E)
            .where(E.id == any_(uuid_array(evaluation_ids)), E.status == "running")
            .values(heartbeat_at=func.now())
        )

    async def prune_history(self, before: datetime) -> int:
        stmt = delete(E).where(E.created_at < before, E.status.in_(("succeeded", "failed")))
        result = await self.session.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def claim(self, evaluation_id: UUID) -> GroupEvaluation | None:
        """queued -> running (committed by the caller so readers see it); None if not queued."""
        stmt = (
            update(E)
            .where(E.id == evaluation_id, E.status == "queued")
            .values(
                status="running",
                started_at=func.clock_timestamp(),
                heartbeat_at=func.clock_timestamp(),
            )
            .returning(E)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock_evaluation(self, evaluation_id: UUID) -> GroupEvaluation | None:
        stmt = select(E).where(E.id == evaluation_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def delete_evaluation(self, evaluation_id: UUID) -> None:
        await self.session.execute(delete(E).where(E.id == evaluation_id))

    async def finish(
        self,
        evaluation_id: UUID,
        ruleset_id: UUID,
        as_of: datetime,
        counts: DiffCounts,
    ) -> GroupEvaluation:
        stmt = (
            update(E)
            .where(E.id == evaluation_id)
            .values(
                status="succeeded",
                ruleset_id=ruleset_id,
                as_of=as_of,
                finished_at=func.clock_timestamp(),
                duration_ms=_ms_since(E.started_at),
                matched_count=counts.matched,
                added_count=counts.added,
                removed_count=counts.removed,
                error=None,
            )
            .returning(E)
        )
        return (await self.session.execute(stmt)).scalar_one()

    async def fail(self, evaluation_id: UUID, error: str, as_of: datetime | None) -> None:
        await self.session.execute(
            update(E)
            .where(E.id == evaluation_id, E.status.in_(("queued", "running")))
            .values(
                status="failed",
                error=error,
                as_of=as_of,
                started_at=func.coalesce(E.started_at, func.clock_timestamp()),
                finished_at=func.clock_timestamp(),
                duration_ms=func.coalesce(_ms_since(E.started_at), 0),
            )
        )

    def history_statement(self, group_id: UUID) -> Select[GroupEvaluation]:
        return select(E).where(E.group_id == group_id)

    async def count_history(self, group_id: UUID) -> int:
        return await count_of(self.session, E.group_id == group_id, frm=E)

    async def get_evaluation(self, evaluation_id: UUID) -> GroupEvaluation | None:
        return await self.session.get(E, evaluation_id)

    async def states(self, group_ids: Sequence[UUID]) -> list[Any]:
        """Per group: current ruleset, schedule and the facts its evaluation state derives from.

        Three LATERAL probes on (group_id, created_at) per group: the latest finished or running
        evaluation, a queued one, and the latest successful one.
        """
        d = DynamicGroup
        latest = (
            select(E.status, E.error)
            .where(E.group_id == d.group_id, E.status != "queued")
            .order_by(E.created_at.desc(), E.id.desc())
            .limit(1)
            .lateral("latest")
        )
        queued = (
            select(E.created_at)
            .where(E.group_id == d.group_id, E.status == "queued")
            .limit(1)
            .lateral("queued")
        )
        succeeded = (
            select(E.as_of)
            .where(E.group_id == d.group_id, E.status == "succeeded")
            .order_by(E.created_at.desc(), E.id.desc())
            .limit(1)
            .lateral("succeeded")
        )
        stmt = (
            select(
                d.group_id,
                d.next_evaluation_at,
                GroupRuleset.id.label("ruleset_id"),
                GroupRuleset.rule_tree,
                GroupRuleset.created_at.label("ruleset_created_at"),
                latest.c.status.label("latest_status"),
                latest.c.error.label("latest_error"),
                queued.c.created_at.label("queued_at"),
                succeeded.c.as_of.label("last_evaluated_at"),
            )
            .join(GroupRuleset, GroupRuleset.id == d.ruleset_id)
            .outerjoin(latest, true())
            .outerjoin(queued, true())
            .outerjoin(succeeded, true())
            .where(d.group_id == any_(uuid_array(group_ids)))
        )
        return list((await self.session.execute(stmt)).all())


def _ms_since(start: Any) -> ColumnElement[int]:
    elapsed = func.extract("epoch", func.clock_timestamp() - start) * 1000
    return func.round(elapsed).cast(Integer)
