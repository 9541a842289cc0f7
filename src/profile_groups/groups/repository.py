"""Every SQL statement of profile groups and their static members."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Select, any_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import count_of, like_escape, text_array, uuid_array, uuid_value
from profile_groups.models import GroupMembership, Profile, ProfileGroup


class GroupFilters:
    def __init__(
        self,
        membership_type: str | None = None,
        custom_id: str | None = None,
        name: str | None = None,
        attributes: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        self.membership_type = membership_type
        self.custom_id = custom_id
        self.name = name
        self.attributes = attributes


class GroupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Groups -------------------------------------------------------------------------------

    def _visible(self, application_id: UUID) -> Select[ProfileGroup]:
        # An inactive group is invisible to the API (SPEC §6.2).
        return select(ProfileGroup).where(
            ProfileGroup.application_id == application_id, ProfileGroup.is_active.is_(True)
        )

    async def get(
        self, application_id: UUID, group_id: UUID, *, for_update: bool = False
    ) -> ProfileGroup | None:
        stmt = self._visible(application_id).where(ProfileGroup.id == group_id)
        if for_update:
            # Serialises member changes and evaluations of one group, so profile_count stays
            # exact and concurrent requests cannot deadlock on each other's membership rows.
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def get_any(self, group_id: UUID) -> ProfileGroup | None:
        """Active or not: for the CLI, which may bring an inactive group back."""
        return await self.session.get(ProfileGroup, group_id)

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

    async def add(self, group: ProfileGroup) -> ProfileGroup:
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
        await self.session.execute(delete(ProfileGroup).where(ProfileGroup.id == group.id))

    def touch(self, group: ProfileGroup) -> None:
        group.updated_at = func.now()

    async def refresh(self, group: ProfileGroup) -> None:
        await self.session.refresh(group)

    # Members ------------------------------------------------------------------------------

    async def resolve_profiles(
        self, application_id: UUID, *, ids: Sequence[UUID] = (), custom_ids: Sequence[str] = ()
    ) -> list[tuple[UUID, str | None]]:
        """(id, custom_id) of the application's profiles among `ids` or `custom_ids`."""
        where = (
            Profile.id == any_(uuid_array(ids))
            if ids
            else Profile.custom_id == any_(text_array(custom_ids))
        )
        stmt = select(Profile.id, Profile.custom_id).where(
            Profile.application_id == application_id, where
        )
        return [(row.id, row.custom_id) for row in await self.session.execute(stmt)]

    async def insert_members(
        self, application_id: UUID, group_id: UUID, profile_ids: Sequence[UUID]
    ) -> set[UUID]:
        """Insert memberships in one statement; returns the ids that were not members yet."""
        if not profile_ids:
            return set()
        # Sorted, so concurrent inserts take row locks in one order.
        pid = func.unnest(uuid_array(sorted(profile_ids))).column_valued("pid")
        stmt = (
            insert(GroupMembership)
            .from_select(
                ["group_id", "profile_id", "application_id"],
                select(uuid_value(group_id), pid, uuid_value(application_id)),
            )
            .on_conflict_do_nothing()
            .returning(GroupMembership.profile_id)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def delete_members(self, group_id: UUID, profile_ids: Sequence[UUID]) -> int:
        if not profile_ids:
            return 0
        stmt = (
            delete(GroupMembership)
            .where(
                GroupMembership.group_id == group_id,
                GroupMembership.profile_id == any_(uuid_array(profile_ids)),
            )
            .returning(GroupMembership.profile_id)
        )
        return len((await self.session.execute(stmt)).all())

    async def add_to_count(self, group_id: UUID, delta: int) -> None:
        if delta:
            await self.session.execute(
                update(ProfileGroup)
                .where(ProfileGroup.id == group_id)
                .values(profile_count=ProfileGroup.profile_count + delta)
            )

    def members_statement(self, group_id: UUID) -> Select[*tuple[Any, ...]]:
        return (
            select(
                Profile.id,
                Profile.nickname,
                Profile.custom_id,
                GroupMembership.created_at.label("membership_created_at"),
            )
            .join(
                Profile,
                (Profile.application_id == GroupMembership.application_id)
                & (Profile.id == GroupMembership.profile_id),
            )
            .where(GroupMembership.group_id == group_id)
        )

    async def get_member(self, group_id: UUID, profile_id: UUID) -> Any | None:
        stmt = self.members_statement(group_id).where(GroupMembership.profile_id == profile_id)
        return (await self.session.execute(stmt)).one_or_none()

    def profile_groups_statement(
        self, application_id: UUID, profile_id: UUID
    ) -> Select[*tuple[Any, ...]]:
        return (
            select(
                ProfileGroup.id.label("group_id"),
                ProfileGroup.name.label("group_name"),
                ProfileGroup.profile_count,
                ProfileGroup.is_active,
                ProfileGroup.created_at,
                ProfileGroup.custom_id,
                ProfileGroup.membership_type,
                GroupMembership.created_at.label("membership_created_at"),
            )
            .join(ProfileGroup, ProfileGroup.id == GroupMembership.group_id)
            .where(
                GroupMembership.application_id == application_id,
                GroupMembership.profile_id == profile_id,
                ProfileGroup.is_active.is_(True),
            )
        )

    async def count_rows(self, stmt: Select[*tuple[Any, ...]]) -> int:
        return await count_of(self.session, frm=stmt.subquery())
