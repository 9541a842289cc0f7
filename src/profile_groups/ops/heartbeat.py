"""A worker that cannot die silently (docs/operations.md).

- `HeartbeatWorker` is arq's worker that, from its own poll loop, records when it was last seen
  (`HEARTBEAT_KEY`, every `HEARTBEAT_SECONDS`); `/readyz` reports a worker not seen for
  `WORKER_STALE_SECONDS`. It also records it under its host name (`host_key`), so a container's
  liveness check (`profile-groups worker-alive`) asks about its own worker, not any worker.
- `supervise` runs a worker and starts a new one, with backoff, whenever it stops on an error:
  always in `run`, and in `worker` only for a dependency that went away (Redis, PostgreSQL); any
  other error is logged and ends `supervise` with status 1, so the process exits non-zero and its
  supervisor (compose, systemd) restarts it.
"""

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from arq.worker import Worker

from profile_groups.kit.errors import DEPENDENCY_ERRORS, database_unavailable
from profile_groups.queue import QUEUE_NAME

log = logging.getLogger("profile_groups.worker")

HEARTBEAT_KEY = f"{QUEUE_NAME}:worker-seen"
HEARTBEAT_SECONDS = 5
WORKER_STALE_SECONDS = 60
# Backoff between restarts: doubled from the first delay up to the last, reset once a worker
# has run for a minute.
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
_CLOSE_TIMEOUT = 10.0


def host_key(host: str | None = None) -> str:
    """The heartbeat of the workers of one host (a container's hostname is its own)."""
    return f"{HEARTBEAT_KEY}:{host or socket.gethostname()}"


async def record_seen(redis: Any, now: float | None = None) -> None:
    """Record that a worker (of this host) is alive now (kept a day, so an old beat still says
    how old)."""
    value = repr(time.time() if now is None else now)
    await redis.set(HEARTBEAT_KEY, value, ex=86_400)
    await redis.set(host_key(), value, ex=86_400)


async def last_seen(redis: Any, host: str | None = None) -> float | None:
    """When any worker (or, given `host`, a worker of that host) last beat."""
    raw = await redis.get(HEARTBEAT_KEY if host is None else host_key(host))
    return None if raw is None else float(raw)


class HeartbeatWorker(Worker):
    """arq's worker, beating from its poll loop: a stuck or dead loop stops the beats."""

    async def record_health(self) -> None:
        due = time.time() - self._last_health_check >= self.health_check_interval
        await super().record_health()
        if due:
            await record_seen(self.pool)


def transient(exc: BaseException) -> bool:
    """A dependency went away (reconnect and go on), rather than a bug (exit non-zero)."""
    return isinstance(exc, DEPENDENCY_ERRORS) or database_unavailable(exc)


async def _close(worker: Worker) -> None:
    """Stop a worker and release its connections, even when Redis or PostgreSQL is gone."""
    try:
        await asyncio.wait_for(worker.close(), _CLOSE_TIMEOUT)
        return
    except Exception:  # Redis gone: arq's close fails before its shutdown hook
        log.debug("worker close failed", exc_info=True)
    if worker.on_shutdown is not None and worker.ctx.get("state") is not None:
        try:
            await asyncio.wait_for(worker.on_shutdown(worker.ctx), _CLOSE_TIMEOUT)
        except Exception:
            log.debug("worker shutdown hook failed", exc_info=True)
    pool = getattr(worker, "_pool", None)
    if pool is not None:
        try:
            await asyncio.wait_for(pool.close(close_connection_pool=True), _CLOSE_TIMEOUT)
        except Exception:
            log.debug("worker redis pool close failed", exc_info=True)
        worker._pool = None


async def supervise(make_worker: Callable[[], Worker], *, restart_always: bool) -> int:
    """Run workers from `make_worker` until one stops cleanly (0) or fatally (1, only without
    `restart_always`). Cancelling `supervise` closes the running worker."""
    delay = FIRST_RESTART_DELAY
    while True:
        worker = make_worker()
        started = time.monotonic()
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            await _close(worker)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being stopped (the API shut down)
            log.info("worker stopped")
            return 0  # arq's signal handler cancelled the worker: a clean stop
        except Exception as exc:
            await _close(worker)
            if not transient(exc) and not restart_always:
                log.critical("worker stopped on a fatal error; exiting", exc_info=True)
                return 1
            if time.monotonic() - started > WORKER_STALE_SECONDS:
                delay = FIRST_RESTART_DELAY
            log.error(
                "worker stopped on an error; restarting",
                exc_info=True,
                extra={"restart_in_seconds": delay, "dependency_error": transient(exc)},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)
            continue
        await _close(worker)
        log.info("worker stopped")
        return 0
