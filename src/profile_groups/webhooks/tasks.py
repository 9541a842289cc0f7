"""The worker's side of webhooks, collected by profile_groups.worker (docs/webhooks.md).

The producer and the dispatcher are not arq jobs but a background engine the worker starts and
stops with itself (`start`, `stop`), so deliveries never take the job slots evaluations use. The
one arq job is the hourly pruning of old finished deliveries.
"""

import logging
from datetime import timedelta
from typing import Any

from arq import cron

from profile_groups.kit.state import WorkerState, worker_state
from profile_groups.webhooks.dispatcher import WebhookEngine
from profile_groups.webhooks.repository import ProducerRepository

log = logging.getLogger("profile_groups.webhooks")

ENGINE_KEY = "webhooks"
# Finished deliveries stay in the delivery log this long; pending ones are kept until sent.
DELIVERY_RETENTION = timedelta(days=30)
# Published group events are kept a day (their dedupe keys with them).
GROUP_EVENT_RETENTION = timedelta(days=1)


async def start(ctx: dict[str, Any], state: WorkerState) -> None:
    engine = WebhookEngine(state.sessionmaker, state.settings)
    await engine.start()
    ctx[ENGINE_KEY] = engine


async def stop(ctx: dict[str, Any]) -> None:
    engine: WebhookEngine | None = ctx.pop(ENGINE_KEY, None)
    if engine is not None:
        await engine.stop()


async def prune_webhook_deliveries(ctx: dict[str, Any]) -> int:
    async with worker_state(ctx).sessionmaker() as session, session.begin():
        pruned = await ProducerRepository(session).prune(DELIVERY_RETENTION, GROUP_EVENT_RETENTION)
    log.info("pruned webhook deliveries", extra={"deleted": pruned})
    return pruned


FUNCTIONS: list[Any] = [prune_webhook_deliveries]
CRON_JOBS: list[Any] = [cron(prune_webhook_deliveries, minute={43}, second={0}, unique=True)]
