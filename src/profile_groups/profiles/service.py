"""Rules of profiles and their custom attribute values (docs/profiles.md)."""

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes.service import types_of
from profile_groups.groups.repositories.membership import MembershipRepository
from profile_groups.kit import validation
from profile_groups.kit.errors import BadRequest, NotFound, found, invalid_field
from profile_groups.kit.numbers import is_finite_number
from profile_groups.kit.pagination import Paged, PageRequest, paginate
from profile_groups.kit.repository import unique_or_conflict
from profile_groups.kit.retry import retry_in_savepoint, retry_on_race
from profile_groups.kit.schemas import ItemError
from profile_groups.kit.timestamps import as_utc, format_timestamp, parse_timestamp
from profile_groups.models import Application, Profile
from profile_groups.profiles.repository import ProfileRepository
from profile_groups.profiles.schemas import (
    BulkItem,
    BulkResult,
    ProfileBulk,
    ProfileCreate,
    ProfileReplace,
    ProfileUpdate,
)

T = TypeVar("T")

MAX_STRING_VALUE = 2000
PROFILE_CONFLICTS = {
    "pk_profiles": "A profile with this id already exists.",
    "uq_profiles_application_custom_id": "A profile with this custom_id already exists.",
}


# Custom attribute values -------------------------------------------------------------------


_EXPECTED = {
    "number": "a number",
    "string": f"a string of at most {MAX_STRING_VALUE} characters",
    "boolean": "a boolean (true or false)",
    "datetime": "a datetime as an ISO 8601 string (e.g. 2025-04-28T12:16:49.670053Z)",
}


def normalize_value(data_type: str, value: Any) -> tuple[bool, Any]:
    """(ok, stored value) of one attribute value against its definition's type."""
    if data_type == "number":
        # An integer too big for a double is refused like NaN (kit/numbers.py).
        return is_finite_number(value), value
    if data_type == "string":
        return isinstance(value, str) and len(value) <= MAX_STRING_VALUE, value
    if data_type == "boolean":
        return isinstance(value, bool), value
    if data_type == "datetime":
        parsed = parse_timestamp(value)
        return parsed is not None, format_timestamp(parsed) if parsed is not None else None
    return False, value


@dataclass
class CheckedAttributes:
    """One object's custom_attributes after checking: values to set, keys to remove, errors."""

    set: dict[str, Any] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


async def check_attributes(
    session: AsyncSession, app: Application, objects: Sequence[Mapping[str, Any] | None]
) -> list[CheckedAttributes]:
    """Check many custom_attributes objects against the definitions, in one query.

    `null` means unset: such keys land in `remove` and are not checked against definitions.
    """
    keys = sorted({k for obj in objects if obj for k, v in obj.items() if v is not None})
    types = await types_of(session, app, keys)
    out = []
    for obj in objects:
        checked = CheckedAttributes()
        for key, value in (obj or {}).items():
            loc = ["body", "custom_attributes", key]
            if value is None:
                checked.remove.append(key)
            elif key not in types:
                checked.errors.append(
                    {
                        "loc": loc,
                        "msg": f"'{key}' is not a defined custom attribute "
                        "(define it with POST /custom-attributes/ first).",
                        "type": "unknown_custom_attribute",
                    }
                )
            else:
                ok, stored = normalize_value(types[key], value)
                if ok:
                    checked.set[key] = stored
                else:
                    checked.errors.append(
                        {
                            "loc": loc,
                            "msg": f"'{key}' is a {types[key]} attribute: "
                            f"expected {_EXPECTED[types[key]]}.",
                            "type": f"custom_attribute_{types[key]}",
                        }
                    )
        out.append(checked)
    return out


async def _checked(
    session: AsyncSession, app: Application, obj: Mapping[str, Any] | None
) -> CheckedAttributes:
    (checked,) = await check_attributes(session, app, [obj])
    if checked.errors:
        first = checked.errors[0]["msg"]
        more = f" (and {len(checked.errors) - 1} more)" if len(checked.errors) > 1 else ""
        raise BadRequest(f"Invalid custom_attributes: {first}{more}", checked.errors)
    return checked


# Profiles ---------------------------------------------------------------------------------


async def list_profiles(
    session: AsyncSession, app: Application, page: PageRequest, custom_id: str | None
) -> Paged[Any]:
    repo = ProfileRepository(session)
    return await paginate(
        session,
        page,
        repo.list_statement(app.id, custom_id),
        [(Profile.created_at, "created_at"), (Profile.id, "id")],
        await repo.count(app.id, custom_id),
    )


async def get_profile(session: AsyncSession, app: Application, profile_id: UUID) -> Profile:
    return found(await ProfileRepository(session).get(app.id, profile_id))


async def get_profile_by_custom_id(
    session: AsyncSession, app: Application, custom_id: str
) -> Profile:
    return found(await ProfileRepository(session).get_by_custom_id(app.id, custom_id))


def _or_conflict(session: AsyncSession, write: Callable[[], Awaitable[T]]) -> Awaitable[T]:
    """A duplicate id or custom_id becomes a 409 naming which."""
    return unique_or_conflict(session, write, PROFILE_CONFLICTS)


async def create_profile(session: AsyncSession, app: Application, data: ProfileCreate) -> Row[Any]:
    checked = await _checked(session, app, data.custom_attributes)
    values: dict[str, Any] = {
        "id": data.id or uuid.uuid4(),
        "custom_id": data.custom_id,
        "nickname": data.nickname,
        "custom_attributes": checked.set,
    }
    if data.created_at is not None:
        values["created_at"] = as_utc(data.created_at)
    return await _or_conflict(session, lambda: ProfileRepository(session).insert(app.id, values))


async def replace_profile(
    session: AsyncSession, app: Application, profile_id: UUID, data: ProfileReplace
) -> tuple[Row[Any], bool]:
    """Create-or-replace; returns the profile and whether it was created."""
    if data.id is not None and data.id != profile_id:
        raise invalid_field(["body", "id"], "'id' must match the profile id in the path.")
    checked = await _checked(session, app, data.custom_attributes)
    values: dict[str, Any] = {
        "custom_id": data.custom_id,
        "nickname": data.nickname,
        "custom_attributes": checked.set,
    }
    if data.created_at is not None:
        values["created_at"] = as_utc(data.created_at)
    repo = ProfileRepository(session)
    row = await _or_conflict(session, lambda: repo.upsert(app.id, profile_id, values))
    return row, bool(row.inserted)


async def update_profile(
    session: AsyncSession, app: Application, profile_id: UUID, data: ProfileUpdate
) -> Row[Any]:
    checked = await _checked(session, app, data.custom_attributes)
    values = data.model_dump(exclude_unset=True, include={"custom_id", "nickname", "created_at"})
    if "created_at" in values:
        values["created_at"] = as_utc(values["created_at"])
    repo = ProfileRepository(session)
    row = await _or_conflict(
        session, lambda: repo.update(app.id, profile_id, values, checked.set, checked.remove)
    )
    if row is None:
        raise NotFound()
    return row


async def delete_profile(session: AsyncSession, app: Application, profile_id: UUID) -> None:
    """The profile leaves every group first (the one writer of memberships keeps the counts),
    then goes with its activity. A deadlock with a concurrent member change is retried."""

    async def delete() -> None:
        if not await MembershipRepository(session).remove_profile(app.id, profile_id):
            raise NotFound()
        await ProfileRepository(session).delete(app.id, profile_id)

    await retry_in_savepoint(session, delete)


# Bulk upsert ------------------------------------------------------------------------------


def _item_detail(exc: ValidationError) -> str:
    parts = []
    for item in validation.items(exc.errors(), BulkItem):
        where = ".".join(str(p) for p in item["loc"])
        parts.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(parts)


def _attributes_detail(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"custom_attributes.{e['loc'][-1]}: {e['msg']}" for e in errors)


async def bulk_upsert(session: AsyncSession, app: Application, body: ProfileBulk) -> BulkResult:
    """Upsert up to 1,000 profiles by `id` or `custom_id`; valid items are written even when
    others fail. Everything is set-based: one query checks the attribute definitions, one locks
    the existing profiles, one statement writes every valid item.

    On update only the fields an item sends change; `custom_attributes` is merged key by key
    (`null` removes a key), as in PATCH. An item may not take a custom_id that another profile
    holds when the batch starts, and two items may not name the same profile.
    """
    errors: dict[int, str] = {}
    items: list[tuple[int, BulkItem]] = []
    for index, raw in enumerate(body.profiles):
        try:
            items.append((index, BulkItem.model_validate(raw)))
        except ValidationError as exc:
            errors[index] = _item_detail(exc)

    checked = await check_attributes(session, app, [item.custom_attributes for _, item in items])
    valid: list[tuple[int, BulkItem, CheckedAttributes]] = []
    for (index, item), attrs in zip(items, checked, strict=True):
        if attrs.errors:
            errors[index] = _attributes_detail(attrs.errors)
        else:
            valid.append((index, item, attrs))

    async def write() -> tuple[list[bool], dict[int, str]]:
        # A concurrent request may commit a custom_id we were about to take, or two batches may
        # cross on new rows (deadlock): the savepoint goes, and the batch is read and written anew.
        async with session.begin_nested():
            rows, row_errors = await _resolve_bulk(session, app, valid)
            return await ProfileRepository(session).bulk_upsert(app.id, rows), row_errors

    inserted, row_errors = await retry_on_race(write)
    created = sum(inserted)
    updated = len(inserted) - created
    errors.update(row_errors)
    return BulkResult(
        created=created,
        updated=updated,
        errors=[ItemError(index=i, detail=d) for i, d in sorted(errors.items())],
    )


async def _resolve_bulk(
    session: AsyncSession,
    app: Application,
    valid: list[tuple[int, BulkItem, CheckedAttributes]],
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The final row of every valid item (existing values merged in), and the items refused."""
    ids = sorted({item.id for _, item, _ in valid if item.id is not None})
    custom_ids = sorted({item.custom_id for _, item, _ in valid if item.custom_id is not None})
    existing = await ProfileRepository(session).lock_for_bulk(app.id, ids, custom_ids)
    by_id = {row.id: row for row in existing}
    by_custom_id = {row.custom_id: row for row in existing if row.custom_id is not None}

    rows: list[dict[str, Any]] = []
    errors: dict[int, str] = {}
    claimed_ids: dict[UUID, int] = {}
    claimed_custom_ids: dict[str, int] = {}
    for index, item, attrs in valid:
        current = by_id.get(item.id) if item.id is not None else by_custom_id.get(item.custom_id)
        target = current.id if current is not None else (item.id or uuid.uuid4())
        given = item.model_fields_set
        custom_id = item.custom_id if "custom_id" in given or current is None else current.custom_id
        holder = by_custom_id.get(custom_id) if custom_id is not None else None
        if target in claimed_ids:
            errors[index] = f"Names the same profile as item {claimed_ids[target]}."
            continue
        if holder is not None and holder.id != target:
            errors[index] = f"custom_id {custom_id!r} belongs to another profile."
            continue
        if custom_id is not None and custom_id in claimed_custom_ids:
            errors[index] = (
                f"custom_id {custom_id!r} is also set by item {claimed_custom_ids[custom_id]}."
            )
            continue
        claimed_ids[target] = index
        if custom_id is not None:
            claimed_custom_ids[custom_id] = index

        if current is None:
            attributes = dict(attrs.set)
            created_at = item.created_at
            nickname = item.nickname
        else:
            attributes = {**current.custom_attributes, **attrs.set}
            for key in attrs.remove:
                attributes.pop(key, None)
            created_at = item.created_at if item.created_at is not None else current.created_at
            nickname = item.nickname if "nickname" in given else current.nickname
        rows.append(
            {
                "id": str(target),
                "custom_id": custom_id,
                "nickname": nickname,
                "custom_attributes": attributes,
                "created_at": as_utc(created_at).isoformat() if created_at else None,
            }
        )
    # One write order for every batch (custom ids, then ids), so two batches naming the same new
    # profiles wait for each other instead of deadlocking.
    rows.sort(key=lambda r: (r["custom_id"] is None, r["custom_id"] or "", r["id"]))
    return rows, errors
