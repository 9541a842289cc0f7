"""Benchmark: static membership writes and reads, each beside the bare SQL doing the same work.

1. Add 10,000 members to a group in one request (POST …/members/), vs. the bare SQL statements
   (resolve ids, INSERT … SELECT unnest … ON CONFLICT DO NOTHING, UPDATE profile_count).
2. Read a 100,000-member group through every page (page_size=1000, following `next`), vs. the
   bare keyset SQL reading the same pages.

The API runs in-process (httpx ASGITransport), so the ratio is framework + service overhead over
the SQL, without network noise. Usage:

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres \
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/members.py [--repeat 5]
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scratch import REDIS_URL, scratch_database, url_text

from profile_groups.app import create_app
from profile_groups.applications.service import create_application
from profile_groups.config import Settings
from profile_groups.db import create_sessionmaker
from profile_groups.kit.state import app_state

ADD_SIZE = 10_000
READ_SIZE = 100_000
PAGE = 1000


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def seed_profiles(engine: AsyncEngine, app_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "INSERT INTO profiles (application_id, id, nickname) "
                "SELECT :app, gen_random_uuid(), 'p' || g FROM generate_series(1, :n) g "
                "RETURNING id"
            ),
            {"app": app_id, "n": n},
        )
        return [r[0] for r in rows]


async def main(repeat: int) -> None:
    async with scratch_database("pg_bench") as url:
        app = create_app(Settings(DATABASE_URL=url_text(url), REDIS_URL=REDIS_URL))
        async with app.router.lifespan_context(app):
            engine: AsyncEngine = app_state(app).engine
            async with create_sessionmaker(engine)() as session, session.begin():
                application, issued = await create_application(session, "bench")
            app_id = application.id
            headers = {"Authorization": f"Bearer {issued.token}"}
            base = f"/api/v1/applications/{application.client_id}"
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await bench_add(client, engine, app_id, base, headers, repeat)
                await bench_read(client, engine, app_id, base, headers, max(1, repeat // 2))


async def new_group(client: httpx.AsyncClient, base: str, headers: dict[str, str]) -> str:
    r = await client.post(f"{base}/profile-groups/", json={"name": "bench"}, headers=headers)
    return str(r.json()["id"])


async def bench_add(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    app_id: uuid.UUID,
    base: str,
    headers: dict[str, str],
    repeat: int,
) -> None:
    profiles = await seed_profiles(engine, app_id, ADD_SIZE)
    ids = [str(p) for p in profiles]

    async def api_add() -> None:
        gid = await new_group(client, base, headers)
        r = await client.post(
            f"{base}/profile-groups/{gid}/members/", json={"profile_ids": ids}, headers=headers
        )
        assert r.status_code == 200 and len(r.json()["successfully_added"]) == ADD_SIZE

    async def sql_add() -> None:
        gid = await new_group(client, base, headers)
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT id FROM profile_groups WHERE id = :g FOR UPDATE"), {"g": gid}
            )
            found = await conn.execute(
                text(
                    "SELECT id FROM profiles "
                    "WHERE application_id = :a AND id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"a": app_id, "ids": profiles},
            )
            valid = [r[0] for r in found]
            ins = await conn.execute(
                text(
                    "INSERT INTO group_memberships (group_id, profile_id, application_id) "
                    "SELECT :g, unnest(CAST(:ids AS uuid[])), :a "
                    "ON CONFLICT DO NOTHING RETURNING profile_id"
                ),
                {"g": gid, "ids": sorted(valid), "a": app_id},
            )
            n = len(ins.all())
            await conn.execute(
                text("UPDATE profile_groups SET profile_count = profile_count + :n WHERE id = :g"),
                {"n": n, "g": gid},
            )

    await api_add()  # warm-up
    await sql_add()
    api_t = await timed(api_add, repeat)
    sql_t = await timed(sql_add, repeat)
    print(
        f"add {ADD_SIZE} members, one request : api {api_t * 1000:8.1f} ms | "
        f"bare SQL {sql_t * 1000:8.1f} ms | ratio {api_t / sql_t:5.2f}x"
    )


async def bench_read(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    app_id: uuid.UUID,
    base: str,
    headers: dict[str, str],
    repeat: int,
) -> None:
    gid = await new_group(client, base, headers)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO profiles (application_id, id, nickname) "
                "SELECT :app, gen_random_uuid(), 'r' || g FROM generate_series(1, :n) g"
            ),
            {"app": app_id, "n": READ_SIZE},
        )
        await conn.execute(
            text(
                "INSERT INTO group_memberships (group_id, profile_id, application_id, created_at) "
                "SELECT :g, id, :a, now() - (random() * interval '30 days') FROM profiles "
                "WHERE application_id = :a AND nickname LIKE 'r%'"
            ),
            {"g": gid, "a": app_id},
        )
        await conn.execute(
            text("UPDATE profile_groups SET profile_count = :n WHERE id = :g"),
            {"n": READ_SIZE, "g": gid},
        )
        await conn.execute(text("ANALYZE group_memberships"))
        await conn.execute(text("ANALYZE profiles"))

    async def api_read() -> None:
        url: str | None = f"{base}/profile-groups/{gid}/members/?page_size={PAGE}"
        seen = 0
        while url:
            body = (await client.get(url, headers=headers)).json()
            seen += len(body["results"])
            url = body["next"]
        assert seen == READ_SIZE, seen

    page_sql = text(
        "SELECT p.id, p.nickname, p.custom_id, m.created_at AS membership_created_at "
        "FROM group_memberships m JOIN profiles p "
        "ON p.application_id = m.application_id AND p.id = m.profile_id "
        "WHERE m.group_id = :g AND (m.created_at, m.profile_id) < (:t, :p) "
        "ORDER BY m.created_at DESC, m.profile_id DESC LIMIT :n"
    )

    async def sql_read() -> None:
        seen = 0
        last_t, last_p = datetime(9999, 1, 1, tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1)
        async with engine.connect() as conn:
            while True:
                rows = (
                    await conn.execute(
                        page_sql, {"g": gid, "t": last_t, "p": last_p, "n": PAGE + 1}
                    )
                ).all()
                seen += min(len(rows), PAGE)
                if len(rows) <= PAGE:
                    break
                last_t, last_p = rows[PAGE - 1][3], rows[PAGE - 1][0]
        assert seen == READ_SIZE, seen

    await api_read()
    await sql_read()
    api_t = await timed(api_read, repeat)
    sql_t = await timed(sql_read, repeat)
    pages = READ_SIZE // PAGE
    print(
        f"read {READ_SIZE} members, {pages} pages : api {api_t * 1000:8.1f} ms | "
        f"bare SQL {sql_t * 1000:8.1f} ms | ratio {api_t / sql_t:5.2f}x "
        f"({api_t / pages * 1000:.1f} ms/page via API)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeat))
