"""Every SQL statement of dynamic groups: rulesets, the evaluation queue and history, the diff."""

from collections.abc import Sequence
from dataclasses import dataclass
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
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes.expressions import AttributeContext
from profile_groups.kit.repository import count_of, set_local, uuid_array, uuid_value
from profile_groups.models import GroupMembership, ProfileGroup
from profile_groups.models.segmentation import DynamicGroup, GroupEvaluation, GroupRuleset

E = GroupEvaluation


@dataclass(frozen=True)
class DiffCounts:
    matched: int
    added: int
    removed: int


@dataclass(frozen=True)
class CurrentRuleset:
    group: ProfileGroup
    ruleset_id: UUID
    rule_tree: dict[str, Any]


class SegmentationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Rulesets and schedule -----------------------------------------------------------------

    async def add_ruleset(
        self, group: ProfileGroup, rule_tree: dict[str, Any], keys: Sequence[str]
    ) -> GroupRuleset:
        ruleset = GroupRuleset(
            group_id=group.id,
            application_id=group.application_id,
            rule_tree=rule_tree,
            attribute_keys=list(keys),
        )
        self.session.add(ruleset)
        await self.session.flush()
        await self.session.refresh(ruleset)
        return ruleset

    async def point_at(self, group: ProfileGroup, ruleset_id: UUID, next_at: datetime) -> None:
        stmt = insert(DynamicGroup).values(
            group_id=group.id,
            application_id=group.application_id,
            ruleset_id=ruleset_id,
            next_evaluation_at=next_at,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[DynamicGroup.group_id],
            set_={"ruleset_id": stmt.excluded.ruleset_id},
        )
        await self.session.execute(stmt)

    async def groups_using(self, application_id: UUID, key: str) -> list[tuple[UUID, str]]:
        """Active dynamic groups whose current rules read attribute `key` (GIN on the keys)."""
        stmt = (
            select(ProfileGroup.id, ProfileGroup.name)
            .join(DynamicGroup, DynamicGroup.group_id == ProfileGroup.id)
            .join(GroupRuleset, GroupRuleset.id == DynamicGroup.ruleset_id)
            .where(
                ProfileGroup.application_id == application_id,
                ProfileGroup.is_active.is_(True),
                GroupRuleset.attribute_keys.contains(
                    bindparam(None, [key], type_=GroupRuleset.attribute_keys.type)
                ),
            )
            .order_by(ProfileGroup.created_at, ProfileGroup.id)
        )
        return [(row.id, row.name) for row in await self.session.execute(stmt)]

    # The queue -----------------------------------------------------------------------------

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

    async def request_due(self, now: datetime, interval: timedelta) -> list[tuple[UUID, UUID]]:
        """Queue every active dynamic group whose schedule is due: [(group_id, evaluation_id)].

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
            .returning(E.group_id, E.id)
        )
        return [(row.group_id, row.id) for row in await self.session.execute(stmt)]

    async def stale_queued(self, before: datetime) -> list[tuple[UUID, UUID]]:
        """Queued evaluations older than `before` (their job may have been lost: re-enqueue)."""
        stmt = select(E.group_id, E.id).where(E.status == "queued", E.created_at < before)
        return [(row.group_id, row.id) for row in await self.session.execute(stmt)]

    async def fail_lost(self, before: datetime, error: str) -> int:
        """Mark failed the running evaluations whose worker is gone.

        A live evaluation holds a row lock on its evaluation row for its whole transaction, so
        SKIP LOCKED leaves those alone however long they run.
        """
        lost = (
            select(E.id)
            .where(E.status == "running", E.started_at < before)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(E)
            .where(E.id.in_(lost))
            .values(
                status="failed",
                error=error,
                finished_at=func.now(),
                duration_ms=_ms_since(E.started_at),
            )
        )
        result = await self.session.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def prune_history(self, before: datetime) -> int:
        stmt = delete(E).where(E.created_at < before, E.status.in_(("succeeded", "failed")))
        result = await self.session.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def claim(self, evaluation_id: UUID) -> GroupEvaluation | None:
        """queued -> running (committed by the caller so readers see it); None if not queued."""
        stmt = (
            update(E)
            .where(E.id == evaluation_id, E.status == "queued")
            .values(status="running", started_at=func.clock_timestamp())
            .returning(E)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock_evaluation(self, evaluation_id: UUID) -> GroupEvaluation | None:
        stmt = select(E).where(E.id == evaluation_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock_current(self, group_id: UUID) -> CurrentRuleset | None:
        """Lock the group row (serialising evaluations and member changes of one group) and read
        its current rules. None when the group is gone, inactive or not dynamic."""
        group = (
            await self.session.execute(
                select(ProfileGroup)
                .where(ProfileGroup.id == group_id)
                # NO KEY UPDATE: conflicts with other evaluations and with the group's
                # PATCH/DELETE (FOR UPDATE), not with inserts that only reference the group.
                .with_for_update(key_share=True)
            )
        ).scalar_one_or_none()
        if group is None or not group.is_active or group.membership_type != "dynamic":
            return None
        row = (
            await self.session.execute(
                select(GroupRuleset.id, GroupRuleset.rule_tree)
                .join(DynamicGroup, DynamicGroup.ruleset_id == GroupRuleset.id)
                .where(DynamicGroup.group_id == group_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return CurrentRuleset(group, row.id, row.rule_tree)

    async def delete_evaluation(self, evaluation_id: UUID) -> None:
        await self.session.execute(delete(E).where(E.id == evaluation_id))

    async def set_statement_timeout(self, timeout_ms: int) -> None:
        """SET LOCAL statement_timeout, with the value as a bound parameter (0 = none)."""
        await self.set_local("statement_timeout", str(int(timeout_ms)))

    async def set_local(self, name: str, value: str) -> None:
        await set_local(self.session, name, value)

    async def clock(self) -> datetime:
        value: datetime = (await self.session.execute(select(func.clock_timestamp()))).scalar_one()
        return value

    async def apply_diff(
        self,
        group: ProfileGroup,
        ctx: AttributeContext,
        condition: ColumnElement[bool],
        as_of: datetime,
    ) -> DiffCounts:
        """Replace the group's membership by the profiles matching `condition`, in ONE statement.

        The matching set is computed once (a materialized CTE) and FULL JOINed with the group's
        current members: that join (hash or merge, never a nested loop) yields exactly the
        profiles to add and to remove. Memberships that no longer match are deleted, new ones
        inserted with created_at = as_of, and those that stay are not touched, so they keep
        their created_at. profile_count is set to the matched count in the same transaction.

        The inserts read only the diff, never group_memberships itself: a NOT EXISTS probe of the
        table being inserted into can be planned as a per-row scan that also reads every row the
        statement has inserted so far (quadratic on a first evaluation).
        """
        gm = GroupMembership
        matching = ctx.select(ctx.profile.id.label("profile_id")).where(condition)
        matched = matching.cte("matched").prefix_with("MATERIALIZED")
        current = (
            select(gm.profile_id)
            .where(gm.group_id == group.id)
            .cte("current_members")
            .prefix_with("MATERIALIZED")
        )
        m, c = matched.c.profile_id, current.c.profile_id
        diff = (
            select(func.coalesce(m, c).label("profile_id"), c.is_(None).label("is_new"))
            .select_from(matched.join(current, c == m, full=True))
            .where(or_(m.is_(None), c.is_(None)))
            .cte("diff")
            .prefix_with("MATERIALIZED")
        )
        removed = (
            delete(gm)
            .where(
                gm.group_id == group.id,
                gm.profile_id == diff.c.profile_id,
                diff.c.is_new.is_(False),
            )
            .returning(gm.profile_id)
            .cte("removed")
        )
        added = (
            insert(gm)
            .from_select(
                ["group_id", "profile_id", "application_id", "created_at"],
                select(
                    uuid_value(group.id),
                    diff.c.profile_id,
                    uuid_value(group.application_id),
                    literal(as_of, DateTime(timezone=True)),
                ).where(diff.c.is_new.is_(True)),
            )
            .on_conflict_do_nothing()
            .returning(gm.profile_id)
            .cte("added")
        )
        stmt = select(
            select(func.count()).select_from(matched).scalar_subquery().label("matched"),
            select(func.count()).select_from(added).scalar_subquery().label("added"),
            select(func.count()).select_from(removed).scalar_subquery().label("removed"),
        )
        row = (await self.session.execute(stmt)).one()
        counts = DiffCounts(int(row.matched), int(row.added), int(row.removed))
        await self.session.execute(
            update(ProfileGroup)
            .where(ProfileGroup.id == group.id)
            .values(profile_count=counts.matched)
        )
        return counts

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

    # Reading -------------------------------------------------------------------------------

    def history_statement(self, group_id: UUID) -> Select[GroupEvaluation]:
        return select(E).where(E.group_id == group_id)

    async def count_history(self, group_id: UUID) -> int:
        return await count_of(self.session, E.group_id == group_id, frm=E)

    async def get_evaluation(self, evaluation_id: UUID) -> GroupEvaluation | None:
        return await self.session.get(E, evaluation_id)

    async def views(self, group_ids: Sequence[UUID]) -> list[Any]:
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

    # Preview -------------------------------------------------------------------------------

    async def preview(
        self, ctx: AttributeContext, condition: ColumnElement[bool], sample_size: int
    ) -> tuple[int, list[Any]]:
        """Count of the profiles matching `condition` and a sample, newest profiles first."""
        p = ctx.profile
        if sample_size == 0:
            stmt = ctx.select(func.count()).where(condition)
            return int((await self.session.execute(stmt)).scalar_one()), []
        # One pass: the window count sees every matching row before LIMIT keeps the sample.
        stmt = (
            ctx.select(p.id, p.nickname, p.custom_id, func.count().over().label("total"))
            .where(condition)
            .order_by(p.created_at.desc(), p.id.desc())
            .limit(bindparam(None, sample_size, type_=Integer()))
        )
        rows = list((await self.session.execute(stmt)).all())
        return (int(rows[0].total) if rows else 0), rows


def _ms_since(start: Any) -> ColumnElement[int]:
    elapsed = func.extract("epoch", func.clock_timestamp() - start) * 1000
    return func.round(elapsed).cast(Integer)
