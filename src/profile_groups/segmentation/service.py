"""Rules of dynamic groups: validation, rulesets, the evaluation queue, evaluation and preview.

The groups package calls `validate_rule_tree`, `set_ruleset` and `dynamic_views`; the profiles
package calls `groups_using_attribute`; the worker calls `run_evaluation` and `schedule_tick`.
"""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes.expressions import AttributeContext
from profile_groups.attributes.registry import AttributeDef, catalogue
from profile_groups.config import Settings, get_settings
from profile_groups.db import AsyncSessionMaker, after_commit
from profile_groups.kit.errors import (
    QUERY_CANCELED,
    RACE_SQLSTATES,
    BadRequest,
    Conflict,
    Unavailable,
    sqlstate,
)
from profile_groups.models import ProfileGroup
from profile_groups.models.segmentation import GroupEvaluation
from profile_groups.segmentation.compiler import compile_tree
from profile_groups.segmentation.repository import SegmentationRepository
from profile_groups.segmentation.rules import ParsedTree, parse_rule_tree, referenced_keys
from profile_groups.segmentation.schemas import Preview, PreviewProfile

log = logging.getLogger("profile_groups.segmentation")

EVALUATE_JOB = "evaluate_group"
# A queued evaluation whose job has not started after this long is enqueued again (lost job).
REQUEUE_AFTER = timedelta(seconds=60)
HISTORY_DAYS = 90
# Memory for the evaluation's hashes (the windowed aggregate, the joins, the diff), for its
# transaction only: with the server default (often 4MB) a million-profile evaluation spills to
# temporary files. At most `max_jobs` (4) evaluations run per worker.
EVALUATION_WORK_MEM = "64MB"


def _describe(errors: Sequence[dict[str, Any]]) -> str:
    first = errors[0] if errors else {"loc": [], "msg": "Invalid rule tree."}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "rule_tree"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"Invalid rule tree: {where}: {first['msg']}{more}"


def _custom(defs: dict[str, AttributeDef]) -> dict[str, AttributeDef]:
    return {k: a for k, a in defs.items() if a.source == "custom"}


# Rule trees ---------------------------------------------------------------------------------


async def parse_for(
    session: AsyncSession,
    application_id: UUID,
    tree: Any,
    loc: Sequence[str | int] = ("body", "rule_tree"),
) -> tuple[ParsedTree, dict[str, AttributeDef]]:
    defs = await catalogue(session, application_id)
    parsed, errors = parse_rule_tree(tree, defs, loc)
    if parsed is None:
        raise BadRequest(_describe(errors), errors)
    return parsed, defs


async def validate_rule_tree(
    session: AsyncSession,
    application_id: UUID,
    tree: dict[str, Any],
    loc: Sequence[str | int] = ("body", "rule_tree"),
) -> dict[str, Any]:
    """The tree as given, or a 400 listing EVERY problem, each with its full `loc` (SPEC §7.1)."""
    await parse_for(session, application_id, tree, loc)
    return tree


async def groups_using_attribute(
    session: AsyncSession, application_id: UUID, key: str
) -> list[tuple[UUID, str]]:
    """(id, name) of the active dynamic groups whose current rules read attribute `key` (§4)."""
    return await SegmentationRepository(session).groups_using(application_id, key)


# Rulesets and the queue ---------------------------------------------------------------------


async def _enqueue(arq: ArqRedis, group_id: UUID, evaluation_id: UUID, trigger: str) -> bool:
    """Enqueue the job of one queued evaluation; the job id makes a repeat a no-op.

    Never raises: a lost enqueue (Redis down) is retried by the worker's tick, which re-enqueues
    queued evaluations that have waited longer than REQUEUE_AFTER.
    """
    try:
        job = await arq.enqueue_job(
            EVALUATE_JOB,
            str(group_id),
            trigger,
            str(evaluation_id),
            _job_id=f"evaluate:{evaluation_id}",
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
    group_id, evaluation_id, trigger = evaluation.group_id, evaluation.id, evaluation.trigger

    async def callback() -> None:
        await _enqueue(arq, group_id, evaluation_id, trigger)

    after_commit(session, callback)


async def set_ruleset(
    session: AsyncSession,
    arq_pool: ArqRedis,
    group: ProfileGroup,
    tree: dict[str, Any],
    trigger: str = "rule_change",
    *,
    settings: Settings | None = None,
) -> None:
    """Store `tree` (already validated) as the group's new ruleset and queue its evaluation.

    The evaluation is enqueued after the request commits, so the worker never reads rules that
    could still roll back.
    """
    settings = settings or get_settings()
    repo = SegmentationRepository(session)
    ruleset = await repo.add_ruleset(group, tree, sorted(referenced_keys(tree)))
    next_at = datetime.now(UTC) + timedelta(seconds=settings.EVALUATION_INTERVAL_SECONDS)
    await repo.point_at(group, ruleset.id, next_at)
    evaluation, created = await repo.request(group.id, trigger)
    if evaluation is not None and created:
        _enqueue_after_commit(session, arq_pool, evaluation)


async def request_evaluation(
    session: AsyncSession, arq_pool: ArqRedis, group: ProfileGroup
) -> GroupEvaluation:
    """POST …/evaluate/: the queued evaluation (joining one already queued)."""
    if group.membership_type != "dynamic":
        raise Conflict("A static group has no rules to evaluate.")
    evaluation, created = await SegmentationRepository(session).request(group.id, "manual")
    if evaluation is None:
        raise Conflict("This group has no rule tree to evaluate.")
    if created:
        _enqueue_after_commit(session, arq_pool, evaluation)
    return evaluation


async def dynamic_views(
    session: AsyncSession, group_ids: list[UUID]
) -> dict[UUID, tuple[dict[str, Any], dict[str, Any]]]:
    """{group_id: (ruleset, evaluation)} for the dynamic ones among `group_ids`, in one query.

    Shapes match groups.schemas.Ruleset and EvaluationState. The state: `running` while an
    evaluation runs; else `pending` while one is queued (or none ever finished); else the outcome
    of the latest one. `last_evaluated_at` is the `as_of` of the latest successful evaluation,
    the moment the current membership reflects; `next_evaluation_at` is when a queued evaluation
    was requested, or else the next scheduled run.
    """
    if not group_ids:
        return {}
    out: dict[UUID, tuple[dict[str, Any], dict[str, Any]]] = {}
    for row in await SegmentationRepository(session).views(group_ids):
        latest = row.latest_status
        if latest == "running":
            status = "running"
        elif row.queued_at is not None or latest is None:
            status = "pending"
        else:
            status = latest
        ruleset = {
            "id": row.ruleset_id,
            "rule_tree": row.rule_tree,
            "created_at": row.ruleset_created_at,
        }
        evaluation = {
            "status": status,
            "last_evaluated_at": row.last_evaluated_at,
            "next_evaluation_at": row.queued_at or row.next_evaluation_at,
            "error": row.latest_error if latest == "failed" else None,
        }
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
    """Run one queued evaluation (SPEC §7.2); None when there is nothing to run.

    1. Claim it (queued -> running) in its own short transaction, so readers see it running.
    2. In one transaction: lock the group row (FOR NO KEY UPDATE: serialises evaluations and
       member/group changes of this group, without blocking inserts that merely reference it),
       skip a group that is gone, inactive or static, compute the matching set and apply the
       difference, update profile_count, record the outcome.
    3. On failure that transaction rolls back (membership untouched) and the error is recorded in
       a separate one.
    """
    async with sessionmaker() as session, session.begin():
        claimed = await SegmentationRepository(session).claim(evaluation_id)
    if claimed is None:
        return None  # already taken by another job, or its group was deleted
    group_id = claimed.group_id
    as_of: datetime | None = None
    for attempt in (1, 2):
        as_of = None
        try:
            async with sessionmaker() as session, session.begin():
                repo = SegmentationRepository(session)
                # Waiting for another evaluation of the group is bounded by the job timeout,
                # not by the statement timeout, which applies to the evaluation itself.
                await repo.set_statement_timeout(0)
                current = await repo.lock_current(group_id)
                if current is None:
                    await repo.delete_evaluation(evaluation_id)
                    return None
                if await repo.lock_evaluation(evaluation_id) is None:
                    return None
                await repo.set_statement_timeout(timeout_ms)
                await repo.set_local("work_mem", EVALUATION_WORK_MEM)
                as_of = await repo.clock()
                group = current.group
                defs = await catalogue(session, group.application_id)
                parsed, errors = parse_rule_tree(current.rule_tree, defs, ("rule_tree",))
                if parsed is None:
                    raise _RulesNoLongerValid(_describe(errors))
                ctx = AttributeContext(group.application_id, as_of, _custom(defs))
                condition = compile_tree(parsed.root, ctx)
                counts = await repo.apply_diff(group, ctx, condition, as_of)
                return await repo.finish(evaluation_id, current.ruleset_id, as_of, counts)
        except Exception as exc:
            if attempt == 1 and isinstance(exc, DBAPIError) and sqlstate(exc) in RACE_SQLSTATES:
                continue
            error = _error_text(exc, timeout_ms)
            log.warning(
                "evaluation failed",
                extra={"group_id": str(group_id), "evaluation_id": str(evaluation_id)},
                exc_info=not isinstance(exc, _RulesNoLongerValid),
            )
            async with sessionmaker() as session, session.begin():
                repo = SegmentationRepository(session)
                await repo.fail(evaluation_id, error, as_of)
                return await repo.get_evaluation(evaluation_id)
    return None  # pragma: no cover - the loop always returns


async def schedule_tick(
    sessionmaker: AsyncSessionMaker, arq: ArqRedis, settings: Settings
) -> dict[str, int]:
    """The worker's periodic tick: queue every due group, recover lost work, prune history."""
    now = datetime.now(UTC)
    interval = timedelta(seconds=settings.EVALUATION_INTERVAL_SECONDS)
    # A worker kills a job after its timeout; a running row older than that whose transaction is
    # gone (not row-locked) was lost with its worker.
    async with sessionmaker() as session, session.begin():
        repo = SegmentationRepository(session)
        due = await repo.request_due(now, interval)
        stale = await repo.stale_queued(now - REQUEUE_AFTER)
        lost = await repo.fail_lost(
            now - timedelta(seconds=2 * settings.job_timeout_seconds),
            "The worker running this evaluation stopped before it finished.",
        )
        pruned = await repo.prune_history(now - timedelta(days=HISTORY_DAYS))
    enqueued = 0
    for group_id, evaluation_id in [*due, *stale]:
        trigger = "schedule"
        enqueued += await _enqueue(arq, group_id, evaluation_id, trigger)
    return {
        "due": len(due),
        "requeued": len(stale),
        "lost": lost,
        "pruned": pruned,
        "enqueued": enqueued,
    }


# Reading ------------------------------------------------------------------------------------


async def preview(
    session: AsyncSession,
    application_id: UUID,
    tree: dict[str, Any],
    sample_size: int,
    timeout_ms: int,
) -> Preview:
    """Count and sample of the profiles a tree matches now, bounded by a statement timeout."""
    parsed, defs = await parse_for(session, application_id, tree)
    repo = SegmentationRepository(session)
    as_of = await repo.clock()
    ctx = AttributeContext(application_id, as_of, _custom(defs))
    condition = compile_tree(parsed.root, ctx)
    await repo.set_statement_timeout(timeout_ms)
    try:
        # A savepoint keeps the request's transaction usable after a cancelled statement.
        async with session.begin_nested():
            total, rows = await repo.preview(ctx, condition, sample_size)
    except DBAPIError as exc:
        if sqlstate(exc) != QUERY_CANCELED:
            raise
        raise Unavailable(
            f"The preview did not finish within {timeout_ms} ms. The rule can still be saved: "
            "dynamic groups are evaluated in the background."
        ) from exc
    return Preview(
        count=total,
        sample=[PreviewProfile(id=r.id, nickname=r.nickname, custom_id=r.custom_id) for r in rows],
        as_of=as_of,
    )
