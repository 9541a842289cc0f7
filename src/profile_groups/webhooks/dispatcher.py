"""The worker's webhook engine: a producer loop and a dispatcher loop (docs/webhooks.md).

Both run as background tasks the worker starts beside arq, not as arq jobs: deliveries wait on
receivers for up to 10 s each, and must never take the job slots evaluations need. They keep all
their state in PostgreSQL, so stopping the worker, losing Redis or a receiver loses nothing.

* The producer, about every second, turns new rows of the membership change log into
  `group.members_changed` deliveries (per subscription and group, from its cursor, batches of up
  to 1,000 in change-id order) and the groups' event outbox into `group.evaluation_failed` and
  `group.deleted` deliveries: one transaction, one snapshot (REPEATABLE READ), changes before
  events, so a group's deletion is produced after its last changes. One producer at a time
  across workers (an advisory lock).
* The dispatcher claims the due heads of the (subscription, group) queues (leased, so a dead
  worker's claims come back), at most DISPATCH_CONCURRENCY attempts in flight per worker and
  PER_SUBSCRIPTION per subscription, and records each outcome. It wakes every second, when the
  producer made deliveries, and whenever an attempt finishes (the next one of that group is due
  at once).
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.webhooks import delivery
from profile_groups.webhooks.repository import DispatchRepository, ProducerRepository

log = logging.getLogger("profile_groups.webhooks")

POLL_SECONDS = 1.0
BATCH = 1000
# Changes taken per (subscription, group) per pass: a 50,000-change evaluation is one pass.
PASS_LIMIT = 100 * BATCH
GROUP_EVENTS_PER_PASS = 1000
DISPATCH_CONCURRENCY = 16
PER_SUBSCRIPTION = 4
# Longer than an attempt can take (name resolution + the 10 s timeout).
LEASE_SECONDS = 60.0
# Retries: 5 s, 15 s, 45 s, ... (x3), at most 4 h apart; failing for a day, a delivery is
# `failed` and its subscription disabled.
FIRST_RETRY_SECONDS = 5.0
RETRY_FACTOR = 3.0
MAX_RETRY_SECONDS = 4 * 3600.0
GIVE_UP_AFTER = timedelta(days=1)
DISABLED_REASON = "Deliveries failed for a day; re-enable with PATCH is_active: true."
ERROR_BACKOFF_SECONDS = 5.0
# A stopping worker waits this long for attempts in flight (one attempt's bound and a little).
STOP_GRACE_SECONDS = delivery.TIMEOUT_SECONDS + 2


def retry_delay(attempts: int) -> float:
    """Seconds until the next attempt after the `attempts`-th failed one in a row."""
    return min(FIRST_RETRY_SECONDS * RETRY_FACTOR ** max(attempts - 1, 0), MAX_RETRY_SECONDS)


@dataclass
class WebhookEngine:
    sessionmaker: AsyncSessionMaker
    settings: Settings
    poll_seconds: float = POLL_SECONDS
    concurrency: int = DISPATCH_CONCURRENCY
    per_subscription: int = PER_SUBSCRIPTION
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _inflight: dict[UUID, asyncio.Task[None]] = field(default_factory=dict)
    _client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        """Start both loops; returns at once (the worker's startup is not delayed)."""
        self._tasks = [
            asyncio.create_task(self._loop(self.produce_once, self._producer_wait), name="produce"),
            asyncio.create_task(self._loop(self.dispatch_once, self._dispatcher_wait), name="send"),
        ]

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop both loops, let attempts in flight finish and record their outcome for up to
        `grace_seconds`, then cut off the rest; their leases are dropped so the next worker
        sends them at once (with the same `webhook-id`)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=grace_seconds)
        cut = list(self._inflight)
        for task in list(self._inflight.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks, self._inflight = [], {}
        if cut:
            with contextlib.suppress(Exception):
                async with self.sessionmaker() as session, session.begin():
                    await DispatchRepository(session).release(cut)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        self._wake.set()

    async def _producer_wait(self) -> None:
        await asyncio.sleep(self.poll_seconds)

    async def _dispatcher_wait(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # arrives as the event is set (an attempt finishing as `stop` cancels the loop), and the
        # loop then ran on while `stop` waited for it forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _loop(
        self, step: Callable[[], Awaitable[int]], wait: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            await wait()
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # PostgreSQL away: try again shortly, never exit
                log.warning("webhook %s step failed", step.__name__, exc_info=True)
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)

    # The producer ------------------------------------------------------------------------------

    async def produce_once(self) -> int:
        """One production pass; the number of deliveries made."""
        async with self.sessionmaker() as session, session.begin():
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            repo = ProducerRepository(session)
            if not await repo.lock():
                return 0
            made = await repo.produce_changes(BATCH, PASS_LIMIT)
            made += await repo.produce_group_events(GROUP_EVENTS_PER_PASS)
        if made:
            self.wake()
        return made

    # The dispatcher ----------------------------------------------------------------------------

    async def dispatch_once(self) -> int:
        """Claim what is due (up to the free slots) and start sending it; the number started."""
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        async with self.sessionmaker() as session, session.begin():
            claimed = await DispatchRepository(session).claim(
                free, self.per_subscription, LEASE_SECONDS
            )
        if claimed and self._client is None:
            self._client = delivery.client()
        for row in claimed:
            task = asyncio.create_task(self._send(row))
            self._inflight[row.id] = task
        return len(claimed)

    async def _send(self, row: Any) -> None:
        try:
            secrets_ = [row.secret] + ([row.previous_secret] if row.previous_secret else [])
            assert self._client is not None
            outcome = await delivery.attempt(
                self._client,
                url=row.url,
                message_id=str(row.id),
                payload=row.payload,
                secrets_=secrets_,
                allow_private=self.settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
            )
            await self._record(row, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:  # the outcome could not be recorded: the lease brings it back
            log.warning("webhook delivery not recorded", extra={"delivery_id": str(row.id)})
        finally:
            self._inflight.pop(row.id, None)
            self.wake()

    async def _record(self, row: Any, outcome: delivery.Outcome) -> None:
        async with self.sessionmaker() as session, session.begin():
            repo = DispatchRepository(session)
            if outcome.ok:
                assert outcome.status_code is not None
                await repo.succeeded(row.id, row.subscription_id, outcome.status_code)
                return
            attempts = await repo.attempts(row.id) + 1
            await repo.failed(
                row.id,
                status_code=outcome.status_code,
                error=outcome.error or "Delivery failed.",
                delay_seconds=retry_delay(attempts),
                give_up=GIVE_UP_AFTER,
                disabled_reason=DISABLED_REASON,
            )
        log.info(
            "webhook delivery failed",
            extra={
                "delivery_id": str(row.id),
                "subscription_id": str(row.subscription_id),
                "status_code": outcome.status_code,
                "attempt": attempts,
            },
        )
