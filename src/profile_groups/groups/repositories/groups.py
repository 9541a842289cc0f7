"""SQL of the `profile_groups` table itself (not its memberships or rules)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import like_escape
from profile_groups.models import ProfileGroup


@dataclass(frozen=True)
class GroupFilters:
    membership_type: str | None = None
    custom_id: str | None = None
    name: str | None = None
    # (key, value): both must match; (key, None): the key is present.
    attributes: Sequence[tuple[str, str | None]] = ()


class GroupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _visible(self, application_id: UUID) -> Select[ProfileGroup]:
        # An inactive group is invisible to the API (docs/groups.md).
        return select(ProfileGroup).where(
            ProfileGroup.application_id == application_id, ProfileGroup.is_active.is_(True)
        )

    async def get(
        self, application_id: UUID, group_id: UUID, *, for_update: bool = False
    ) -> ProfileGroup | None:
        stmt = self._visible(application_id).where(ProfileGroup.id == group_id)
        if for_update:
            # The group row lock of MembershipRepository's lock order.
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def get_by_custom_id(self, application_id: UUID, custom_id: str) -> ProfileGroup | None:
        stmt = self._visible(application_id).where(ProfileGroup.custom_id == custom_id)
        return (await self.session.scalars(stmt)).one_or_none()

    def list_statement(self, application_id: UUID, filters: GroupFilters) -> Select[ProfileGroup]:
        stmt = self._visible(application_id)
        if filters.membership_type is not None:
            stmt = stmt.where(ProfileGroup.membership_type == filters.membership_type)
        if filters.custom_id is not None:
            stmt = stmt.where(ProfileGroup.custom_id == filters.custom_id)
        if filters.name:
            pattern = f"%{like_escape(filters.name)}%"
            stmt = stmt.where(ProfileGroup.name.ilike(pattern, escape="\\"))
        for key, value in filters.attributes:
            # Containment on the GIN (jsonb_path_ops) index.
            wanted: dict[str, Any] = {"key": key} if value is None else {"key": key, "value": value}
            stmt = stmt.where(ProfileGroup.attributes.contains([wanted]))
        return stmt

    async def list_all(self, application_id: UUID, *, active: bool) -> Sequence[ProfileGroup]:
        """CLI: an application's active or inactive groups, oldest first (inactive ones are
        invisible to the API, so this is how a deactivated group is found)."""
        stmt = (
            select(ProfileGroup)
            .where(
                ProfileGroup.application_id == application_id, ProfileGroup.is_active.is_(active)
            )
            .order_by(ProfileGroup.created_at, ProfileGroup.id)
        )
        return (await self.session.scalars(stmt)).all()

    def add(self, group: ProfileGroup) -> ProfileGroup:
        self.session.add(group)
        return group

    async def set_active(self, group_id: UUID, active: bool) -> bool:
        stmt = (
            update(ProfileGroup)
            .where(ProfileGroup.id == group_id)
            .values(is_active=active, updated_at=func.now())
            .returning(ProfileGroup.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def delete(self, group: ProfileGroup) -> None:
        # Rulesets and evaluations go by ON DELETE CASCADE; memberships must be gone already
        # (MembershipRepository.remove_group).
        await self.session.execute(delete(ProfileGroup).where(ProfileGroup.id == group.id))

    def touch(self, group: ProfileGroup) -> None:
        group.updated_at = func.now()

    async def refresh(self, group: ProfileGroup) -> None:
        await self.session.refresh(group)
