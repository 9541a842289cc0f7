"""Every SQL statement of the attributes feature: custom attribute definitions, the rules that
read one, and one profile's values through the shared AttributeContext."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, any_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes.expressions import AttributeContext
from profile_groups.attributes.registry import (
    DATA_TYPES,
    AttributeDef,
    custom_attribute_def,
)
from profile_groups.kit.repository import count_of, text_array
from profile_groups.models import CustomAttribute, Profile, ProfileGroup
from profile_groups.models.segmentation import DynamicGroup, GroupRuleset


class CustomAttributeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def definitions(self, application_id: UUID) -> dict[str, AttributeDef]:
        """The application's custom attributes, by key (sorted)."""
        stmt = (
            select(CustomAttribute.key, CustomAttribute.data_type, CustomAttribute.description)
            .where(CustomAttribute.application_id == application_id)
            .order_by(CustomAttribute.key)
        )
        return {
            key: custom_attribute_def(key, data_type, description)
            for key, data_type, description in await self.session.execute(stmt)
            if data_type in DATA_TYPES
        }

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

    async def groups_reading(self, application_id: UUID, key: str) -> list[tuple[UUID, str]]:
        """(id, name) of the active dynamic groups whose current rules read `key`: one lookup on
        the GIN index over each ruleset's attribute keys, not a walk over every stored tree."""
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


async def profile_values(
    session: AsyncSession,
    application_id: UUID,
    profile_id: UUID,
    as_of: datetime,
    catalogue: dict[str, AttributeDef],
) -> dict[str, Any] | None:
    """Every catalogue attribute's SQL value for one profile (None if there is no such profile).

    The same expressions a rule compiles to, so this explains a profile's group memberships.
    """
    custom = {k: d for k, d in catalogue.items() if d.source == "custom"}
    ctx = AttributeContext(application_id, as_of, custom)
    keys = list(catalogue)
    columns = [ctx.value(catalogue[key]).label(f"v{i}") for i, key in enumerate(keys)]
    stmt = ctx.select(*columns).where(ctx.profile.id == profile_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return dict(zip(keys, row, strict=True))
