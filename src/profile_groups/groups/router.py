"""Profile group endpoints (SPEC §6). Handlers are thin: parse, call the service, shape."""

from typing import Annotated, Literal
from uuid import UUID

from fastapi import Query, Request, Response, status

from profile_groups.db import SessionDep
from profile_groups.groups import service
from profile_groups.groups.repository import GroupRepository
from profile_groups.groups.schemas import (
    Member,
    MembersAdded,
    MembersChange,
    ProfileGroup,
    ProfileGroupCreate,
    ProfileGroupMembership,
    ProfileGroupUpdate,
)
from profile_groups.kit.auth import AppDep, ReaderDep
from profile_groups.kit.errors import (
    Conflict,
    NotFound,
    responses,
)
from profile_groups.kit.pagination import Page, PageDep, PageParams, page_response, paginate
from profile_groups.kit.queue import ArqDep
from profile_groups.kit.routing import api_router
from profile_groups.models import GroupMembership
from profile_groups.models import ProfileGroup as ProfileGroupModel
from profile_groups.profiles.service import (
    ensure_may_read_membership,
    readable_profile,
    readable_profile_by_custom_id,
)

router = api_router("profile groups")


@router.post(
    "/profile-groups/",
    status_code=status.HTTP_201_CREATED,
    response_model=ProfileGroup,
    responses=responses(Conflict),
    summary="Create a profile group",
)
async def create_group(
    data: ProfileGroupCreate, app: AppDep, session: SessionDep, arq: ArqDep
) -> ProfileGroup:
    """Create a static group (members managed through the API) or a dynamic one (membership
    follows `rule_tree`). Only `name` is required. A taken `custom_id` is a 409."""
    return await service.view(session, await service.create_group(session, arq, app, data))


@router.get("/profile-groups/", response_model=Page[ProfileGroup], summary="List profile groups")
async def list_groups(
    request: Request,
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    membership_type: Literal["static", "dynamic"] | None = None,
    custom_id: str | None = None,
    name: Annotated[str | None, Query(description="Case-insensitive substring.")] = None,
    attribute: Annotated[
        list[str],
        Query(description="`key:value` or `key`; repeatable, all must hold (indexed lookup)."),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
) -> Response:
    """Active groups of the application, newest first. Filters combine with AND."""
    repo = GroupRepository(session)
    stmt = repo.list_statement(
        app.id, service.list_filters(membership_type, custom_id, name, attribute)
    )
    rows, next_url, prev_url = await paginate(
        session,
        request,
        page,
        stmt,
        [(ProfileGroupModel.created_at, "created_at"), (ProfileGroupModel.id, "id")],
        entity=True,
    )
    results = await service.views(session, rows)
    return page_response(ProfileGroup, await repo.count_rows(stmt), next_url, prev_url, results)


@router.get(
    "/profile-groups/{group_id}/",
    response_model=ProfileGroup,
    responses=responses(NotFound),
    summary="Get a profile group",
)
async def get_group(group_id: UUID, app: AppDep, session: SessionDep) -> ProfileGroup:
    return await service.view(session, await service.get_group(session, app, group_id))


@router.get(
    "/profile-group-by-custom-id/{custom_id}/",
    response_model=ProfileGroup,
    responses=responses(NotFound),
    summary="Get a profile group by its custom id",
)
async def get_group_by_custom_id(custom_id: str, app: AppDep, session: SessionDep) -> ProfileGroup:
    group = await service.get_group_by_custom_id(session, app, custom_id)
    return await service.view(session, group)


@router.patch(
    "/profile-groups/{group_id}/",
    response_model=ProfileGroup,
    responses=responses(NotFound, Conflict),
    summary="Update a profile group",
)
async def update_group(
    group_id: UUID, data: ProfileGroupUpdate, app: AppDep, session: SessionDep, arq: ArqDep
) -> ProfileGroup:
    """Partial update. `attributes` replaces the list. Setting `is_active` to false makes the
    group unavailable through the API (404) until `profile-groups groups activate`."""
    group = await service.update_group(session, arq, app, group_id, data)
    return await service.view(session, group)


@router.delete(
    "/profile-groups/{group_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound),
    summary="Delete a profile group",
)
async def delete_group(group_id: UUID, app: AppDep, session: SessionDep) -> Response:
    await service.delete_group(session, app, group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/profile-groups/{group_id}/members/",
    response_model=MembersAdded,
    responses=responses(NotFound, Conflict),
    summary="Add members",
)
async def add_members(
    group_id: UUID, change: MembersChange, app: AppDep, session: SessionDep
) -> MembersAdded:
    """Add up to 10,000 profiles by `profile_ids` or `custom_ids` (exactly one), atomically.
    Ids are echoed in the space they were sent in. 409 on a dynamic group."""
    return await service.add_members(session, app, group_id, change)


@router.delete(
    "/profile-groups/{group_id}/members/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound, Conflict),
    summary="Remove members",
)
async def remove_members(
    group_id: UUID, change: MembersChange, app: AppDep, session: SessionDep
) -> Response:
    """Remove by `profile_ids` (or its synonym `application_profile_ids`) or `custom_ids`.
    Ids that are not members are ignored."""
    await service.remove_members(session, app, group_id, change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/profile-groups/{group_id}/members/",
    response_model=Page[Member],
    responses=responses(NotFound),
    summary="List members",
)
async def list_members(
    request: Request, group_id: UUID, app: AppDep, session: SessionDep, page: PageDep
) -> Response:
    """Members, newest membership first."""
    group = await service.get_group(session, app, group_id)
    stmt = GroupRepository(session).members_statement(group.id)
    rows, next_url, prev_url = await paginate(
        session,
        request,
        page,
        stmt,
        [(GroupMembership.created_at, "membership_created_at"), (GroupMembership.profile_id, "id")],
    )
    # profile_count is kept exact with the memberships, so it is the count.
    return page_response(Member, group.profile_count, next_url, prev_url, rows)


@router.get(
    "/profile-groups/{group_id}/members/{profile_id}/",
    response_model=Member,
    responses=responses(NotFound),
    summary="Check one profile's membership",
)
async def get_member(
    group_id: UUID, profile_id: str, principal: ReaderDep, session: SessionDep
) -> Member:
    """200 with the member when the profile is a member of the group, 404 otherwise.
    A profile token may ask about its own profile only."""
    await ensure_may_read_membership(session, principal, profile_id)
    member = await service.get_member(session, principal.app, group_id, profile_id)
    return Member.model_validate(member)


async def _profile_groups_page(
    request: Request, app_id: UUID, profile_id: UUID, session: SessionDep, page: PageParams
) -> Response:
    repo = GroupRepository(session)
    stmt = repo.profile_groups_statement(app_id, profile_id)
    rows, next_url, prev_url = await paginate(
        session,
        request,
        page,
        stmt,
        [
            (GroupMembership.created_at, "membership_created_at"),
            (GroupMembership.group_id, "group_id"),
        ],
    )
    return page_response(
        ProfileGroupMembership, await repo.count_rows(stmt), next_url, prev_url, rows
    )


@router.get(
    "/profiles/{profile_id}/profile-groups/",
    response_model=Page[ProfileGroupMembership],
    responses=responses(NotFound),
    summary="List the groups a profile is in",
)
async def profile_groups(
    request: Request, profile_id: UUID, principal: ReaderDep, session: SessionDep, page: PageDep
) -> Response:
    """Static and dynamic groups alike, newest membership first; inactive groups are left out.
    A profile token may read its own profile's groups only."""
    profile = await readable_profile(session, principal, profile_id)
    return await _profile_groups_page(request, principal.app.id, profile.id, session, page)


@router.get(
    "/profile-by-custom-id/{custom_id}/profile-groups/",
    response_model=Page[ProfileGroupMembership],
    responses=responses(NotFound),
    summary="List the groups a profile is in, by the profile's custom id",
)
async def profile_groups_by_custom_id(
    request: Request, custom_id: str, principal: ReaderDep, session: SessionDep, page: PageDep
) -> Response:
    profile = await readable_profile_by_custom_id(session, principal, custom_id)
    return await _profile_groups_page(request, principal.app.id, profile.id, session, page)
