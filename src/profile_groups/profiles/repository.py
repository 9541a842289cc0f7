"""Every SQL statement of profiles and custom attribute definitions."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Label,
    Row,
    Select,
    and_,
    any_,
    bindparam,
    column,
    delete,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import DateTime, String

from profile_groups.kit.repository import count_of, text_array, uuid_array, uuid_value
from profile_groups.models import CustomAttribute, GroupMembership, Profile, ProfileGroup

# The columns a profile is rendered from (RETURNING and SELECT alike).
PROFILE_COLUMNS = (
    Profile.id,
    Profile.custom_id,
    Profile.nickname,
    Profile.custom_attributes,
    Profile.created_at,
    Profile.updated_at,
)
# True when an upsert inserted the row rather than updating it (xmax is 0 for a fresh tuple).
INSERTED: Label[bool] = literal_column("(xmax = 0)", Boolean()).label("inserted")


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Reads ---------------------------------------------------------------------------------

    async def get(self, application_id: UUID, profile_id: UUID) -> Profile | None:
        return await self.session.get(Profile, (application_id, profile_id))

    async def get_by_custom_id(self, application_id: UUID, custom_id: str) -> Profile | None:
        stmt = select(Profile).where(
            Profile.application_id == application_id, Profile.custom_id == custom_id
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    def list_statement(self, application_id: UUID, custom_id: str | None) -> Select[Any]:
        stmt = select(*PROFILE_COLUMNS).where(Profile.application_id == application_id)
        if custom_id is not None:
            stmt = stmt.where(Profile.custom_id == custom_id)
        return stmt

    async def count(self, application_id: UUID, custom_id: str | None) -> int:
        where = [Profile.application_id == application_id]
        if custom_id is not None:
            where.append(Profile.custom_id == custom_id)
        return await count_of(self.session, *where, frm=Profile)

    # Writes --------------------------------------------------------------------------------

    async def insert(self, application_id: UUID, values: dict[str, Any]) -> Row[Any]:
        stmt = (
            insert(Profile)
            .values(application_id=application_id, **values)
            .returning(*PROFILE_COLUMNS)
        )
        return (await self.session.execute(stmt)).one()

    async def upsert(
        self, application_id: UUID, profile_id: UUID, values: dict[str, Any]
    ) -> Row[Any]:
        """Create-or-replace by id in one statement; `created_at` is kept unless given."""
        ins = insert(Profile).values(application_id=application_id, id=profile_id, **values)
        replaced: dict[str, Any] = {
            "custom_id": ins.excluded.custom_id,
            "nickname": ins.excluded.nickname,
            "custom_attributes": ins.excluded.custom_attributes,
            "updated_at": func.now(),
        }
        if "created_at" in values:
            replaced["created_at"] = ins.excluded.created_at
        stmt = ins.on_conflict_do_update(
            index_elements=[Profile.application_id, Profile.id], set_=replaced
        ).returning(*PROFILE_COLUMNS, INSERTED)
        return (await self.session.execute(stmt)).one()

    async def update(
        self,
        application_id: UUID,
        profile_id: UUID,
        values: dict[str, Any],
        set_attributes: dict[str, Any],
        remove_attributes: Sequence[str],
    ) -> Row[Any] | None:
        """Partial update in one statement; custom attributes are merged in SQL, so concurrent
        PATCHes of different keys never lose each other's writes."""
        attrs: Any = Profile.custom_attributes
        if set_attributes:
            attrs = attrs.op("||")(bindparam(None, set_attributes, type_=JSONB))
        if remove_attributes:
            attrs = attrs.op("-")(text_array(remove_attributes))
        stmt = (
            update(Profile)
            .where(Profile.application_id == application_id, Profile.id == profile_id)
            .values(**values, custom_attributes=attrs, updated_at=func.now())
            .returning(*PROFILE_COLUMNS)
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def delete(self, application_id: UUID, profile_id: UUID) -> bool:
        """Delete a profile, keeping every group's profile_count exact in the same transaction.

        Lock order (the same as member changes and evaluations take): the profile row first,
        which waits for in-flight membership inserts naming it and blocks new ones; then the
        groups it is in, FOR UPDATE in id order; then its memberships are deleted and the counts
        decremented in one statement. Only then the profile itself goes (its activity by FK
        cascade; no membership is left for the cascade to remove behind the counts' back).
        """
        locked = await self.session.execute(
            select(Profile.id)
            .where(Profile.application_id == application_id, Profile.id == profile_id)
            .with_for_update()
        )
        if locked.scalar_one_or_none() is None:
            return False
        in_groups = select(GroupMembership.group_id).where(
            GroupMembership.application_id == application_id,
            GroupMembership.profile_id == profile_id,
        )
        await self.session.execute(
            select(ProfileGroup.id)
            .where(ProfileGroup.id.in_(in_groups))
            .order_by(ProfileGroup.id)
            .with_for_update()
        )
        # A fresh snapshot now that the groups are locked: exactly the memberships that exist.
        gone = (
            delete(GroupMembership)
            .where(
                GroupMembership.application_id == application_id,
                GroupMembership.profile_id == profile_id,
            )
            .returning(GroupMembership.group_id)
            .cte("gone")
        )
        await self.session.execute(
            update(ProfileGroup)
            .where(ProfileGroup.id.in_(select(gone.c.group_id)))
            .values(profile_count=ProfileGroup.profile_count - 1)
        )
        await self.session.execute(
            delete(Profile).where(
                Profile.application_id == application_id, Profile.id == profile_id
            )
        )
        return True

    # Bulk ----------------------------------------------------------------------------------

    async def lock_for_bulk(
        self, application_id: UUID, ids: Sequence[UUID], custom_ids: Sequence[str]
    ) -> list[Row[Any]]:
        """The profiles named by `ids` or holding one of `custom_ids`, locked in id order (so
        concurrent bulk requests cannot deadlock) until the batch is written."""
        if not ids and not custom_ids:
            return []
        stmt = (
            select(*PROFILE_COLUMNS)
            .where(
                Profile.application_id == application_id,
                or_(
                    Profile.id == any_(uuid_array(ids)),
                    Profile.custom_id == any_(text_array(custom_ids)),
                ),
            )
            .order_by(Profile.id)
            .with_for_update()
        )
        return list((await self.session.execute(stmt)).all())

    async def bulk_upsert(self, application_id: UUID, rows: list[dict[str, Any]]) -> list[bool]:
        """Write every row in one INSERT ... SELECT FROM jsonb_to_recordset ... ON CONFLICT DO
        UPDATE; one JSON parameter keeps the statement text constant whatever the batch size.
        Each row carries its final values (merged by the service). Returns `inserted` per row."""
        if not rows:
            return []
        rs = (
            func.jsonb_to_recordset(bindparam(None, rows, type_=JSONB))
            .table_valued(
                column("id", PG_UUID(as_uuid=True)),
                column("custom_id", String()),
                column("nickname", String()),
                column("custom_attributes", JSONB()),
                column("created_at", DateTime(timezone=True)),
            )
            .render_derived(name="r", with_types=True)
        )
        ins = insert(Profile).from_select(
            ["application_id", "id", "custom_id", "nickname", "custom_attributes", "created_at"],
            select(
                uuid_value(application_id),
                rs.c.id,
                rs.c.custom_id,
                rs.c.nickname,
                func.coalesce(rs.c.custom_attributes, bindparam(None, {}, type_=JSONB)),
                func.coalesce(rs.c.created_at, func.now()),
            ),
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[Profile.application_id, Profile.id],
            set_={
                "custom_id": ins.excluded.custom_id,
                "nickname": ins.excluded.nickname,
                "custom_attributes": ins.excluded.custom_attributes,
                "created_at": ins.excluded.created_at,
                "updated_at": func.now(),
            },
        ).returning(INSERTED)
        return [bool(v) for v in (await self.session.execute(stmt)).scalars()]


class CustomAttributeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, application_id: UUID, key: str) -> CustomAttribute | None:
        return await self.session.get(CustomAttribute, (application_id, key))

    async def types_of(self, application_id: UUID, keys: Sequence[str]) -> dict[str, str]:
        """{key: data_type} of the defined ones among `keys`, in one query."""
        if not keys:
            return {}
        stmt = select(CustomAttribute.key, CustomAttribute.data_type).where(
            CustomAttribute.application_id == application_id,
            CustomAttribute.key == any_(text_array(keys)),
        )
        return {row.key: row.data_type for row in await self.session.execute(stmt)}

    def list_statement(self, application_id: UUID) -> Select[CustomAttribute]:
        return select(CustomAttribute).where(CustomAttribute.application_id == application_id)

    async def count(self, application_id: UUID) -> int:
        return await count_of(
            self.session, CustomAttribute.application_id == application_id, frm=CustomAttribute
        )

    async def insert(
        self, application_id: UUID, key: str, data_type: str, description: str
    ) -> CustomAttribute | None:
        """None when the key is already defined."""
        stmt = (
            insert(CustomAttribute)
            .values(
                application_id=application_id,
                key=key,
                data_type=data_type,
                description=description,
            )
            .on_conflict_do_nothing()
            .returning(CustomAttribute)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def update_description(
        self, application_id: UUID, key: str, description: str | None
    ) -> CustomAttribute | None:
        values: dict[str, Any] = {"updated_at": func.now()}
        if description is not None:
            values["description"] = description
        stmt = (
            update(CustomAttribute)
            .where(CustomAttribute.application_id == application_id, CustomAttribute.key == key)
            .values(**values)
            .returning(CustomAttribute)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def delete(self, application_id: UUID, key: str) -> bool:
        stmt = (
            delete(CustomAttribute)
            .where(CustomAttribute.application_id == application_id, CustomAttribute.key == key)
            .returning(CustomAttribute.key)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def strip_from_profiles(self, application_id: UUID, key: str) -> None:
        """Remove a deleted definition's values, so every stored value always matches a live
        definition's type (a key defined again with another type starts empty)."""
        await self.session.execute(
            update(Profile)
            .where(
                and_(
                    Profile.application_id == application_id,
                    Profile.custom_attributes.has_key(key),
                )
            )
            .values(custom_attributes=Profile.custom_attributes.op("-")(key))
        )
