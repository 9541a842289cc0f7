"""One way to retry a unit of work that lost a race to a concurrent transaction."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.errors import RACE_SQLSTATES, sqlstate

T = TypeVar("T")

ATTEMPTS = 3
# First backoff; doubled per attempt and jittered, so two requests that collided do not collide
# again in lockstep.
BASE_DELAY_SECONDS = 0.01


def lost_race(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and sqlstate(exc) in RACE_SQLSTATES


async def retry_on_race(work: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """Run `work`, again (at most `attempts` times in all) while it fails with a race SQLSTATE.

    `work` must redo its unit from the start: its own savepoint or session, so a failed attempt
    leaves nothing behind. The last failure propagates (the API answers it with a 409).
    """
    for attempt in range(attempts):
        try:
            return await work()
        except DBAPIError as exc:
            if not lost_race(exc) or attempt == attempts - 1:
                raise
        await asyncio.sleep(BASE_DELAY_SECONDS * 2**attempt * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def retry_in_savepoint(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T:
    """`retry_on_race` for work inside a request's transaction: each attempt in a savepoint, so a
    lost race (a deadlock, a row deleted meanwhile) rolls back only that attempt."""

    async def attempt() -> T:
        async with session.begin_nested():
            return await work()

    return await retry_on_race(attempt)
