"""Benchmark: events per second through POST /events/, beside the bare SQL insert of the same rows.

A realistic mix of event types over 100,000 profiles (a third addressed by custom_id, half with a
client `id`, times spread over the last 30 days) is sent in batches of 1,000 by several concurrent
clients to a real uvicorn server (a subprocess, over HTTP on localhost).

The baseline, measured in the same run with the same concurrency, is the bare SQL insert of the
same rows into the same `events` table (one `INSERT ... SELECT FROM unnest(...)` per batch through
asyncpg, profile ids already resolved) — storage only: no validation, no profile lookup, no
idempotency check, no aggregates. The API does all of those (the aggregates in the same
statement), so the ratio is the full price of the service over a plain insert. A third line runs
the service's ingest statement alone through asyncpg (no HTTP, no Python checks), to show which
share of the price is SQL. Usage:

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres \
    REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/ingest.py [--batches 200] [--clients 4]

It creates (and drops) its own database on that server.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scratch import REDIS_URL, scratch_database, url_text  # noqa: E402
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect  # noqa: E402

from profile_groups.activity.repository import _ingest_statement  # noqa: E402
from profile_groups.activity.service import parse_event  # noqa: E402
from profile_groups.applications.service import create_application  # noqa: E402
from profile_groups.db import create_sessionmaker  # noqa: E402

PROFILES = 100_000
BATCH = 1000

# Weights of a plausible community: lots of reactions and comments, fewer quests and tiers.
MIX: dict[str, int] = {
    "reaction_added": 25,
    "comment_posted": 18,
    "comment_replied": 8,
    "leaderboard_viewed": 8,
    "streak_activity": 9,
    "poll_answered": 5,
    "reward_earned": 5,
    "quest_started": 4,
    "quest_completed": 3,
    "reward_action_triggered": 2,
    "reward_spent": 2,
    "leaderboard_ranked": 2,
    "quest_reward_earned": 2,
    "quest_reward_claimed": 1,
    "social_connection_added": 1,
    "streak_milestone_reached": 1,
    "streak_reset": 1,
    "tier_changed": 1,
    "comment_reported": 1,
    "quest_failed": 1,
}


def make_event(rng: random.Random, n: int, now: datetime) -> dict[str, Any]:
    type_ = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    p = rng.randrange(PROFILES)
    event: dict[str, Any] = {
        "type": type_,
        "occurred_at": (now - timedelta(seconds=rng.randrange(30 * 86400))).isoformat(),
    }
    if rng.random() < 1 / 3:
        event["custom_id"] = f"user-{p}"
    else:
        event["profile_id"] = f"PROFILE:{p}"  # replaced by the real id below
    if rng.random() < 0.5:
        event["id"] = f"evt-{n}"
    if type_ == "streak_activity":
        event["value"] = rng.randrange(60)
        if rng.random() < 0.3:
            event["properties"] = {"streak_type": "periodic"}
    elif type_ == "tier_changed":
        rank = rng.randrange(1, 6)
        event["value"] = ["Bronze", "Silver", "Gold", "Platinum", "Diamond"][rank - 1]
        event["properties"] = {"rank": rank, "direction": rng.choice(["upgrade", "downgrade"])}
    elif type_ in ("reward_earned", "reward_spent"):
        event["value"] = rng.randrange(1, 500) / 2
    elif type_ == "leaderboard_ranked":
        event["properties"] = {"leaderboard_id": f"board-{rng.randrange(20)}"}
    return event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_clients(n_clients: int, batches: list[Any], send: Any) -> float:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            await send(queue.get_nowait())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(n_clients)))
    return time.perf_counter() - start


async def bare_sql(
    dsn: str, app_id: uuid.UUID, rows: list[list[tuple[Any, ...]]], clients: int
) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    sql = (
        "INSERT INTO events (application_id, profile_id, type, occurred_at, value_num, "
        "value_text, properties, client_event_id) "
        "SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::numeric[], "
        "$6::text[], $7::jsonb[], $8::text[])"
    )

    async def send(batch: list[tuple[Any, ...]]) -> None:
        cols = list(zip(*batch, strict=True))
        async with pool.acquire() as conn:
            await conn.execute(sql, app_id, *cols)

    try:
        return await run_clients(clients, rows, send)
    finally:
        await pool.close()


async def statement_only(
    dsn: str,
    app_id: uuid.UUID,
    batches: list[list[dict[str, Any]]],
    clients: int,
    mark_changes: bool = True,
) -> float:
    """The service's ingest statement alone (profile lookup, idempotent insert, aggregates,
    change marks), executed straight through asyncpg: the SQL share of the API's cost. Without
    `mark_changes`, the same statement without queueing the profiles for incremental updates."""
    compiled = _ingest_statement(mark_changes).compile(dialect=asyncpg_dialect.dialect())
    sql = str(compiled)
    now = datetime.now(UTC)
    arg_lists = []
    for batch in batches:
        rows = []
        for e in batch:
            row = parse_event(e, now)
            prefix = "stmt-" if mark_changes else "unmarked-"
            client_id = None if row.client_event_id is None else f"{prefix}{row.client_event_id}"
            rows.append((*row[:7], client_id))
        values = compiled.construct_params({"app": app_id, "rows": json.dumps(rows)})
        arg_lists.append([values[k] for k in compiled.positiontup or []])
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)

    async def send(args: list[Any]) -> None:
        async with pool.acquire() as conn:
            await conn.execute(sql, *args)

    try:
        return await run_clients(clients, arg_lists, send)
    finally:
        await pool.close()


def sql_rows(
    batch: list[dict[str, Any]], ids: list[uuid.UUID], prefix: str
) -> list[tuple[Any, ...]]:
    out = []
    for e in batch:
        p = int((e.get("profile_id") or e["custom_id"]).split(":")[-1].split("-")[-1])
        value = e.get("value")
        out.append(
            (
                ids[p],
                e["type"],
                datetime.fromisoformat(e["occurred_at"]),
                None if value is None or isinstance(value, str) else value,
                value if isinstance(value, str) else None,
                json.dumps(e["properties"]) if "properties" in e else None,
                f"{prefix}{e['id']}" if "id" in e else None,
            )
        )
    return out


async def main(n_batches: int, clients: int, workers: int, rounds: int) -> None:
    async with scratch_database("pg_bench_ingest") as server_url:
        await measure(server_url, n_batches, clients, workers, rounds)


async def measure(server_url: URL, n_batches: int, clients: int, workers: int, rounds: int) -> None:
    url = url_text(server_url)
    dsn = url_text(server_url.set(drivername="postgresql"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        engine = create_async_engine(url)
        async with create_sessionmaker(engine)() as session, session.begin():
            application, issued = await create_application(session, "bench")
        async with engine.begin() as conn:
            rows = await conn.execute(
                text(
                    "INSERT INTO profiles (application_id, id, custom_id) "
                    "SELECT :app, gen_random_uuid(), 'user-' || (g - 1) "
                    "FROM generate_series(1, :n) g ORDER BY g RETURNING id, custom_id"
                ),
                {"app": application.id, "n": PROFILES},
            )
            by_index = {int(r.custom_id.split("-")[1]): r.id for r in rows}
        async with engine.connect() as conn:
            # A loaded table as a production server keeps it: autovacuum would have vacuumed and
            # analysed it within a minute (this machine's PostgreSQL runs with autovacuum off).
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE profiles"))
        await engine.dispose()
        ids = [by_index[i] for i in range(PROFILES)]

        rng = random.Random(42)
        now = datetime.now(UTC)
        total = n_batches * BATCH

        def round_batches(r: int) -> list[list[dict[str, Any]]]:
            offset = r * total
            return [
                [make_event(rng, offset + b * BATCH + i, now) for i in range(BATCH)]
                for b in range(n_batches)
            ]

        def with_ids(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for e in batch:
                if "profile_id" in e:
                    e["profile_id"] = str(ids[int(e["profile_id"].split(":")[1])])
            return batch

        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": str(max(clients, 4)),
        }
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurements
            [sys.executable, "-m", "uvicorn", "--factory", "profile_groups.app:main_app",
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
             "--no-access-log", "--log-level", "warning"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}/api/v1/applications/{application.client_id}"
        headers = {
            "Authorization": f"Bearer {issued.token}",
            "Content-Type": "application/json",
        }
        limits = httpx.Limits(max_connections=clients)
        print(
            f"{total:,} events per round in batches of {BATCH} over {PROFILES:,} profiles, "
            f"{clients} concurrent clients, {workers} uvicorn worker(s), {rounds} rounds"
        )
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            for _ in range(100):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            accepted = 0

            async def send(body: bytes) -> None:
                nonlocal accepted
                r = await client.post(f"{base}/events/", content=body, headers=headers)
                assert r.status_code == 200, r.text
                result = r.json()
                assert not result["rejected"], result["rejected"][:3]
                accepted += result["accepted"]

            # Warm-up (connections, caches) with a batch that is not counted.
            warm = with_ids([make_event(rng, -(i + 1), now) for i in range(BATCH)])
            for e in warm:
                e.pop("id", None)
            await send(json.dumps({"events": warm}).encode())

            # Rounds alternate the bare SQL and the API on fresh rows of the same shape, so a
            # noisy moment on a shared machine does not decide the ratio; medians are reported.
            sql_rates, stmt_rates, unmarked_rates, api_rates = [], [], [], []
            for r in range(rounds):
                batches = round_batches(r)
                sql_time = await bare_sql(
                    dsn, application.id, [sql_rows(b, ids, "sql-") for b in batches], clients
                )
                with_ids_batches = [with_ids(b) for b in batches]
                stmt_time = await statement_only(dsn, application.id, with_ids_batches, clients)
                unmarked_time = await statement_only(
                    dsn, application.id, with_ids_batches, clients, mark_changes=False
                )
                bodies = [json.dumps({"events": b}).encode() for b in with_ids_batches]
                accepted = 0
                api_time = await run_clients(clients, bodies, send)
                assert accepted == total, (accepted, total)
                sql_rates.append(total / sql_time)
                stmt_rates.append(total / stmt_time)
                unmarked_rates.append(total / unmarked_time)
                api_rates.append(total / api_time)
                print(
                    f"  round {r + 1}: bare SQL {sql_rates[-1]:9,.0f} events/s | "
                    f"ingest statement alone {stmt_rates[-1]:9,.0f} | "
                    f"POST /events/ {api_rates[-1]:9,.0f} | "
                    f"ratio {api_rates[-1] / sql_rates[-1]:.2f}"
                )
            # A retried batch is all duplicates.
            r_ = await client.post(f"{base}/events/", content=bodies[0], headers=headers)
            dup = r_.json()["duplicates"]

        api_rate, sql_rate = statistics.median(api_rates), statistics.median(sql_rates)
        stmt_rate = statistics.median(stmt_rates)
        unmarked_rate = statistics.median(unmarked_rates)
        print(f"bare SQL insert : {sql_rate:10,.0f} events/s (median)")
        print(
            f"ingest statement alone (no HTTP/Python): {stmt_rate:10,.0f} events/s (median), "
            f"{stmt_rate / sql_rate:.2f} of bare SQL"
        )
        print(
            f"the same statement without the change marks: {unmarked_rate:10,.0f} events/s "
            f"(median): marking costs {1 - stmt_rate / unmarked_rate:.1%} of the statement's rate"
        )
        print(f"POST /events/   : {api_rate:10,.0f} events/s (median)")
        print(f"ratio API / bare SQL: {api_rate / sql_rate:.2f}  (retry of a batch: {dup} dups)")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    asyncio.run(main(args.batches, args.clients, args.workers, args.rounds))
