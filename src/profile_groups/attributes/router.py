"""The attribute catalogue (SPEC §5.5) and a profile's attribute values (SPEC §5.6)."""

from typing import Annotated
from uuid import UUID

from fastapi import Query, Request

from profile_groups.attributes import service
from profile_groups.attributes.registry import Category, Source
from profile_groups.attributes.schemas import Attribute, ProfileAttributeValues
from profile_groups.db import SessionDep
from profile_groups.kit.auth import AppDep
from profile_groups.kit.errors import (
    NotFound,
    responses,
)
from profile_groups.kit.pagination import Page, PageDep
from profile_groups.kit.routing import api_router

router = api_router("attributes")


@router.get(
    "/profile-group-attributes/",
    response_model=Page[Attribute],
    summary="List the attributes usable in rules",
)
async def list_attributes(
    request: Request,
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    category: Annotated[Category | None, Query(description="Only this category.")] = None,
    source: Annotated[Source | None, Query(description="Only platform or custom ones.")] = None,
) -> Page[Attribute]:
    """Every platform attribute (SPEC §5.3) and every custom attribute of the application (§4),
    with its data type, category, the conditions a rule may use on it (§5.4) and whether it
    accepts `window_days`. Platform attributes come first, grouped by category."""
    return await service.list_attributes(
        session, request, app, page, category=category, source=source
    )


@router.get(
    "/profile-group-attributes/{key}/",
    response_model=Attribute,
    responses=responses(NotFound),
    summary="Get one attribute of the catalogue",
)
async def get_attribute(key: str, app: AppDep, session: SessionDep) -> Attribute:
    """One catalogue entry; an alias (`tier_upragde_count`) answers with its attribute."""
    return await service.get_attribute(session, app, key)


@router.get(
    "/profiles/{profile_id}/attributes/",
    response_model=ProfileAttributeValues,
    responses=responses(NotFound),
    summary="A profile's attribute values",
)
async def profile_attributes(
    profile_id: UUID, app: AppDep, session: SessionDep
) -> ProfileAttributeValues:
    """The value of every catalogue attribute for the profile, as a rule would see it now
    (windowed attributes shown without a window; `null` = no value). Rules read the same
    derivation, so this explains why a profile is or is not in a dynamic group."""
    return await service.profile_attribute_values(session, app, profile_id)
