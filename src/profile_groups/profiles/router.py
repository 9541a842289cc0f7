"""Profile and custom attribute endpoints (SPEC §3, §4). Handlers are thin."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response, status

from profile_groups.db import SessionDep
from profile_groups.kit.auth import AppDep
from profile_groups.kit.errors import (
    Conflict,
    NotFound,
    responses,
)
from profile_groups.kit.pagination import Page, PageDep, page_response, paginate
from profile_groups.kit.routing import api_router
from profile_groups.models import CustomAttribute as CustomAttributeModel
from profile_groups.models import Profile as ProfileModel
from profile_groups.profiles import service
from profile_groups.profiles.repository import CustomAttributeRepository, ProfileRepository
from profile_groups.profiles.schemas import (
    BulkResult,
    CustomAttribute,
    CustomAttributeCreate,
    CustomAttributeUpdate,
    Profile,
    ProfileBulk,
    ProfileCreate,
    ProfileReplace,
    ProfileUpdate,
)

router = api_router("profiles")
# Table columns (not ORM attributes) as pagination keys: typed as the SQL expressions they are.
PROFILES = ProfileModel.__table__
CUSTOM_ATTRIBUTES = CustomAttributeModel.__table__


@router.post(
    "/profiles/",
    status_code=status.HTTP_201_CREATED,
    response_model=Profile,
    responses=responses(Conflict),
    summary="Create a profile",
)
async def create_profile(data: ProfileCreate, app: AppDep, session: SessionDep) -> Any:
    """Create a profile. `id` (UUID) and `created_at` may be supplied when importing; a
    duplicate `id` or `custom_id` is a 409. `custom_attributes` may only hold defined keys,
    each of its defined type."""
    return await service.create_profile(session, app, data)


@router.post(
    "/profiles/bulk/",
    response_model=BulkResult,
    responses=responses(Conflict),
    summary="Create or update up to 1,000 profiles",
)
async def bulk_upsert(data: ProfileBulk, app: AppDep, session: SessionDep) -> BulkResult:
    """Each item is matched by `id`, else by `custom_id`, and created when no profile matches.
    On update only the fields sent change (`custom_attributes` is merged, `null` removes a key).
    Valid items are written even when others fail; each failure is reported with its index."""
    return await service.bulk_upsert(session, app, data)


@router.get("/profiles/", response_model=Page[Profile], summary="List profiles")
async def list_profiles(
    request: Request,
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    custom_id: Annotated[
        str | None, Query(description="Only the profile with this custom id (0 or 1 result).")
    ] = None,
) -> Response:
    """The application's profiles, newest first."""
    repo = ProfileRepository(session)
    rows, next_url, prev_url = await paginate(
        session,
        request,
        page,
        repo.list_statement(app.id, custom_id),
        [(PROFILES.c.created_at, "created_at"), (PROFILES.c.id, "id")],
    )
    return page_response(Profile, await repo.count(app.id, custom_id), next_url, prev_url, rows)


@router.get(
    "/profiles/{profile_id}/",
    response_model=Profile,
    responses=responses(NotFound),
    summary="Get a profile",
)
async def get_profile(profile_id: UUID, app: AppDep, session: SessionDep) -> Any:
    return await service.get_profile(session, app, profile_id)


@router.get(
    "/profile-by-custom-id/{custom_id}/",
    response_model=Profile,
    responses=responses(NotFound),
    summary="Get a profile by its custom id",
)
async def get_profile_by_custom_id(custom_id: str, app: AppDep, session: SessionDep) -> Any:
    return await service.get_profile_by_custom_id(session, app, custom_id)


@router.put(
    "/profiles/{profile_id}/",
    response_model=Profile,
    responses={
        **responses(Conflict),
        201: {"model": Profile, "description": "The profile was created."},
    },
    summary="Create or replace a profile",
)
async def replace_profile(
    profile_id: UUID, data: ProfileReplace, response: Response, app: AppDep, session: SessionDep
) -> Any:
    """Create the profile with this id (201) or replace it (200). Fields left out are cleared;
    `created_at` is kept unless given. A `custom_id` held by another profile is a 409."""
    profile, created = await service.replace_profile(session, app, profile_id, data)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return profile


@router.patch(
    "/profiles/{profile_id}/",
    response_model=Profile,
    responses=responses(NotFound, Conflict),
    summary="Update a profile",
)
async def update_profile(
    profile_id: UUID, data: ProfileUpdate, app: AppDep, session: SessionDep
) -> Any:
    """Partial update: only the fields sent change. `custom_attributes` is merged key by key;
    a key set to `null` is removed."""
    return await service.update_profile(session, app, profile_id, data)


@router.delete(
    "/profiles/{profile_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound),
    summary="Delete a profile",
)
async def delete_profile(profile_id: UUID, app: AppDep, session: SessionDep) -> Response:
    """The profile, its memberships and its activity go; the `profile_count` of every group it
    was in is updated in the same transaction."""
    await service.delete_profile(session, app, profile_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Custom attributes ------------------------------------------------------------------------


@router.post(
    "/custom-attributes/",
    status_code=status.HTTP_201_CREATED,
    response_model=CustomAttribute,
    responses=responses(Conflict),
    tags=["custom attributes"],
    summary="Define a custom attribute",
)
async def create_custom_attribute(
    data: CustomAttributeCreate, app: AppDep, session: SessionDep
) -> CustomAttributeModel:
    """Define a metric profiles can carry in `custom_attributes` and rules can use. The key
    must match `^[a-z][a-z0-9_]{0,62}$` and not be a platform attribute key; a defined key is a
    409."""
    return await service.create_custom_attribute(session, app, data)


@router.get(
    "/custom-attributes/",
    response_model=Page[CustomAttribute],
    tags=["custom attributes"],
    summary="List custom attributes",
)
async def list_custom_attributes(
    request: Request, app: AppDep, session: SessionDep, page: PageDep
) -> Response:
    """The application's custom attributes, newest first."""
    repo = CustomAttributeRepository(session)
    rows, next_url, prev_url = await paginate(
        session,
        request,
        page,
        repo.list_statement(app.id),
        [(CUSTOM_ATTRIBUTES.c.created_at, "created_at"), (CUSTOM_ATTRIBUTES.c.key, "key")],
        entity=True,
    )
    return page_response(CustomAttribute, await repo.count(app.id), next_url, prev_url, rows)


@router.get(
    "/custom-attributes/{key}/",
    response_model=CustomAttribute,
    responses=responses(NotFound),
    tags=["custom attributes"],
    summary="Get a custom attribute",
)
async def get_custom_attribute(key: str, app: AppDep, session: SessionDep) -> CustomAttributeModel:
    return await service.get_custom_attribute(session, app, key)


@router.patch(
    "/custom-attributes/{key}/",
    response_model=CustomAttribute,
    responses=responses(NotFound),
    tags=["custom attributes"],
    summary="Change a custom attribute's description",
)
async def update_custom_attribute(
    key: str, data: CustomAttributeUpdate, app: AppDep, session: SessionDep
) -> CustomAttributeModel:
    """Only `description` can change; the key and the data type are fixed once defined."""
    return await service.update_custom_attribute(session, app, key, data)


@router.delete(
    "/custom-attributes/{key}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
    tags=["custom attributes"],
    summary="Delete a custom attribute",
)
async def delete_custom_attribute(key: str, app: AppDep, session: SessionDep) -> Response:
    """The definition and every profile's value of it go. 409 while an active dynamic group's
    rule uses the key."""
    await service.delete_custom_attribute(session, app, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
