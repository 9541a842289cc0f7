"""Benchmark: POST /profiles/bulk/ beside the bare SQL doing the same work.

Batches of 1,000 profiles, each with a custom_id, a nickname and two custom attributes (a number and
a datetime), are upserted by custom_id:
1. create: every item is new;
2. update: the same batches again, every item matches an existing profile (merge path).

The bare SQL baseline per batch is the same statements the service needs: read the attribute
definitions, lock the profiles the batch names (SELECT … FOR UPDATE), and one INSERT … SELECT FROM
jsonb_to_recordset … ON CONFLICT DO UPDATE, in one transaction (with the same
`plan_cache_mode = force_custom_plan` the service sets). The API runs in-process (httpx
ASGITransport), so the ratio is framework + validation + service overhead over the SQL. Usage:

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres \
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/profiles_bulk.py [--batches 20]
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

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

BATCH = 1000

SQL_DEFS = (
    "SELECT key, data_type FROM custom_attributes WHERE application_id = :a AND key = ANY(:k)"
)
SQL_LOCK = (
    "SELECT id, custom_id, nickname, custom_attributes, created_at FROM profiles "
    "WHERE application_id = :a AND custom_id = ANY(:c) ORDER BY id FOR UPDATE"
)
SQL_UPSERT = """
INSERT INTO profiles (application_id, id, custom_id, nickname, custom_attributes, created_at)
SELECT :a, r.id, r.custom_id, r.nickname, coalesce(r.custom_attributes, '{}'),
       coalesce(r.created_at, now())
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
     AS r(id uuid, custom_id text, nickname text, custom_attributes jsonb, created_at timestamptz)
ON CONFLICT (application_id, id) DO UPDATE SET
  custom_id = excluded.custom_id, nickname = excluded.nickname,
  custom_attributes = excluded.custom_attributes, created_at = excluded.created_at,
  updated_at = now()
"""


def batch_items(prefix: str, b: int, round_: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}-{b}-{i}",
            "nickname": f"n{i}-{round_}",
            "custom_attributes": {
                "score": (i * 7 + round_) % 100 / 10,
                "seen_at": f"2025-0{1 + i % 9}-1{i % 10}T12:00:00+02:00",
            },
        }
        for i in range(BATCH)
    ]


async def api_run(
    client: httpx.AsyncClient, base: str, headers: dict[str, str], batches: int, round_: int
) -> float:
    start = time.perf_counter()
    for b in range(batches):
        r = await client.post(
            f"{base}/profiles/bulk/",
            json={"profiles": batch_items("api", b, round_)},
            headers=headers,
        )
        body = r.json()
        assert r.status_code == 200 and not body["errors"], r.text[:300]
        assert body["created"] + body["updated"] == BATCH
    return time.perf_counter() - start


async def sql_run(engine: AsyncEngine, app_id: uuid.UUID, batches: int, round_: int) -> float:
    start = time.perf_counter()
    for b in range(batches):
        items = batch_items("sql", b, round_)
        async with engine.begin() as conn:
            # As the service does: plan for the actual arrays (see ProfileRepository.lock_for_bulk).
            await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            await conn.execute(text(SQL_DEFS), {"a": app_id, "k": ["score", "seen_at"]})
            existing = await conn.execute(
                text(SQL_LOCK), {"a": app_id, "c": [i["custom_id"] for i in items]}
            )
            by_cid = {row.custom_id: row for row in existing}
            rows = []
            for item in items:
                cur = by_cid.get(item["custom_id"])
                rows.append(
                    {
                        "id": str(cur.id if cur else uuid.uuid4()),
                        "custom_id": item["custom_id"],
                        "nickname": item["nickname"],
                        "custom_attributes": {
                            **(cur.custom_attributes if cur else {}),
                            **item["custom_attributes"],
                        },
                        "created_at": cur.created_at.isoformat() if cur else None,
                    }
                )
            await conn.execute(text(SQL_UPSERT), {"a": app_id, "rows": json.dumps(rows)})
    return time.perf_counter() - start


async def main(batches: int) -> None:
    async with scratch_database("pg_bench") as url:
        app = create_app(Settings(DATABASE_URL=url_text(url), REDIS_URL=REDIS_URL))
        async with app.router.lifespan_context(app):
            engine: AsyncEngine = app_state(app).engine
            async with create_sessionmaker(engine)() as session, session.begin():
                application, issued = await create_application(session, "bench")
            headers = {"Authorization": f"Bearer {issued.token}"}
            base = f"/api/v1/applications/{application.client_id}"
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for key, data_type in (("score", "number"), ("seen_at", "datetime")):
                    r = await client.post(
                        f"{base}/custom-attributes/",
                        json={"key": key, "data_type": data_type},
                        headers=headers,
                    )
                    assert r.status_code == 201, r.text
                n = batches * BATCH
                print(f"{batches} batches of {BATCH} profiles ({n} profiles), sequential")
                for label, round_ in (("create", 0), ("update", 1)):
                    api_s = await api_run(client, base, headers, batches, round_)
                    sql_s = await sql_run(engine, application.id, batches, round_)
                    print(
                        f"{label}: API {n / api_s:,.0f} profiles/s ({api_s:.2f} s), "
                        f"bare SQL {n / sql_s:,.0f} profiles/s ({sql_s:.2f} s), "
                        f"API/SQL time ratio {api_s / sql_s:.2f}"
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    asyncio.run(main(parser.parse_args().batches))
