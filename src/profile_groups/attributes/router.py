"""Custom attribute definitions, the attribute catalogue and a profile's attribute values."""

from typing import Annotated
from uuid import UUID

from fastapi import Path, Query, Response, status

from profile_groups.applications.auth import AppDep
from profile_groups.attributes import service
from profile_groups.attributes.registry import Category, Source
from profile_groups.attributes.schemas import (
    Attribute,
    CustomAttribute,
    CustomAttributeCreate,
    CustomAttributeUpdate,
    ProfileAttributeValues,
)
from profile_groups.kit.errors import Conflict, NotFound, responses
from profile_groups.kit.pagination import Page, PageDep, render
from profile_groups.kit.routing import api_router
from profile_groups.kit.state import SessionDep
from profile_groups.models import CustomAttribute as CustomAttributeRow

router = api_router("attributes")
custom_attributes_router = api_router("custom attributes")

CustomKey = Annotated[str, Path(description="The custom attribute's key.")]


@router.get(
    "/profile-group-attributes/",
    response_model=Page[Attribute],
    summary="List the attributes usable in rules",
)
async def list_attributes(
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    category: Annotated[Category | None, Query(description="Only this category.")] = None,
    source: Annotated[Source | None, Query(description="Only platform or custom ones.")] = None,
) -> Response:
    """Every platform attribute and every custom attribute of the application, with its data
    type, category, the conditions a rule may use on it and whether it accepts `window_days`.
    Platform attributes come first, grouped by category."""
    paged = await service.list_attributes(session, app, page, category=category, source=source)
    return render(Attribute, paged)


@router.get(
    "/profile-group-attributes/{key}/",
    response_model=Attribute,
    responses=responses(NotFound),
    summary="Get one attribute of the catalogue",
)
async def get_attribute(
    key: Annotated[str, Path(description="An attribute key of the catalogue, or an alias.")],
    app: AppDep,
    session: SessionDep,
) -> Attribute:
    """One catalogue entry; an alias (`tier_upragde_count`) answers with its attribute."""
    return await service.get_attribute(session, app, key)


@router.get(
    "/profiles/{profile_id}/attributes/",
    response_model=ProfileAttributeValues,
    responses=responses(NotFound),
    summary="A profile's attribute values",
)
async def list_profile_attributes(
    profile_id: Annotated[UUID, Path(description="The profile's id.")],
    app: AppDep,
    session: SessionDep,
) -> ProfileAttributeValues:
    """The value of every catalogue attribute for the profile, as a rule would see it now
    (windowed attributes shown without a window; `null` = no value). Rules read the same
    derivation, so this explains why a profile is or is not in a dynamic group."""
    return await service.profile_attribute_values(session, app, profile_id)


@custom_attributes_router.post(
    "/custom-attributes/",
    status_code=status.HTTP_201_CREATED,
    response_model=CustomAttribute,
    responses=responses(Conflict),
    summary="Define a custom attribute",
)
async def create_custom_attribute(
    data: CustomAttributeCreate, app: AppDep, session: SessionDep
) -> CustomAttributeRow:
    """Define a metric profiles can carry in `custom_attributes` and rules can use. The key
    must match `^[a-z][a-z0-9_]{0,62}$` and not be a platform attribute key; a defined key is a
    409."""
    return await service.create_custom_attribute(session, app, data)


@custom_attributes_router.get(
    "/custom-attributes/",
    response_model=Page[CustomAttribute],
    summary="List custom attributes",
)
async def list_custom_attributes(app: AppDep, session: SessionDep, page: PageDep) -> Response:
    """The application's custom attributes, newest first."""
    return render(CustomAttribute, await service.list_custom_attributes(session, app, page))


@custom_attributes_router.get(
    "/custom-attributes/{key}/",
    response_model=CustomAttribute,
    responses=responses(NotFound),
    summary="Get a custom attribute",
)
async def get_custom_attribute(
    key: CustomKey, app: AppDep, session: SessionDep
) -> CustomAttributeRow:
    return await service.get_custom_attribute(session, app, key)


@custom_attributes_router.patch(
    "/custom-attributes/{key}/",
    response_model=CustomAttribute,
    responses=responses(NotFound),
    summary="Change a custom attribute's description",
)
async def update_custom_attribute(
    key: CustomKey, data: CustomAttributeUpdate, app: AppDep, session: SessionDep
) -> CustomAttributeRow:
    """Only `description` can change; the key and the data type are fixed once defined."""
    return await service.update_custom_attribute(session, app, key, data)


@custom_attributes_router.delete(
    "/custom-attributes/{key}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
    summary="Delete a custom attribute",
)
async def delete_custom_attribute(key: CustomKey, app: AppDep, session: SessionDep) -> Response:
    """The definition and every profile's value of it go. 409 while an active dynamic group's
    rule uses the key."""
    await service.delete_custom_attribute(session, app, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
