"""Dynamic groups' rules and evaluations: rulesets, the evaluation queue, running one
evaluation, and the worker's periodic tick (docs/segmentation.md).

The queue is the `group_evaluations` table; arq jobs only wake the worker for one queued row (job
id `evaluate:<evaluation id>`), so a lost job is found again by the tick and nothing depends on
Redis keeping it.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker, after_commit
from profile_groups.groups.repositories.evaluations import EvaluationRepository
from profile_groups.groups.repositories.membership import MembershipRepository
from profile_groups.groups.repositories.rulesets import RulesetRepository
from profile_groups.groups.schemas import EvaluationState, Ruleset
from profile_groups.kit.errors import QUERY_CANCELED, Conflict, sqlstate
from profile_groups.kit.pagination import Paged, PageRequest, paginate
from profile_groups.kit.repository import clock, set_local, set_statement_timeout
from profile_groups.kit.retry import retry_on_race
from profile_groups.models import ProfileGroup
from profile_groups.models.segmentation import GroupEvaluation
from profile_groups.segmentation.rules import referenced_keys
from profile_groups.segmentation.service import check_tree, describe

log = logging.getLogger("profile_groups.evaluation")

EVALUATE_JOB = "evaluate_group"
# A queued evaluation whose job has not started after this long is enqueued again (lost job).
REQUEUE_AFTER = timedelta(seconds=60)
HISTORY_DAYS = 90
# Memory for the evaluation's hashes (the windowed aggregate, the joins, the diff), for its
# transaction only: with the server default (often 4MB) a million-profile evaluation spills to
# temporary files. At most `max_jobs` (4) evaluations run per worker.
EVALUATION_WORK_MEM = "64MB"


# Rulesets and the queue ---------------------------------------------------------------------


async def _enqueue(arq: ArqRedis, group_id: UUID, evaluation_id: UUID) -> bool:
    """Enqueue the job of one queued evaluation; the job id makes a repeat a no-op.

    Never raises: a lost enqueue (Redis down) is retried by the worker's tick, which re-enqueues
    queued evaluations that have waited longer than REQUEUE_AFTER.
    """
    try:
        job = await arq.enqueue_job(
            EVALUATE_JOB, str(evaluation_id), _job_id=f"evaluate:{evaluation_id}"
        )
    except Exception:
        log.warning(
            "could not enqueue evaluation",
            extra={"group_id": str(group_id), "evaluation_id": str(evaluation_id)},
            exc_info=True,
        )
        return False
    return job is not None


def _enqueue_after_commit(
    session: AsyncSession, arq: ArqRedis, evaluation: GroupEvaluation
) -> None:
    group_id, evaluation_id = evaluation.group_id, evaluation.id

    async def callback() -> None:
        await _enqueue(arq, group_id, evaluation_id)

    after_commit(session, callback)


async def set_ruleset(
    session: AsyncSession,
    arq: ArqRedis,
    settings: Settings,
    group: ProfileGroup,
    tree: dict[str, Any],
) -> None:
    """Store `tree` (already validated) as the group's new ruleset and queue its evaluation.

    The evaluation is enqueued after the request commits, so the worker never reads rules that
    could still roll back. The next scheduled run is one interval from now.
    """
    rulesets = RulesetRepository(session)
    ruleset = await rulesets.add_ruleset(group, tree, sorted(referenced_keys(tree)))
    next_at = datetime.now(UTC) + timedelta(seconds=settings.EVALUATION_INTERVAL_SECONDS)
    await rulesets.point_at(group, ruleset.id, next_at)
    evaluation, created = await EvaluationRepository(session).request(group.id, "rule_change")
    if evaluation is not None and created:
        _enqueue_after_commit(session, arq, evaluation)


async def request_evaluation(
    session: AsyncSession, arq: ArqRedis, group: ProfileGroup
) -> GroupEvaluation:
    """POST …/evaluate/: the queued evaluation (joining one already queued)."""
    if group.membership_type != "dynamic":
        raise Conflict("A static group has no rules to evaluate.")
    evaluation, created = await EvaluationRepository(session).request(group.id, "manual")
    if evaluation is None:
        raise Conflict("This group has no rule tree to evaluate.")
    if created:
        _enqueue_after_commit(session, arq, evaluation)
    return evaluation


async def list_evaluations(
    session: AsyncSession, group: ProfileGroup, page: PageRequest
) -> Paged[GroupEvaluation]:
    repo = EvaluationRepository(session)
    return await paginate(
        session,
        page,
        repo.history_statement(group.id),
        [(GroupEvaluation.created_at, "created_at"), (GroupEvaluation.id, "id")],
        await repo.count_history(group.id),
        entity=True,
    )


async def states(
    session: AsyncSession, group_ids: list[UUID]
) -> dict[UUID, tuple[Ruleset, EvaluationState]]:
    """The `ruleset` and `evaluation` of the dynamic ones among `group_ids`, in one query.

    The state: `running` while an evaluation runs; else `pending` while one is queued (or none
    ever finished); else the outcome of the latest one. `last_evaluated_at` is the `as_of` of the
    latest successful evaluation, the moment the current membership reflects;
    `next_evaluation_at` is when a queued evaluation was requested, or else the next scheduled run.
    """
    if not group_ids:
        return {}
    out: dict[UUID, tuple[Ruleset, EvaluationState]] = {}
    for row in await EvaluationRepository(session).states(group_ids):
        latest = row.latest_status
        if latest == "running":
            status = "running"
        elif row.queued_at is not None or latest is None:
            status = "pending"
        else:
            status = latest
        ruleset = Ruleset(
            id=row.ruleset_id, rule_tree=row.rule_tree, created_at=row.ruleset_created_at
        )
        evaluation = EvaluationState(
            status=status,
            last_evaluated_at=row.last_evaluated_at,
            next_evaluation_at=row.queued_at or row.next_evaluation_at,
            error=row.latest_error if latest == "failed" else None,
        )
        out[row.group_id] = (ruleset, evaluation)
    return out


# Evaluation ---------------------------------------------------------------------------------


class _RulesNoLongerValid(Exception):
    pass


def _error_text(exc: BaseException, timeout_ms: int) -> str:
    if isinstance(exc, _RulesNoLongerValid):
        return str(exc)
    if isinstance(exc, DBAPIError) and sqlstate(exc) == QUERY_CANCELED:
        return f"The evaluation exceeded the statement timeout ({timeout_ms} ms)."
    first_line = (str(getattr(exc, "orig", None) or exc) or type(exc).__name__).splitlines()[0]
    return f"The evaluation failed: {first_line[:500]}"


async def run_evaluation(
    sessionmaker: AsyncSessionMaker, evaluation_id: UUID, *, timeout_ms: int
) -> GroupEvaluation | None:
    """Run one queued evaluation; None when there is nothing to run.

    1. Claim it (queued -> running) in its own short transaction, so readers see it running.
    2. In one transaction: lock the group row (FOR NO KEY UPDATE, see MembershipRepository),
       skip a group that is gone, inactive or static, check the rules against the current
       catalogue, apply the matching set, record the outcome. A lost race is retried once.
    3. On failure that transaction rolls back (membership untouched) and the error is recorded in
       a separate one.
    """
    async with sessionmaker() as session, session.begin():
        claimed = await EvaluationRepository(session).claim(evaluation_id)
    if claimed is None:
        return None  # already taken by another job, or its group was deleted
    as_of: datetime | None = None

    async def evaluate() -> GroupEvaluation | None:
        nonlocal as_of
        as_of = None
        async with sessionmaker() as session, session.begin():
            evaluations = EvaluationRepository(session)
            # Waiting for another evaluation of the group is bounded by the job timeout, not by
            # the statement timeout, which applies to the evaluation itself.
            await set_statement_timeout(session, 0)
            current = await RulesetRepository(session).lock_current(claimed.group_id)
            if current is None:
                await evaluations.delete_evaluation(evaluation_id)
                return None
            if await evaluations.lock_evaluation(evaluation_id) is None:
                return None
            await set_statement_timeout(session, timeout_ms)
            await set_local(session, "work_mem", EVALUATION_WORK_MEM)
            as_of = await clock(session)
            group = current.group
            checked, errors = await check_tree(
                session, group.application_id, current.rule_tree, ("rule_tree",)
            )
            if checked is None:
                raise _RulesNoLongerValid(describe(errors))
            counts = await MembershipRepository(session).replace(
                group, checked.matching(group.application_id, as_of), as_of
            )
            return await evaluations.finish(evaluation_id, current.ruleset_id, as_of, counts)

    try:
        return await retry_on_race(evaluate, attempts=2)
    except Exception as exc:
        log.warning(
            "evaluation failed",
            extra={"group_id": str(claimed.group_id), "evaluation_id": str(evaluation_id)},
            exc_info=not isinstance(exc, _RulesNoLongerValid),
        )
        async with sessionmaker() as session, session.begin():
            evaluations = EvaluationRepository(session)
            await evaluations.fail(evaluation_id, _error_text(exc, timeout_ms), as_of)
            return await evaluations.get_evaluation(evaluation_id)


async def schedule_tick(
    sessionmaker: AsyncSessionMaker, arq: ArqRedis, settings: Settings
) -> dict[str, int]:
    """The worker's periodic tick: queue every due group, recover lost work, prune history."""
    now = datetime.now(UTC)
    interval = timedelta(seconds=settings.EVALUATION_INTERVAL_SECONDS)
    async with sessionmaker() as session, session.begin():
        repo = EvaluationRepository(session)
        due = await repo.request_due(now, interval)
        stale = await repo.stale_queued(now - REQUEUE_AFTER)
        # A worker kills a job after its timeout; a running row older than that whose
        # transaction is gone (not row-locked) was lost with its worker.
        lost = await repo.fail_lost(
            now - timedelta(seconds=2 * settings.job_timeout_seconds),
            "The worker running this evaluation stopped before it finished.",
        )
        pruned = await repo.prune_history(now - timedelta(days=HISTORY_DAYS))
    enqueued = 0
    for group_id, evaluation_id in [*due, *stale]:
        enqueued += await _enqueue(arq, group_id, evaluation_id)
    return {
        "due": len(due),
        "requeued": len(stale),
        "lost": lost,
        "pruned": pruned,
        "enqueued": enqueued,
    }
