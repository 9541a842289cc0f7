"""Custom attribute definitions, the catalogue and a profile's attribute values
(docs/activity.md, docs/profiles.md)."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes import repository
from profile_groups.attributes.registry import (
    PLATFORM_ATTRIBUTES,
    PLATFORM_KEYS,
    AttributeDef,
    resolve,
)
from profile_groups.attributes.repository import CustomAttributeRepository
from profile_groups.attributes.schemas import (
    Attribute,
    CustomAttributeCreate,
    CustomAttributeUpdate,
    ProfileAttributeValues,
)
from profile_groups.kit.errors import Conflict, NotFound, found, invalid_field
from profile_groups.kit.pagination import Paged, PageRequest, paginate, paginate_sorted
from profile_groups.kit.timestamps import format_timestamp
from profile_groups.models import Application, CustomAttribute

KEY_TAKEN = "A custom attribute with this key already exists."


async def catalogue(session: AsyncSession, application_id: UUID) -> dict[str, AttributeDef]:
    """Every attribute usable in the application's rules: platform ones first, then custom ones."""
    custom = await CustomAttributeRepository(session).definitions(application_id)
    return {**PLATFORM_ATTRIBUTES, **custom}


# The catalogue ------------------------------------------------------------------------------


def _sort_key(position: int, defn: AttributeDef) -> str:
    # Platform attributes in registry order (grouped by category), then custom ones by key.
    return f"0:{position:05d}" if defn.source == "platform" else f"1:{defn.key}"


async def list_attributes(
    session: AsyncSession,
    app: Application,
    page: PageRequest,
    *,
    category: str | None = None,
    source: str | None = None,
) -> Paged[Attribute]:
    """One page of the catalogue. It is small and mostly in code, so it is paged in memory with
    the same signed keyset cursors as every other list."""
    defs = [
        (_sort_key(i, d), Attribute.of(d))
        for i, d in enumerate((await catalogue(session, app.id)).values())
        if (category is None or d.category == category) and (source is None or d.source == source)
    ]
    return paginate_sorted(page, defs)


async def get_attribute(session: AsyncSession, app: Application, key: str) -> Attribute:
    return Attribute.of(found((await catalogue(session, app.id)).get(resolve(key))))


def json_value(value: Any) -> Any:
    """An attribute's SQL value as the API renders it (a profile's values, explanations)."""
    if isinstance(value, Decimal):
        # Counts read as integers; amounts and custom numbers keep their fraction.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


async def profile_attribute_values(
    session: AsyncSession, app: Application, profile_id: UUID
) -> ProfileAttributeValues:
    as_of = datetime.now(UTC)
    defs = await catalogue(session, app.id)
    values = found(await repository.profile_values(session, app.id, profile_id, as_of, defs))
    return ProfileAttributeValues(as_of=as_of, values={k: json_value(v) for k, v in values.items()})


# Custom attribute definitions -------------------------------------------------------------


async def types_of(session: AsyncSession, app: Application, keys: list[str]) -> dict[str, str]:
    """{key: data_type} of the defined ones among `keys`, in one query."""
    return await CustomAttributeRepository(session).types_of(app.id, keys)


async def list_custom_attributes(
    session: AsyncSession, app: Application, page: PageRequest
) -> Paged[CustomAttribute]:
    repo = CustomAttributeRepository(session)
    return await paginate(
        session,
        page,
        repo.list_statement(app.id),
        [(CustomAttribute.created_at, "created_at"), (CustomAttribute.key, "key")],
        await repo.count(app.id),
        entity=True,
    )


async def get_custom_attribute(
    session: AsyncSession, app: Application, key: str
) -> CustomAttribute:
    return found(await CustomAttributeRepository(session).get(app.id, key))


async def create_custom_attribute(
    session: AsyncSession, app: Application, data: CustomAttributeCreate
) -> CustomAttribute:
    if data.key in PLATFORM_KEYS:
        raise invalid_field(
            ["body", "key"],
            f"'{data.key}' is a platform attribute key; choose another key.",
            "platform_attribute_key",
        )
    attribute = await CustomAttributeRepository(session).insert(
        app.id, data.key, data.data_type, data.description
    )
    if attribute is None:
        raise Conflict(KEY_TAKEN)
    return attribute


async def update_custom_attribute(
    session: AsyncSession, app: Application, key: str, data: CustomAttributeUpdate
) -> CustomAttribute:
    repo = CustomAttributeRepository(session)
    return found(await repo.update_description(app.id, key, data.description))


async def delete_custom_attribute(session: AsyncSession, app: Application, key: str) -> None:
    """Delete a definition and every profile's value of it; 409 naming the active dynamic
    groups whose rules use the key.

    The definition row is deleted (so locked) first: a concurrent delete of the same key waits,
    and if a group uses it, raising rolls the whole request back.
    """
    repo = CustomAttributeRepository(session)
    if not await repo.delete(app.id, key):
        raise NotFound()
    users = await repo.groups_reading(app.id, key)
    if users:
        named = ", ".join(f"'{name}' ({gid})" for gid, name in users)
        raise Conflict(
            f"The custom attribute '{key}' is used by the rules of active dynamic groups: "
            f"{named}. Change those rules first."
        )
    await repo.strip_from_profiles(app.id, key)
