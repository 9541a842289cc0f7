"""SQL of a dynamic group's rules: `group_rulesets` (every version, immutable) and
`dynamic_groups` (the current version and the schedule)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.models import ProfileGroup
from profile_groups.models.segmentation import DynamicGroup, GroupRuleset


@dataclass(frozen=True)
class CurrentRuleset:
    group: ProfileGroup
    ruleset_id: UUID
    rule_tree: dict[str, Any]


class RulesetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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

    async def active_of(
        self, application_id: UUID, group_ids: Sequence[UUID] | None = None
    ) -> list[CurrentRuleset]:
        """The application's active dynamic groups (or those among `group_ids`) and their
        current rules, in id order (no lock)."""
        where = [
            ProfileGroup.application_id == application_id,
            ProfileGroup.is_active.is_(True),
            ProfileGroup.membership_type == "dynamic",
        ]
        if group_ids is not None:
            where.append(ProfileGroup.id.in_(sorted(group_ids)))
        stmt = (
            select(ProfileGroup, GroupRuleset.id, GroupRuleset.rule_tree)
            .join(DynamicGroup, DynamicGroup.group_id == ProfileGroup.id)
            .join(GroupRuleset, GroupRuleset.id == DynamicGroup.ruleset_id)
            .where(*where)
            .order_by(ProfileGroup.id)
        )
        return [CurrentRuleset(g, rid, tree) for g, rid, tree in await self.session.execute(stmt)]

    async def lock_groups(self, group_ids: Sequence[UUID]) -> set[UUID]:
        """Lock the rows of those groups that are still active and dynamic (FOR NO KEY UPDATE,
        in id order), skipping any another transaction holds: returns the ids locked."""
        stmt = (
            select(ProfileGroup.id)
            .where(
                ProfileGroup.id.in_(sorted(group_ids)),
                ProfileGroup.is_active.is_(True),
                ProfileGroup.membership_type == "dynamic",
            )
            .order_by(ProfileGroup.id)
            .with_for_update(key_share=True, skip_locked=True)
        )
        return set((await self.session.execute(stmt)).scalars())
