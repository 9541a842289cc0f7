"""Worker jobs of this feature, collected by profile_groups.worker."""

import logging
from typing import Any

from arq import cron

from profile_groups.activity.service import prune_events
from profile_groups.kit.state import worker_state

log = logging.getLogger("profile_groups.activity")

# Each batch is its own short transaction, so pruning never holds long locks or bloats one commit.
PRUNE_BATCH_SIZE = 10_000


async def prune_old_events(ctx: dict[str, Any]) -> int:
    """Delete raw events older than EVENT_RETENTION_DAYS (docs/activity.md).

    All-time attributes live in the per-profile aggregates and are unaffected; only rolling windows
    read raw events, and they reach back at most 365 days.
    """
    wc = worker_state(ctx)
    settings, sessionmaker = wc.settings, wc.sessionmaker
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            deleted = await prune_events(session, settings.EVENT_RETENTION_DAYS, PRUNE_BATCH_SIZE)
        total += deleted
        if deleted < PRUNE_BATCH_SIZE:
            break
    log.info("pruned events", extra={"deleted": total})
    return total


FUNCTIONS: list[Any] = [prune_old_events]
# Hourly; unique so a slow run is never doubled by the next tick.
CRON_JOBS: list[Any] = [cron(prune_old_events, minute={17}, second={0}, unique=True)]
