"""Profile endpoints (docs/profiles.md). Handlers are thin."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import Path, Query, Response, status

from profile_groups.applications.auth import AppDep
from profile_groups.kit.errors import (
    Conflict,
    NotFound,
    responses,
)
from profile_groups.kit.pagination import Page, PageDep, render
from profile_groups.kit.routing import api_router
from profile_groups.kit.state import SessionDep
from profile_groups.profiles import service
from profile_groups.profiles.schemas import (
    BulkResult,
    Profile,
    ProfileBulk,
    ProfileCreate,
    ProfileReplace,
    ProfileUpdate,
)

router = api_router("profiles")

ProfileId = Annotated[UUID, Path(description="The profile's id.")]


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
async def bulk_upsert_profiles(data: ProfileBulk, app: AppDep, session: SessionDep) -> BulkResult:
    """Each item is matched by `id`, else by `custom_id`, and created when no profile matches.
    On update only the fields sent change (`custom_attributes` is merged, `null` removes a key).
    Valid items are written even when others fail; each failure is reported with its index."""
    return await service.bulk_upsert(session, app, data)


@router.get("/profiles/", response_model=Page[Profile], summary="List profiles")
async def list_profiles(
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    custom_id: Annotated[
        str | None, Query(description="Only the profile with this custom id (0 or 1 result).")
    ] = None,
) -> Response:
    """The application's profiles, newest first."""
    return render(Profile, await service.list_profiles(session, app, page, custom_id))


@router.get(
    "/profiles/{profile_id}/",
    response_model=Profile,
    responses=responses(NotFound),
    summary="Get a profile",
)
async def get_profile(profile_id: ProfileId, app: AppDep, session: SessionDep) -> Any:
    return await service.get_profile(session, app, profile_id)


@router.get(
    "/profile-by-custom-id/{custom_id}/",
    response_model=Profile,
    responses=responses(NotFound),
    summary="Get a profile by its custom id",
)
async def get_profile_by_custom_id(
    custom_id: Annotated[str, Path(description="The profile's custom id.")],
    app: AppDep,
    session: SessionDep,
) -> Any:
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
    profile_id: ProfileId,
    data: ProfileReplace,
    response: Response,
    app: AppDep,
    session: SessionDep,
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
    profile_id: ProfileId, data: ProfileUpdate, app: AppDep, session: SessionDep
) -> Any:
    """Partial update: only the fields sent change. `custom_attributes` is merged key by key;
    a key set to `null` is removed."""
    return await service.update_profile(session, app, profile_id, data)


@router.delete(
    "/profiles/{profile_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
    summary="Delete a profile",
)
async def delete_profile(profile_id: ProfileId, app: AppDep, session: SessionDep) -> Response:
    """The profile, its memberships and its activity go; the `profile_count` of every group it
    was in is updated in the same transaction."""
    await service.delete_profile(session, app, profile_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
