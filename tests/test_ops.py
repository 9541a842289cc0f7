"""Operational endpoints and the OpenAPI document (SPEC §8)."""

import httpx

from profile_groups.app import create_app
from profile_groups.config import Settings


async def test_healthz_readyz_metrics(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "redis": "ok"}
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "profile_groups_http_requests_total" in r.text


async def test_readyz_is_503_when_postgres_is_down(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}
    )
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["error_code"] == "unavailable"
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["redis"] == "ok"
    assert r.headers["retry-after"]


async def test_readyz_is_503_when_redis_is_down(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"REDIS_URL": "redis://127.0.0.1:1/0"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/readyz")
            assert (await c.get("/healthz")).status_code == 200
    assert r.status_code == 503
    assert r.json()["checks"]["redis"].startswith("error")
    assert r.json()["checks"]["database"] == "ok"


async def test_database_down_is_503_not_500(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}
    )
    app = create_app(broken)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
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
