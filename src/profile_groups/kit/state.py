"""The API's typed state: what the lifespan builds once and every request reads.

Everything a request needs from the process (settings, the session factory, the arq pool, the
cursor codec) is read through `state(request)` or one of the dependencies below, never through
untyped `app.state.*` attributes.
"""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.kit.cursor import CursorCodec


@dataclass(frozen=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: AsyncSessionMaker
    # Connects lazily: the API starts (and /readyz answers 503) while Redis is down, and recovers
    # by itself when it is back. It doubles as the readiness-check client.
    arq: ArqRedis
    cursor_codec: CursorCodec
    # Wall-clock start of the API, for /readyz's grace before a worker's first heartbeat.
    started_at: float = field(default_factory=time.time)


def bind(app: FastAPI, value: AppState) -> None:
    app.state.typed = value


def app_state(app: FastAPI) -> AppState:
    value: AppState = app.state.typed
    return value


def state(request: Request) -> AppState:
    return app_state(request.app)


def _settings(request: Request) -> Settings:
    return state(request).settings


def _arq(request: Request) -> ArqRedis:
    return state(request).arq


SettingsDep = Annotated[Settings, Depends(_settings)]
# Routes that enqueue jobs (after commit) take the arq pool.
ArqDep = Annotated[ArqRedis, Depends(_arq)]


# A read (GET) runs in one REPEATABLE READ, READ ONLY transaction: every statement of it sees
# the same snapshot, so a list's `count` and its `results` always agree (docs/api.md). A
# read-only transaction never fails with a serialization error, and is one BEGIN like any other.
_READ_SNAPSHOT = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
_READ_METHODS = frozenset({"GET", "HEAD"})


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with state(request).sessionmaker() as session:
        async with session.begin():
            if request.method in _READ_METHODS:
                await session.connection(execution_options=_READ_SNAPSHOT)
            yield session
        for callback in session.info.pop("after_commit", []):
            await callback()


# One session and one transaction per request, committed on success and rolled back on error.
# scope="function" ends it when the handler returns, so the commit happens before the response
# is sent: a client never sees a success for data that did not commit.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]


@dataclass(frozen=True)
class WorkerState:
    """What the worker's startup builds once and every job reads (from arq's `ctx`)."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: AsyncSessionMaker


WORKER_STATE_KEY = "state"


def worker_state(ctx: dict[str, Any]) -> WorkerState:
    value: WorkerState = ctx[WORKER_STATE_KEY]
    return value
