"""Dynamic groups' rules and evaluations: rulesets, the evaluation queue, running one
evaluation, and the worker's periodic tick (docs/segmentation.md).

The queue is the `group_evaluations` table; arq jobs only wake the worker for one queued row (job
id `evaluate:<evaluation id>`), so a lost job is found again by the tick and nothing depends on
Redis keeping it.
"""

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker, after_commit
from profile_groups.groups.repositories.evaluations import EvaluationRepository
from profile_groups.groups.repositories.events import GroupEventRepository
from profile_groups.groups.repositories.membership import MembershipRepository
from profile_groups.groups.repositories.rulesets import CurrentRuleset, RulesetRepository
from profile_groups.groups.schemas import EvaluationState, Ruleset
from profile_groups.kit.errors import QUERY_CANCELED, Conflict, sqlstate
from profile_groups.kit.pagination import Paged, PageRequest, paginate
from profile_groups.kit.repository import (
    analyze_stale,
    clock,
    create_temporary,
    drop_temporary,
    set_local,
    set_statement_timeout,
    vacuum_stale,
)
from profile_groups.kit.retry import retry_on_race
from profile_groups.models import ProfileGroup
from profile_groups.models.segmentation import GroupEvaluation
from profile_groups.segmentation.rules import referenced_keys
from profile_groups.segmentation.service import (
    CheckedTree,
    check_trees,
    describe,
    matched_in,
    matching_many,
)

log = logging.getLogger("profile_groups.evaluation")

EVALUATE_JOB = "evaluate_group"
EVALUATE_BATCH_JOB = "evaluate_groups"
# A running evaluation writes a heartbeat this often; one silent for SILENCE is failed and
# retried at once by the tick.
HEARTBEAT_SECONDS = 10
SILENCE = timedelta(seconds=60)
# The temporary table (on the evaluation's own connection) holding the shared pass's result.
MATCHES_TABLE = "evaluation_matches"
# The tables evaluations read, whose statistics the tick refreshes after bulk changes.
ANALYZED_TABLES = ("profiles", "profile_activity", "events", "group_memberships")
# The tables incremental rounds read index-only (migration 0012), which the worker vacuums after
# bulk changes (`vacuum_tables`).
VACUUMED_TABLES = ("group_memberships", "events")
# A queued evaluation whose job has not started after this long is enqueued again (lost job).
REQUEUE_AFTER = timedelta(seconds=60)
HISTORY_DAYS = 90
# Memory for the evaluation's hashes (the windowed aggregate, the joins, the diff), for its
# transaction only: with the server default (often 4MB) a million-profile evaluation spills to
# temporary files. At most `max_jobs` (4) evaluations run per worker.
EVALUATION_WORK_MEM = "64MB"


# Rulesets and the queue ---------------------------------------------------------------------


async def _enqueue(arq: ArqRedis, queued: Sequence[tuple[UUID, UUID]]) -> bool:
    """Enqueue one job for queued evaluations of one application, as (group_id, evaluation_id):
    one evaluation, or several sharing one pass. The job id makes a repeat a no-op.

    Never raises: a lost enqueue (Redis down) is retried by the worker's tick, which re-enqueues
    queued evaluations that have waited longer than REQUEUE_AFTER.
    """
    ids = [evaluation_id for _, evaluation_id in queued]
    try:
        if len(ids) == 1:
            job = await arq.enqueue_job(EVALUATE_JOB, str(ids[0]), _job_id=f"evaluate:{ids[0]}")
        else:
            job = await arq.enqueue_job(
                EVALUATE_BATCH_JOB, [str(i) for i in ids], _job_id=f"evaluate-batch:{min(ids)}"
            )
    except Exception:
        log.warning(
            "could not enqueue evaluation",
            extra={
                "group_ids": [str(g) for g, _ in queued],
                "evaluation_ids": [str(i) for i in ids],
            },
            exc_info=True,
        )
        return False
    return job is not None


def _enqueue_after_commit(
    session: AsyncSession, arq: ArqRedis, evaluation: GroupEvaluation
) -> None:
    group_id, evaluation_id = evaluation.group_id, evaluation.id

    async def callback() -> None:
        await _enqueue(arq, [(group_id, evaluation_id)])

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
    """Run one queued evaluation; None when there is nothing to run."""
    results = await run_evaluations(sessionmaker, [evaluation_id], timeout_ms=timeout_ms)
    return results[0] if results else None


async def run_evaluations(
    sessionmaker: AsyncSessionMaker, evaluation_ids: Sequence[UUID], *, timeout_ms: int
) -> list[GroupEvaluation]:
    """Run queued evaluations of one application's groups, sharing one pass over its profiles.

    1. Claim them (queued -> running) in a short transaction, so readers see them running; from
       then on a heartbeat proves they are alive (a silent one is failed and retried by the tick).
    2. Take each group's evaluation lock (session-level, id order: incremental updates leave the
       group alone until its diff is applied in step 3, which releases it) and, in one
       statement, compute every group's matching set into a temporary table (`matching_many`),
       WITHOUT locking any group row: PATCH, DELETE and member reads never wait for this pass.
    3. Group by group, each in its own short transaction: lock the group row (FOR NO KEY UPDATE:
       waits only for a write in flight), skip a group that is gone, inactive or static, apply
       its diff from the temporary table, record the outcome. A failure rolls back that group
       only (membership untouched) and is recorded in a transaction of its own.
    Returns the finished evaluations (succeeded or failed).
    """
    engine = sessionmaker.kw["bind"]
    async with engine.connect() as conn:

        def session() -> AsyncSession:
            # One connection for every step: the temporary table and the locks live on it.
            return AsyncSession(bind=conn, expire_on_commit=False, autoflush=False)

        async with session() as s, s.begin():
            claimed = [
                c for c in [await EvaluationRepository(s).claim(i) for i in evaluation_ids] if c
            ]
        if not claimed:
            return []
        heart = asyncio.create_task(_heartbeat(sessionmaker, [c.id for c in claimed]))
        try:
            return await _evaluate_claimed(session, claimed, timeout_ms)
        finally:
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart
            await _release(session)


async def _heartbeat(sessionmaker: AsyncSessionMaker, evaluation_ids: list[UUID]) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            async with sessionmaker() as session, session.begin():
                await EvaluationRepository(session).beat(evaluation_ids)
        except Exception:  # a missed beat is what the sweep is for
            log.warning("evaluation heartbeat failed", exc_info=True)


async def _release(session: Callable[[], AsyncSession]) -> None:
    try:
        async with session() as s, s.begin():
            await drop_temporary(s, MATCHES_TABLE)
            # What is still held (groups skipped, a run cut short): the connection is the run's
            # own, so every session-level advisory lock on it is one of the run's.
            await MembershipRepository(s).release_all_evaluation_locks()
    except Exception:  # a broken connection is discarded, and its locks go with it
        log.warning("could not release evaluation locks", exc_info=True)


async def _evaluate_claimed(
    session: Callable[[], AsyncSession], claimed: list[GroupEvaluation], timeout_ms: int
) -> list[GroupEvaluation]:
    by_group = {c.group_id: c for c in claimed}
    done: list[GroupEvaluation] = []

    async def fail(evaluation: GroupEvaluation, exc: BaseException, as_of: datetime | None) -> None:
        log.warning(
            "evaluation failed",
            extra={"group_id": str(evaluation.group_id), "evaluation_id": str(evaluation.id)},
            exc_info=not isinstance(exc, _RulesNoLongerValid),
        )
        async with session() as s, s.begin():
            repo = EvaluationRepository(s)
            await repo.fail(evaluation.id, _error_text(exc, timeout_ms), as_of)
            await GroupEventRepository(s).evaluations_failed([evaluation.id])  # webhooks' event
            failed = await repo.get_evaluation(evaluation.id)
        if failed is not None:
            done.append(failed)

    # 2. The shared pass.
    app_id = claimed[0].application_id
    as_of: datetime | None = None
    invalid: dict[UUID, _RulesNoLongerValid] = {}
    try:
        async with session() as s, s.begin():
            await MembershipRepository(s).hold_evaluation_locks(list(by_group))
            currents = await RulesetRepository(s).active_of(app_id, list(by_group))
            gone = set(by_group) - {c.group.id for c in currents}
            for group_id in gone:  # deleted, deactivated or static meanwhile: nothing happened
                await EvaluationRepository(s).delete_evaluation(by_group[group_id].id)
            ready: list[tuple[CurrentRuleset, CheckedTree]] = []
            trees = [c.rule_tree for c in currents]
            for current, (checked, errors) in zip(
                currents, await check_trees(s, app_id, trees, ("rule_tree",)), strict=True
            ):
                if checked is None:
                    invalid[current.group.id] = _RulesNoLongerValid(describe(errors))
                else:
                    ready.append((current, checked))
            as_of = await clock(s)
            if ready:
                await set_statement_timeout(s, timeout_ms)
                await set_local(s, "work_mem", EVALUATION_WORK_MEM)
                # Hash joins whatever the statistics say: a never-analyzed table must not turn
                # the pass into a nested loop over a million profiles.
                await set_local(s, "enable_nestloop", "off")
                await create_temporary(
                    s, MATCHES_TABLE, matching_many(app_id, as_of, [c for _, c in ready])
                )
    except Exception as exc:
        for evaluation in claimed:
            await fail(evaluation, exc, as_of)
        return done
    for group_id, error in invalid.items():
        await fail(by_group[group_id], error, as_of)
    assert as_of is not None

    # 3. Group by group.
    for index, (current, _) in enumerate(ready):
        evaluation = by_group[current.group.id]
        try:
            finished = await retry_on_race(
                functools.partial(_apply, session, evaluation, index, as_of, timeout_ms)
            )
        except Exception as exc:
            await fail(evaluation, exc, as_of)
            continue
        finally:
            # Applied (or given up): incremental rounds may update the group again from now
            # on, instead of waiting for every later group of the run. The changes they put
            # back meanwhile are applied at the next round.
            await _unlock(session, current.group.id)
        if finished is not None:
            done.append(finished)
    return done


async def _unlock(session: Callable[[], AsyncSession], group_id: UUID) -> None:
    try:
        async with session() as s, s.begin():
            await MembershipRepository(s).release_evaluation_locks([group_id])
    except Exception:  # the run's final release, or the connection closing, frees it
        log.warning("could not release an evaluation lock", exc_info=True)


async def _apply(
    session: Callable[[], AsyncSession],
    evaluation: GroupEvaluation,
    index: int,
    as_of: datetime,
    timeout_ms: int,
) -> GroupEvaluation | None:
    """Apply group `index`'s matching set from the shared pass, under its row lock."""
    async with session() as s, s.begin():
        locked = await RulesetRepository(s).lock_current(evaluation.group_id)
        if locked is None:
            await EvaluationRepository(s).delete_evaluation(evaluation.id)
            return None
        await set_statement_timeout(s, timeout_ms)
        await set_local(s, "work_mem", EVALUATION_WORK_MEM)
        counts = await MembershipRepository(s).replace(
            locked.group, matched_in(MATCHES_TABLE, index), as_of, evaluation.id
        )
        return await EvaluationRepository(s).finish(evaluation.id, locked.ruleset_id, as_of, counts)


async def schedule_tick(
    sessionmaker: AsyncSessionMaker, arq: ArqRedis, settings: Settings
) -> dict[str, int]:
    """The worker's periodic tick: fail and retry interrupted evaluations, queue every due group
    (one job per application, sharing one pass), recover lost jobs, prune history, and refresh
    planner statistics that bulk loads left stale."""
    now = datetime.now(UTC)
    interval = timedelta(seconds=settings.EVALUATION_INTERVAL_SECONDS)
    async with sessionmaker() as session, session.begin():
        repo = EvaluationRepository(session)
        lost = await repo.fail_silent(
            now - SILENCE,
            f"The evaluation was interrupted: no heartbeat for {SILENCE.seconds} s (its worker "
            "stopped or lost the database). It is evaluated again.",
            due_at=now,
        )
        await GroupEventRepository(session).evaluations_failed(lost)  # webhooks' event
        due = await repo.request_due(now, interval)
        stale = await repo.stale_queued(now - REQUEUE_AFTER)
        pruned = await repo.prune_history(now - timedelta(days=HISTORY_DAYS))
    async with sessionmaker() as session, session.begin():
        analyzed = await analyze_stale(session, ANALYZED_TABLES)
    by_app: dict[UUID, list[tuple[UUID, UUID]]] = defaultdict(list)
    for app_id, group_id, evaluation_id in due:
        by_app[app_id].append((group_id, evaluation_id))
    enqueued = 0
    for queued in by_app.values():
        enqueued += await _enqueue(arq, queued)
    for stale_one in stale:
        enqueued += await _enqueue(arq, [stale_one])
    return {
        "due": len(due),
        "requeued": len(stale),
        "lost": len(lost),
        "pruned": pruned,
        "analyzed": len(analyzed),
        "enqueued": enqueued,
    }


async def vacuum_tables(engine: AsyncEngine) -> list[str]:
    """Vacuum the tables incremental rounds read index-only, once bulk changes (a first
    evaluation, a day of events) left many of their pages unmarked; returns those vacuumed."""
    return await vacuum_stale(engine, VACUUMED_TABLES)
