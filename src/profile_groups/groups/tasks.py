"""Worker jobs of profile groups, collected by profile_groups.worker (docs/segmentation.md).

* `evaluate_group` runs one queued evaluation. Its arq job id is `evaluate:<evaluation id>` and the
  database allows one queued evaluation per group, so a group is never queued twice: requests that
  arrive meanwhile join the queued one.
* `apply_profile_changes` runs every second: profiles whose attributes changed are re-evaluated
  against every active dynamic group of their application (groups.incremental).
* `schedule_evaluations` is a tick every 5 seconds (and at worker start) that queues each active
  dynamic group whose `next_evaluation_at` has come, then advances it by
  EVALUATION_INTERVAL_SECONDS. A per-group due time instead of a cron at the interval itself keeps
  any interval (not only divisors of a minute) exact to within a tick, spreads groups over time and
  gives the group object a truthful `next_evaluation_at`.
* `prune_membership_changes` runs hourly: changes older than CHANGE_RETENTION_DAYS leave the
  change log, in batches of CHANGE_PRUNE_BATCH, each its own short transaction
  (docs/changes.md).
* `vacuum_tables` runs every minute: memberships and events are vacuumed once bulk changes left
  them stale, so incremental rounds read them index-only (docs/segmentation.md, "Freshness").
"""

import asyncio
import logging
from typing import Any
from uuid import UUID

from arq import cron
from arq.worker import func

from profile_groups.groups import evaluation, history, incremental
from profile_groups.kit.state import worker_state

TICK_SECONDS = 5
# Changes deleted per transaction by the retention job: short transactions, no long locks.
CHANGE_PRUNE_BATCH = 10_000
# How long one apply_profile_changes job keeps taking rounds before it yields to the next tick.
CHANGES_SECONDS = 5

log = logging.getLogger("profile_groups.incremental")
scheduler_log = logging.getLogger("profile_groups.scheduler")


async def evaluate_group(ctx: dict[str, Any], evaluation_id: str) -> dict[str, Any]:
    """Run the queued evaluation `evaluation_id` (a no-op if it is no longer queued)."""
    wc = worker_state(ctx)
    result = await evaluation.run_evaluation(
        wc.sessionmaker, UUID(evaluation_id), timeout_ms=wc.settings.STATEMENT_TIMEOUT_MS
    )
    if result is None:
        return {"evaluation_id": evaluation_id, "status": "skipped"}
    return {
        "group_id": str(result.group_id),
        "evaluation_id": evaluation_id,
        "status": result.status,
        "matched": result.matched_count,
        "added": result.added_count,
        "removed": result.removed_count,
        "error": result.error,
    }


async def evaluate_groups(ctx: dict[str, Any], evaluation_ids: list[str]) -> dict[str, Any]:
    """Run the queued evaluations of one application's due groups in one shared pass."""
    wc = worker_state(ctx)
    results = await evaluation.run_evaluations(
        wc.sessionmaker,
        [UUID(i) for i in evaluation_ids],
        timeout_ms=wc.settings.STATEMENT_TIMEOUT_MS,
    )
    return {"evaluations": len(evaluation_ids), "finished": {str(r.id): r.status for r in results}}


async def apply_profile_changes(ctx: dict[str, Any]) -> dict[str, int]:
    """Every second: apply queued profile changes to every dynamic group (groups.incremental),
    round after round while a full batch keeps coming, for at most a few seconds."""
    wc = worker_state(ctx)
    total = incremental.Applied()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CHANGES_SECONDS
    while True:
        done = await incremental.apply_changes(
            wc.sessionmaker, timeout_ms=wc.settings.STATEMENT_TIMEOUT_MS
        )
        total += done
        if done.changes < incremental.BATCH or loop.time() > deadline:
            break
    if total.changes:
        log.debug("applied profile changes", extra=vars(total))
    return vars(total)


async def schedule_evaluations(ctx: dict[str, Any]) -> dict[str, int]:
    """Queue due groups, re-enqueue lost jobs, fail evaluations of dead workers, prune history."""
    wc = worker_state(ctx)
    done = await evaluation.schedule_tick(wc.sessionmaker, ctx["redis"], wc.settings)
    # A tick runs every 5 s and nearly always finds nothing: only one that acted is worth a line
    # at INFO (docs/operations.md).
    scheduler_log.log(
        logging.INFO if any(done.values()) else logging.DEBUG, "scheduler tick", extra=done
    )
    return done


async def prune_membership_changes(ctx: dict[str, Any]) -> int:
    """Delete changes older than CHANGE_RETENTION_DAYS, batch after batch."""
    wc = worker_state(ctx)
    total = 0
    while True:
        async with wc.sessionmaker() as session, session.begin():
            deleted = await history.prune_changes(
                session, wc.settings.CHANGE_RETENTION_DAYS, CHANGE_PRUNE_BATCH
            )
        total += deleted
        if deleted < CHANGE_PRUNE_BATCH:
            break
    if total:
        log.info("pruned membership changes", extra={"deleted": total})
    return total


async def vacuum_tables(ctx: dict[str, Any]) -> list[str]:
    """Every minute: vacuum what incremental rounds read index-only, if bulk changes left it
    stale (groups.evaluation.vacuum_tables)."""
    vacuumed = await evaluation.vacuum_tables(worker_state(ctx).engine)
    if vacuumed:
        log.info("vacuumed tables", extra={"tables": vacuumed})
    return vacuumed


FUNCTIONS: list[Any] = [
    func(evaluate_group, name=evaluation.EVALUATE_JOB),
    func(evaluate_groups, name=evaluation.EVALUATE_BATCH_JOB),
    prune_membership_changes,
]
CRON_JOBS: list[Any] = [
    cron(
        apply_profile_changes,
        name="apply_profile_changes",
        second=set(range(60)),
        run_at_startup=True,
        unique=True,
    ),
    # Unique: a long vacuum is never doubled.
    cron(vacuum_tables, name="vacuum_tables", second={30}, run_at_startup=True, unique=True),
    # Hourly, off the activity pruning's minute; unique so a slow run is never doubled.
    cron(prune_membership_changes, minute={47}, second={0}, unique=True),
    cron(
        schedule_evaluations,
        name="schedule_evaluations",
        second=set(range(0, 60, TICK_SECONDS)),
        run_at_startup=True,
        unique=True,
    ),
]
