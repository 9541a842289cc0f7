"""The arq worker: shares the API's engine factory and repositories (STYLE §5)."""

from dataclasses import replace
from typing import Any

from arq.connections import RedisSettings

from profile_groups.activity import tasks as activity_tasks
from profile_groups.config import get_settings
from profile_groups.db import create_engine, create_sessionmaker
from profile_groups.segmentation import tasks as segmentation_tasks

QUEUE_NAME = "profile_groups"


async def startup(ctx: dict[str, Any]) -> None:
    settings = ctx.get("settings") or get_settings()
    ctx["settings"] = settings
    ctx["engine"] = create_engine(settings)
    ctx["sessionmaker"] = create_sessionmaker(ctx["engine"])


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].dispose()


def worker_settings(redis_url: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker`, so `run`, `worker` and tests build it alike."""
    settings = get_settings()
    return {
        "functions": [*activity_tasks.FUNCTIONS, *segmentation_tasks.FUNCTIONS],
        # arq keeps a cron job's next run on the CronJob object itself: each worker gets its own
        # copies, so a second worker in one process (run, tests) still runs its startup ticks.
        "cron_jobs": [
            replace(job, next_run=None)
            for job in (*activity_tasks.CRON_JOBS, *segmentation_tasks.CRON_JOBS)
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(redis_url or settings.redis_url),
        "queue_name": QUEUE_NAME,
        "max_jobs": 4,
        "job_timeout": settings.job_timeout_seconds,
        "keep_result": 60,
        **overrides,
    }
