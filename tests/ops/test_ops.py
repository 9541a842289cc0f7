"""Operational endpoints and the OpenAPI document (docs/operations.md)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from redis.asyncio import Redis

from profile_groups.app import create_app
from profile_groups.config import Settings
from profile_groups.ops.heartbeat import record_seen

NO_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/none"


async def beat(settings: Settings, at: float | None = None) -> None:
    """A worker heartbeat, as HeartbeatWorker records it."""
    redis = Redis.from_url(settings.redis_url)
    try:
        await record_seen(redis, at)
    finally:
        await redis.aclose()


@asynccontextmanager
async def client_with(settings: Settings, **broken: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a started app whose settings differ by `broken` (e.g. a dead server)."""
    app = create_app(settings.model_copy(update=broken))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_healthz_readyz_metrics(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    await beat(settings)
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "redis": "ok", "worker": "ok"}
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "profile_groups_http_requests_total" in r.text


async def test_readyz_is_503_when_postgres_is_down(settings: Settings) -> None:
    await beat(settings)
    async with client_with(settings, DATABASE_URL=NO_DATABASE) as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["error_code"] == "unavailable"
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["redis"] == "ok"
    assert r.headers["retry-after"]


async def test_readyz_is_503_when_redis_is_down(settings: Settings) -> None:
    async with client_with(settings, REDIS_URL="redis://127.0.0.1:1/0") as c:
        r = await c.get("/readyz")
        assert (await c.get("/healthz")).status_code == 200
    assert r.status_code == 503
    assert r.json()["checks"]["redis"].startswith("error")
    assert r.json()["checks"]["database"] == "ok"


async def test_database_down_is_503_not_500(settings: Settings) -> None:
    async with client_with(settings, DATABASE_URL=NO_DATABASE) as c:
        r = await c.get(
            "/api/v1/applications/x/profile-groups/",
            headers={"Authorization": "Bearer pgt_unknown"},
        )
    assert r.status_code == 503
    assert r.json()["error_code"] == "unavailable"
    assert r.headers["retry-after"]


async def test_openapi_has_the_product_page_examples(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.text
    assert "Sample Profile Group" in doc
    assert "Final Horse" in doc
    assert "174cc6dd-c1da-42d2-886e-c48b2bf803a8" in doc
    spec = r.json()
    assert "/api/v1/applications/{client_id}/profile-groups/" in spec["paths"]
    post = spec["paths"]["/api/v1/applications/{client_id}/profile-groups/"]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(post["responses"])
    assert (await client.get("/docs")).status_code == 200


async def test_races_are_409_and_unexpected_errors_are_500_without_traceback(
    settings: Settings,
) -> None:
    from fastapi import APIRouter
    from sqlalchemy.exc import DBAPIError

    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    app = create_app(settings)
    router = APIRouter()

    @router.get("/boom/{state}")
    async def boom(state: str) -> None:
        if state == "plain":
            raise RuntimeError("secret detail")
        raise DBAPIError("stmt", {}, Orig(state))

    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/boom/40P01")
        assert r.status_code == 409 and r.json()["error_code"] == "conflict"
        r = await c.get("/boom/23503")
        assert r.status_code == 409
        r = await c.get("/boom/plain", headers={"X-Request-ID": "rid-1"})
        assert r.status_code == 500
        assert r.json()["error_code"] == "internal"
        assert "rid-1" in r.json()["detail"]
        assert "secret" not in r.text and "Traceback" not in r.text
        assert r.headers["x-request-id"] == "rid-1", (r.headers, r.text)


async def test_readyz_reports_a_worker_not_seen_for_a_minute(settings: Settings) -> None:
    import time

    async with client_with(settings) as c:
        await beat(settings, time.time() - 75)
        r = await c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["checks"]["worker"].startswith("error: worker not seen for 7")
        assert r.json()["checks"]["database"] == "ok"
        await beat(settings)
        assert (await c.get("/readyz")).status_code == 200


async def test_a_heartbeat_worker_beats_from_its_poll_loop(settings: Settings) -> None:
    import asyncio
    import contextlib
    import time
    import uuid

    from profile_groups.ops.heartbeat import HeartbeatWorker, last_seen
    from profile_groups.worker import worker_settings

    redis = Redis.from_url(settings.redis_url)
    await record_seen(redis, 0.0)
    worker = HeartbeatWorker(
        **worker_settings(
            settings,
            handle_signals=False,
            health_check_interval=1,
            poll_delay=0.05,
            # A queue of its own: no job of another test runs (and is cut off) here.
            queue_name=f"heartbeat-test-{uuid.uuid4().hex}",
            cron_jobs=[],
        )
    )
    task = asyncio.create_task(worker.async_run())
    seen = None
    try:
        for _ in range(100):
            seen = await last_seen(redis)
            if seen and seen > time.time() - 5:
                break
            await asyncio.sleep(0.05)
        assert seen and seen > time.time() - 5
        # Also under this host's name, which `profile-groups worker-alive` reads.
        import socket

        assert await last_seen(redis, socket.gethostname()) == seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        await redis.aclose()


async def test_readyz_answers_quickly_when_servers_do_not(settings: Settings) -> None:
    """A server that accepts connections and never answers (as a SIGSTOPped PostgreSQL or
    Redis does): /readyz still answers within its bound, and a request is a 503."""
    import asyncio
    import time

    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client_with(
            settings,
            DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x?ssl=disable",
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            DB_CONNECT_TIMEOUT_SECONDS=1.0,
        ) as c:
            started = time.monotonic()
            r = await asyncio.wait_for(c.get("/readyz"), 10)
            assert time.monotonic() - started < 4
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["database"].startswith("error") and checks["redis"].startswith("error")
            r = await asyncio.wait_for(
                c.get("/api/v1/applications/x/profiles/", headers={"Authorization": "Bearer x"}),
                10,
            )
            assert r.status_code == 503, r.text
    finally:
        for w in held:
            w.close()
        server.close()
