"""Every /profile-groups/** endpoint, and a profile's groups (docs/groups.md,
docs/segmentation.md). Handlers are thin: parse, call the service, shape."""

from typing import Annotated, Literal
from uuid import UUID

from fastapi import Path, Query, Response, status

from profile_groups.applications.auth import AppDep, ReaderDep
from profile_groups.groups import evaluation, explain, history, service
from profile_groups.groups.schemas import (
    DYNAMIC_CREATE_EXAMPLE,
    DYNAMIC_GROUP_EXAMPLE,
    GROUP_EXAMPLE,
    STATIC_CREATE_EXAMPLE,
    Change,
    ChangeKind,
    DynamicExplanation,
    Evaluation,
    Member,
    MembersAdded,
    MembersChange,
    ProfileGroup,
    ProfileGroupCreate,
    ProfileGroupMembership,
    ProfileGroupUpdate,
    SizeHistory,
    StaticExplanation,
)
from profile_groups.kit.errors import Conflict, NotFound, PermissionDenied, Unavailable, responses
from profile_groups.kit.openapi import body_examples, response_examples
from profile_groups.kit.pagination import Page, PageDep, render
from profile_groups.kit.routing import api_router
from profile_groups.kit.state import ArqDep, SessionDep, SettingsDep
from profile_groups.models.segmentation import GroupEvaluation
from profile_groups.segmentation import service as segmentation
from profile_groups.segmentation.schemas import Preview, PreviewRequest

router = api_router("profile groups")

GroupId = Annotated[UUID, Path(description="The profile group's id.")]
ProfileId = Annotated[UUID, Path(description="The profile's id.")]
# Read as text so that a profile token naming a malformed id is a 403, not a 404.
ProfileIdText = Annotated[
    str, Path(description="The profile's id.", json_schema_extra={"format": "uuid"})
]


@router.post(
    "/profile-groups/",
    status_code=status.HTTP_201_CREATED,
    response_model=ProfileGroup,
    responses={
        **responses(Conflict),
        201: response_examples(
            "The group as created.",
            static=("A static group", GROUP_EXAMPLE),
            dynamic=("A dynamic group", DYNAMIC_GROUP_EXAMPLE),
        ),
    },
    summary="Create a profile group",
    openapi_extra=body_examples(
        static=("A static group", STATIC_CREATE_EXAMPLE),
        dynamic=("A dynamic group with a rule tree", DYNAMIC_CREATE_EXAMPLE),
    ),
)
async def create_group(
    data: ProfileGroupCreate, app: AppDep, session: SessionDep, arq: ArqDep, settings: SettingsDep
) -> ProfileGroup:
    """Create a static group (members managed through the API) or a dynamic one (membership
    follows `rule_tree`). Only `name` is required. A taken `custom_id` is a 409."""
    group = await service.create_group(session, arq, settings, app, data)
    return await service.view(session, group)


@router.get("/profile-groups/", response_model=Page[ProfileGroup], summary="List profile groups")
async def list_groups(
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    membership_type: Annotated[
        Literal["static", "dynamic"] | None, Query(description="Only groups of this type.")
    ] = None,
    custom_id: Annotated[
        str | None, Query(description="Only the group with this custom id (0 or 1 result).")
    ] = None,
    name: Annotated[
        str | None, Query(description="Only groups whose name contains this (case-insensitive).")
    ] = None,
    attribute: Annotated[
        list[str],
        Query(description="`key:value` or `key`; repeatable, all must hold (indexed lookup)."),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
) -> Response:
    """Active groups of the application, newest first. Filters combine with AND."""
    paged = await service.list_groups(
        session,
        app,
        page,
        membership_type=membership_type,
        custom_id=custom_id,
        name=name,
        attribute=attribute,
    )
    return render(ProfileGroup, paged)


@router.post(
    "/profile-groups/preview/",
    response_model=Preview,
    responses=responses(Unavailable),
    summary="Preview a rule tree",
)
async def preview(
    data: PreviewRequest, app: AppDep, session: SessionDep, settings: SettingsDep
) -> Preview:
    """Count the profiles a rule tree matches now and return a sample of them (newest profiles
    first), without creating anything: for sizing an audience before saving it. Bounded by a
    statement timeout; a preview that does not finish in time is a 503."""
    # The tree arrives unvalidated (raw JSON): the service validates it, reporting every problem.
    return await segmentation.preview(
        session, app.id, data.rule_tree, data.sample_size, settings.PREVIEW_TIMEOUT_MS
    )


@router.get(
    "/profile-groups/{group_id}/",
    response_model=ProfileGroup,
    responses=responses(NotFound),
    summary="Get a profile group",
)
async def get_group(group_id: GroupId, app: AppDep, session: SessionDep) -> ProfileGroup:
    return await service.view(session, await service.get_group(session, app, group_id))


@router.get(
    "/profile-group-by-custom-id/{custom_id}/",
    response_model=ProfileGroup,
    responses=responses(NotFound),
    summary="Get a profile group by its custom id",
)
async def get_group_by_custom_id(
    custom_id: Annotated[str, Path(description="The group's custom id.")],
    app: AppDep,
    session: SessionDep,
) -> ProfileGroup:
    group = await service.get_group_by_custom_id(session, app, custom_id)
    return await service.view(session, group)


@router.patch(
    "/profile-groups/{group_id}/",
    response_model=ProfileGroup,
    responses=responses(NotFound, Conflict),
    summary="Update a profile group",
)
async def update_group(
    group_id: GroupId,
    data: ProfileGroupUpdate,
    app: AppDep,
    session: SessionDep,
    arq: ArqDep,
    settings: SettingsDep,
) -> ProfileGroup:
    """Partial update. `attributes` replaces the list. Setting `is_active` to false makes the
    group unavailable through the API (404) until `profile-groups groups activate`."""
    group = await service.update_group(session, arq, settings, app, group_id, data)
    return await service.view(session, group)


@router.delete(
    "/profile-groups/{group_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound),
    summary="Delete a profile group",
)
async def delete_group(group_id: GroupId, app: AppDep, session: SessionDep) -> Response:
    await service.delete_group(session, app, group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Members ------------------------------------------------------------------------------------


@router.post(
    "/profile-groups/{group_id}/members/",
    response_model=MembersAdded,
    responses=responses(NotFound, Conflict),
    summary="Add members",
)
async def add_members(
    group_id: GroupId, change: MembersChange, app: AppDep, session: SessionDep
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
    group_id: GroupId, change: MembersChange, app: AppDep, session: SessionDep
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
    group_id: GroupId,
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    settings: SettingsDep,
    as_of: Annotated[
        str | None,
        Query(
            description="The members at this instant (ISO 8601), rebuilt from the change log; "
            "at most CHANGE_RETENTION_DAYS back (docs/changes.md)."
        ),
    ] = None,
) -> Response:
    """Members, newest membership first. With `as_of`, the members at that instant, with
    `membership_created_at` as of then."""
    if as_of is not None:
        paged = await history.members_as_of(
            session, app, group_id, page, as_of, settings.CHANGE_RETENTION_DAYS
        )
        return render(Member, paged)
    return render(Member, await service.list_members(session, app, group_id, page))


@router.get(
    "/profile-groups/{group_id}/members/{profile_id}/",
    response_model=Member,
    responses=responses(NotFound),
    summary="Check one profile's membership",
)
async def get_member(
    group_id: GroupId,
    profile_id: ProfileIdText,
    principal: ReaderDep,
    session: SessionDep,
) -> Member:
    """200 with the member when the profile is a member of the group, 404 otherwise.
    A profile token may ask about its own profile only."""
    return Member.model_validate(await service.get_member(session, principal, group_id, profile_id))


# Evaluations --------------------------------------------------------------------------------


@router.post(
    "/profile-groups/{group_id}/evaluate/",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Evaluation,
    responses=responses(NotFound, Conflict),
    summary="Evaluate a dynamic group now",
)
async def evaluate(
    group_id: GroupId, app: AppDep, session: SessionDep, arq: ArqDep
) -> GroupEvaluation:
    """Queue an evaluation of the group's rules. A request made while one is already queued joins
    it (the same evaluation is returned); one made while an evaluation runs queues one follow-up.
    409 for a static group."""
    group = await service.get_group(session, app, group_id)
    return await evaluation.request_evaluation(session, arq, group)


@router.get(
    "/profile-groups/{group_id}/evaluations/",
    response_model=Page[Evaluation],
    responses=responses(NotFound),
    summary="List a dynamic group's evaluations",
)
async def list_evaluations(
    group_id: GroupId, app: AppDep, session: SessionDep, page: PageDep
) -> Response:
    """The group's evaluations, newest first: queued, running and finished ones with their
    counts, duration and error. A static group has none."""
    group = await service.get_group(session, app, group_id)
    return render(Evaluation, await evaluation.list_evaluations(session, group, page))


# A profile's groups ---------------------------------------------------------------------------


@router.get(
    "/profiles/{profile_id}/profile-groups/",
    response_model=Page[ProfileGroupMembership],
    responses=responses(NotFound),
    summary="List the groups a profile is in",
)
async def profile_groups(
    profile_id: ProfileId, principal: ReaderDep, session: SessionDep, page: PageDep
) -> Response:
    """Static and dynamic groups alike, newest membership first; inactive groups are left out.
    A profile token may read its own profile's groups only."""
    paged = await service.profile_groups(session, principal, page, profile_id=profile_id)
    return render(ProfileGroupMembership, paged)


@router.get(
    "/profile-by-custom-id/{custom_id}/profile-groups/",
    response_model=Page[ProfileGroupMembership],
    responses=responses(NotFound),
    summary="List the groups a profile is in, by the profile's custom id",
)
async def profile_groups_by_custom_id(
    custom_id: Annotated[str, Path(description="The profile's custom id.")],
    principal: ReaderDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    paged = await service.profile_groups(session, principal, page, custom_id=custom_id)
    return render(ProfileGroupMembership, paged)


# Explain ----------------------------------------------------------------------------------

# 403: a profile token asking about another profile; 409: stored rules that no longer validate.
_EXPLAIN_RESPONSES = responses(NotFound, PermissionDenied, Conflict)


@router.get(
    "/profile-groups/{group_id}/explain/{profile_id}/",
    response_model=DynamicExplanation | StaticExplanation,
    responses=_EXPLAIN_RESPONSES,
    summary="Explain why a profile is or is not in a group",
)
async def explain_membership(
    group_id: GroupId, profile_id: ProfileIdText, principal: ReaderDep, session: SessionDep
) -> DynamicExplanation | StaticExplanation:
    """For a dynamic group, its current rule tree evaluated for the profile now, by the same
    compiled SQL as evaluations: every node's `result` and every leaf's `actual` value (null when
    the profile has none), `matches` (the whole tree) and `member` (the stored membership, which
    follows `matches` at the next update). For a static group, `member` and
    `membership_created_at`. A profile token may ask about its own profile only."""
    return await explain.explain_membership(session, principal, group_id, profile_id=profile_id)


@router.get(
    "/profile-groups/{group_id}/explain/profile-by-custom-id/{custom_id}/",
    response_model=DynamicExplanation | StaticExplanation,
    responses=_EXPLAIN_RESPONSES,
    summary="Explain why a profile is or is not in a group, by the profile's custom id",
)
async def explain_membership_by_custom_id(
    group_id: GroupId,
    custom_id: Annotated[str, Path(description="The profile's custom id.")],
    principal: ReaderDep,
    session: SessionDep,
) -> DynamicExplanation | StaticExplanation:
    """As `explain_membership`, naming the profile by its custom id."""
    return await explain.explain_membership(session, principal, group_id, custom_id=custom_id)


# The change log ------------------------------------------------------------------------------


@router.get(
    "/profile-groups/{group_id}/changes/",
    response_model=Page[Change],
    responses=responses(NotFound),
    summary="List a group's membership changes",
)
async def list_group_changes(
    group_id: GroupId,
    app: AppDep,
    session: SessionDep,
    page: PageDep,
    after: Annotated[
        str | None,
        Query(description="Only changes after this change id (the last `id` a consumer saw)."),
    ] = None,
    change: Annotated[ChangeKind | None, Query(description="Only entries or exits.")] = None,
    since: Annotated[str | None, Query(description="Only changes at or after this.")] = None,
    until: Annotated[str | None, Query(description="Only changes before this.")] = None,
) -> Response:
    """Every entry and exit of the group, oldest first. A consumer that keeps the last `id` it
    saw and asks again with `after=<that id>` never misses a change and never sees one twice
    (docs/changes.md says why)."""
    paged = await history.list_changes(
        session, app, group_id, page, after=after, change=change, since=since, until=until
    )
    return render(Change, paged)


@router.get(
    "/profile-groups/{group_id}/size-history/",
    response_model=SizeHistory,
    responses=responses(NotFound),
    summary="A group's size over time",
)
async def get_group_size_history(
    group_id: GroupId,
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
    since: Annotated[
        str | None,
        Query(
            description="First interval: the one holding this instant (default: 30 days or "
            "48 hours before `until`, clipped to what the change log covers)."
        ),
    ] = None,
    until: Annotated[
        str | None, Query(description="Last interval: the one holding this instant (default now).")
    ] = None,
    interval: Annotated[Literal["hour", "day"], Query(description="UTC hours or days.")] = "day",
) -> SizeHistory:
    """One row per interval, oldest first: `at` (its start), `entered` and `exited` within
    it, and `profile_count` at its end. At most 1,000 rows."""
    return await history.size_history(
        session,
        app,
        group_id,
        since=since,
        until=until,
        interval=interval,
        retention_days=settings.CHANGE_RETENTION_DAYS,
    )


@router.get(
    "/profiles/{profile_id}/group-history/",
    response_model=Page[Change],
    responses=responses(NotFound),
    summary="List a profile's membership changes",
)
async def list_profile_group_history(
    profile_id: ProfileId, principal: ReaderDep, session: SessionDep, page: PageDep
) -> Response:
    """The profile's entries and exits across the application's groups, newest first.
    A profile token may read its own profile's history only."""
    paged = await history.profile_history(session, principal, page, profile_id=profile_id)
    return render(Change, paged)


@router.get(
    "/profile-by-custom-id/{custom_id}/group-history/",
    response_model=Page[Change],
    responses=responses(NotFound),
    summary="List a profile's membership changes, by the profile's custom id",
)
async def list_profile_group_history_by_custom_id(
    custom_id: Annotated[str, Path(description="The profile's custom id.")],
    principal: ReaderDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    paged = await history.profile_history(session, principal, page, custom_id=custom_id)
    return render(Change, paged)
