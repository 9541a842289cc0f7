"""Every SQL statement of profiles."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Label,
    Row,
    Select,
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
from profile_groups.models import Profile

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

    async def delete(self, application_id: UUID, profile_id: UUID) -> None:
        """Delete the profile; its activity goes by ON DELETE CASCADE. Its memberships must be
        gone already (MembershipRepository.remove_profile), so every profile_count stays exact."""
        await self.session.execute(
            delete(Profile).where(
                Profile.application_id == application_id, Profile.id == profile_id
            )
        )

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
