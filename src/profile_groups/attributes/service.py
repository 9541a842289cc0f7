"""The catalogue (SPEC §5.5) and a profile's attribute values (SPEC §5.6)."""

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes import repository
from profile_groups.attributes.registry import AttributeDef, catalogue, resolve
from profile_groups.attributes.schemas import Attribute, ProfileAttributeValues
from profile_groups.kit.errors import NotFound, found, invalid_field
from profile_groups.kit.pagination import CursorCodec, Page, PageParams
from profile_groups.kit.schemas import format_timestamp
from profile_groups.models import Application


def _sort_key(position: int, defn: AttributeDef) -> str:
    # Platform attributes in registry order (grouped by category), then custom ones by key.
    return f"0:{position:05d}" if defn.source == "platform" else f"1:{defn.key}"


async def list_attributes(
    session: AsyncSession,
    request: Request,
    app: Application,
    params: PageParams,
    *,
    category: str | None = None,
    source: str | None = None,
) -> Page[Attribute]:
    """One page of the catalogue. It is small and mostly in code, so it is paged in memory with
    the same signed keyset cursors as every other list."""
    defs = [
        (_sort_key(i, d), d)
        for i, d in enumerate((await catalogue(session, app.id)).values())
        if (category is None or d.category == category) and (source is None or d.source == source)
    ]
    codec: CursorCodec = request.app.state.cursor_codec
    forward, boundary = True, None
    if params.cursor is not None:
        key, forward = codec.decode(params.cursor)
        if len(key) != 1 or not isinstance(key[0], str):
            raise invalid_field(["query", "cursor"], "Invalid cursor.")
        boundary = key[0]
    return _page(request, codec, defs, params.page_size, boundary, forward)


def _page(
    request: Request,
    codec: CursorCodec,
    defs: Sequence[tuple[str, AttributeDef]],
    size: int,
    boundary: str | None,
    forward: bool,
) -> Page[Attribute]:
    if boundary is None:
        window, has_more = list(defs[:size]), len(defs) > size
    elif forward:
        after = [d for d in defs if d[0] > boundary]
        window, has_more = after[:size], len(after) > size
    else:
        before = [d for d in defs if d[0] < boundary]
        window, has_more = before[-size:], len(before) > size

    def url(key: str, fwd: bool) -> str:
        return str(request.url.include_query_params(cursor=codec.encode([key], forward=fwd)))

    next_url = prev_url = None
    if window:
        if (forward and has_more) or (not forward and boundary is not None):
            next_url = url(window[-1][0], True)
        if (forward and boundary is not None) or (not forward and has_more):
            prev_url = url(window[0][0], False)
    return Page(
        count=len(defs),
        next=next_url,
        previous=prev_url,
        results=[Attribute.of(d) for _, d in window],
    )


async def get_attribute(session: AsyncSession, app: Application, key: str) -> Attribute:
    defn = (await catalogue(session, app.id)).get(resolve(key))
    if defn is None:
        raise NotFound()
    return Attribute.of(defn)


def _json_value(value: Any) -> Any:
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
    return ProfileAttributeValues(
        as_of=as_of, values={k: _json_value(v) for k, v in values.items()}
    )
