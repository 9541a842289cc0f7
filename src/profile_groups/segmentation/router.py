"""Dynamic group endpoints (SPEC §7.2). Mounted before the groups router, so that
/profile-groups/preview/ is not taken for a group id."""

from typing import Any, cast
from uuid import UUID

from fastapi import Request, status

from profile_groups.db import SessionDep
from profile_groups.groups.service import get_group
from profile_groups.kit.auth import AppDep
from profile_groups.kit.errors import (
    Conflict,
    NotFound,
    Unavailable,
    responses,
)
from profile_groups.kit.pagination import Page, PageDep, paginate
from profile_groups.kit.queue import ArqDep
from profile_groups.kit.routing import api_router
from profile_groups.models.segmentation import GroupEvaluation
from profile_groups.segmentation import service
from profile_groups.segmentation.repository import SegmentationRepository
from profile_groups.segmentation.schemas import Evaluation, Preview, PreviewRequest

router = api_router("dynamic groups")


@router.post(
    "/profile-groups/preview/",
    response_model=Preview,
    responses=responses(Unavailable),
    summary="Preview a rule tree",
)
async def preview(
    request: Request, data: PreviewRequest, app: AppDep, session: SessionDep
) -> Preview:
    """Count the profiles a rule tree matches now and return a sample of them (newest profiles
    first), without creating anything: for sizing an audience before saving it. Bounded by a
    statement timeout; a preview that does not finish in time is a 503."""
    timeout_ms: int = request.app.state.settings.PREVIEW_TIMEOUT_MS
    # The tree arrives unvalidated (raw JSON): the service validates it, reporting every problem.
    tree = cast(dict[str, Any], data.rule_tree)
    return await service.preview(session, app.id, tree, data.sample_size, timeout_ms)


@router.post(
    "/profile-groups/{group_id}/evaluate/",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Evaluation,
    responses=responses(NotFound, Conflict),
    summary="Evaluate a dynamic group now",
)
async def evaluate(
    group_id: UUID, app: AppDep, session: SessionDep, arq: ArqDep
) -> GroupEvaluation:
    """Queue an evaluation of the group's rules. A request made while one is already queued joins
    it (the same evaluation is returned); one made while an evaluation runs queues one follow-up.
    409 for a static group."""
    group = await get_group(session, app, group_id)
    return await service.request_evaluation(session, arq, group)


@router.get(
    "/profile-groups/{group_id}/evaluations/",
    response_model=Page[Evaluation],
    responses=responses(NotFound),
    summary="List a dynamic group's evaluations",
)
async def list_evaluations(
    request: Request, group_id: UUID, app: AppDep, session: SessionDep, page: PageDep
) -> Page[Evaluation]:
    """The group's evaluations, newest first: queued, running and finished ones with their
    counts, duration and error. A static group has none."""
    group = await get_group(session, app, group_id)
    repo = SegmentationRepository(session)
    rows, next_url, prev_url = await paginate(
        session,
        request,
        page,
        repo.history_statement(group.id),
        [
            (GroupEvaluation.created_at.expression, "created_at"),
            (GroupEvaluation.id.expression, "id"),
        ],
        entity=True,
    )
    return Page(
        count=await repo.count_history(group.id),
        next=next_url,
        previous=prev_url,
        results=[Evaluation.model_validate(r) for r in rows],
    )
