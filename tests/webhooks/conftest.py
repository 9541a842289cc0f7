"""Fixtures of the webhook tests: an app and a webhook engine that may call loopback targets
(WEBHOOK_ALLOW_PRIVATE_TARGETS, for the test receiver), and a helper that writes change-log rows
directly."""

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text

from profile_groups.app import create_app
from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.webhooks.dispatcher import WebhookEngine
from tests.conftest import Api, Tenant
from tests.webhooks.receiver import Receiver


@pytest.fixture(scope="session")
def private_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"WEBHOOK_ALLOW_PRIVATE_TARGETS": True})


@pytest.fixture(scope="session")
async def private_app(private_settings: Settings) -> AsyncIterator[Any]:
    application = create_app(private_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def papi(private_app: Any, tenant: Tenant) -> AsyncIterator[Api]:
    """An API client of an app that accepts loopback webhook targets."""
    transport = httpx.ASGITransport(app=private_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield Api(c, tenant)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


EngineFactory = Callable[..., WebhookEngine]


@pytest.fixture
async def engines(
    sessionmaker: AsyncSessionMaker, private_settings: Settings
) -> AsyncIterator[EngineFactory]:
    """Build webhook engines (not started); every one still running is stopped at the end."""
    made: list[WebhookEngine] = []

    def make(settings: Settings | None = None, **kwargs: Any) -> WebhookEngine:
        engine = WebhookEngine(
            sessionmaker, settings or private_settings, poll_seconds=0.1, **kwargs
        )
        made.append(engine)
        return engine

    yield make
    for engine in made:
        with contextlib.suppress(Exception):
            await engine.stop()


async def application_id(sessionmaker: AsyncSessionMaker, client_id: str) -> UUID:
    async with sessionmaker() as session:
        value = await session.scalar(
            text("SELECT id FROM applications WHERE client_id = :c"), {"c": client_id}
        )
        assert value is not None
        return UUID(str(value))


async def insert_changes(
    sessionmaker: AsyncSessionMaker,
    app_id: UUID,
    group_id: str,
    n: int,
    change: str = "entered",
) -> None:
    """`n` change-log rows of one group, as a membership writer would record them (set-based),
    under the group's row lock as the writers take it."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("SELECT 1 FROM profile_groups WHERE id = :g FOR UPDATE"), {"g": group_id}
        )
        await session.execute(
            text(
                "INSERT INTO membership_changes (application_id, group_id, profile_id, custom_id,"
                " change, reason, occurred_at) "
                "SELECT :a, :g, gen_random_uuid(), 'c-' || i, :change, 'manual', clock_timestamp()"
                " FROM generate_series(1, :n) AS i ORDER BY i"
            ),
            {"a": app_id, "g": group_id, "n": n, "change": change},
        )


async def recorded_changes(sessionmaker: AsyncSessionMaker, group_id: str) -> list[dict[str, Any]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT id::text AS id, profile_id::text AS profile_id, custom_id, change, reason"
                " FROM membership_changes m WHERE group_id = :g ORDER BY m.id"
            ),
            {"g": group_id},
        )
        return [dict(r._mapping) for r in rows]
