"""The arq worker: shares the API's engine factory and repositories."""

from dataclasses import replace
from typing import Any

from arq.connections import RedisSettings

from profile_groups.activity import tasks as activity_tasks
from profile_groups.config import Settings
from profile_groups.db import create_engine, create_sessionmaker
from profile_groups.groups import tasks as group_tasks
from profile_groups.kit.state import WORKER_STATE_KEY, WorkerState, worker_state
from profile_groups.queue import QUEUE_NAME
from profile_groups.webhooks import tasks as webhook_tasks


def worker_settings(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`, built from `settings` alone, so `run`, `worker`
    and tests build it alike."""

    async def startup(ctx: dict[str, Any]) -> None:
        engine = create_engine(settings)
        ctx[WORKER_STATE_KEY] = WorkerState(settings, engine, create_sessionmaker(engine))
        # Webhook delivery runs beside arq, never in its job slots (docs/webhooks.md).
        await webhook_tasks.start(ctx, worker_state(ctx))

    async def shutdown(ctx: dict[str, Any]) -> None:
        await webhook_tasks.stop(ctx)
        await worker_state(ctx).engine.dispose()

    return {
        "functions": [*activity_tasks.FUNCTIONS, *group_tasks.FUNCTIONS, *webhook_tasks.FUNCTIONS],
        # arq keeps a cron job's next run on the CronJob object itself: each worker gets its own
        # copies, so a second worker in one process (run, tests) still runs its startup ticks.
        "cron_jobs": [
            replace(job, next_run=None)
            for job in (
                *activity_tasks.CRON_JOBS,
                *group_tasks.CRON_JOBS,
                *webhook_tasks.CRON_JOBS,
            )
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": QUEUE_NAME,
        "max_jobs": 4,
        "job_timeout": settings.job_timeout_seconds,
        "keep_result": 60,
        **overrides,
    }
