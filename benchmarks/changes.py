"""Benchmark: the change log's cost in a first evaluation, and how fast its changes reach a
webhook receiver.

Seeds N profiles (INSERT … SELECT generate_series) with a number custom attribute `score`; the
rule `score > 0.945` matches exactly 5% of them. Timed:
1. the bare SQL of the first evaluation (matching set inserted into an empty group), without and
   with the change-log insert in the same statement: what recording the changes costs in SQL;
2. the service's first evaluation (`groups.evaluation.run_evaluation`, as the worker runs it) of a
   group no webhook covers, and of one a webhook covers while the webhook engine runs (as in the
   worker) with a receiver on loopback that verifies every signature with `standardwebhooks`;
3. the time from that evaluation's commit until every change has reached the receiver (batches
   of 1,000).
Targets: the logged evaluation within 1.2x of the bare SQL without the log; N*5% changes at the
receiver within 10 s of the commit. Usage:

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres \
    python benchmarks/changes.py [--profiles 1000000] [--keep]
"""

import argparse
import asyncio
import socket
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook, WebhookVerificationError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scratch import insert_application, scratch_database, url_text

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker, create_engine, create_sessionmaker
from profile_groups.groups import evaluation as service
from profile_groups.groups.repositories.evaluations import EvaluationRepository
from profile_groups.groups.repositories.rulesets import RulesetRepository
from profile_groups.models import ProfileGroup
from profile_groups.models.webhooks import WebhookSubscription
from profile_groups.webhooks.delivery import new_secret
from profile_groups.webhooks.dispatcher import WebhookEngine
from profile_groups.webhooks.repository import SubscriptionRepository

RULE: dict[str, Any] = {"attribute": "score", "condition": "greater_than", "value": 0.945}
MATCH = (
    "p.application_id = :app AND (CASE WHEN jsonb_typeof(p.custom_attributes -> 'score') = "
    "'number' THEN (p.custom_attributes ->> 'score')::numeric END) > 0.945"
)
BARE = f"""
INSERT INTO group_memberships (group_id, profile_id, application_id, created_at)
SELECT :group, p.id, :app, now() FROM profiles p WHERE {MATCH}
"""
# The same insert, and the change log's rows in the same statement, as the service writes them:
# custom_id carried from the matching scan (no second probe of the profiles), in profile order.
BARE_WITH_LOG = f"""
WITH matched AS MATERIALIZED (
  SELECT p.id, p.custom_id FROM profiles p WHERE {MATCH}
), added AS (
  INSERT INTO group_memberships (group_id, profile_id, application_id, created_at)
  SELECT :group, m.id, :app, now() FROM matched m
  RETURNING profile_id
)
INSERT INTO membership_changes
  (application_id, group_id, profile_id, custom_id, change, reason, occurred_at)
SELECT :app, :group, a.profile_id, m.custom_id, 'entered', 'evaluation', now()
FROM added a JOIN matched m ON m.id = a.profile_id
ORDER BY a.profile_id
"""


class Receiver:
    """A loopback HTTP receiver: verifies each request, counts the changes, notes the time."""

    def __init__(self, secret: str) -> None:
        self.hook = Webhook(secret)
        self.changes = 0
        self.deliveries = 0
        self.unverified = 0
        self.biggest = 0
        self.last_at = 0.0
        self.done = asyncio.Event()
        self.expected = 0
        self.arrivals: list[float] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        try:
            event = self.hook.verify(body, headers)
            n = len(event["data"].get("changes", []))
            self.changes += n
            self.biggest = max(self.biggest, n)
            self.deliveries += 1
        except WebhookVerificationError:
            self.unverified += 1
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        self.last_at = time.perf_counter()
        self.arrivals.append(self.last_at)
        if self.expected and self.changes >= self.expected:
            self.done.set()


async def seed(engine: AsyncEngine, n: int) -> uuid.UUID:
    async with engine.begin() as conn:
        app_id = await insert_application(conn, {"score": "number"})
        await conn.execute(
            text(
                "INSERT INTO profiles (application_id, id, nickname, custom_id, custom_attributes)"
                " SELECT :app, gen_random_uuid(), 'p' || g, 'c' || g,"
                " jsonb_build_object('score', (g % 100) / 100.0)"
                " FROM generate_series(1, :n) g"
            ),
            {"app": app_id, "n": n},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE profiles"))
    return app_id


async def make_group(sessionmaker: AsyncSessionMaker, app_id: uuid.UUID, name: str) -> ProfileGroup:
    async with sessionmaker() as session, session.begin():
        group = ProfileGroup(application_id=app_id, name=name, membership_type="dynamic")
        session.add(group)
        await session.flush()
        await session.refresh(group)
        repo = RulesetRepository(session)
        ruleset = await repo.add_ruleset(group, RULE, ["score"])
        await repo.point_at(group, ruleset.id, datetime.now(UTC) + timedelta(hours=1))
    return group


async def bare(engine: AsyncEngine, sql: str, app_id: uuid.UUID, group: ProfileGroup) -> float:
    start = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT 1 FROM profile_groups WHERE id = :g FOR NO KEY UPDATE"), {"g": group.id}
        )
        await conn.execute(
            text("SELECT set_config('work_mem', :v, true)"), {"v": service.EVALUATION_WORK_MEM}
        )
        await conn.execute(text(sql), {"app": app_id, "group": group.id})
    return time.perf_counter() - start


async def evaluate(sessionmaker: AsyncSessionMaker, group: ProfileGroup) -> tuple[float, int]:
    async with sessionmaker() as session, session.begin():
        evaluation, _ = await EvaluationRepository(session).request(group.id, "manual")
        assert evaluation is not None
    start = time.perf_counter()
    result = await service.run_evaluation(sessionmaker, evaluation.id, timeout_ms=600_000)
    assert result is not None and result.status == "succeeded", result and result.error
    return time.perf_counter() - start, int(result.added_count or 0)


async def logged(engine: AsyncEngine, group: ProfileGroup) -> int:
    async with engine.connect() as conn:
        n = await conn.scalar(
            text("SELECT count(*) FROM membership_changes WHERE group_id = :g"), {"g": group.id}
        )
    return int(n or 0)


async def subscribe(sessionmaker: AsyncSessionMaker, app_id: uuid.UUID, group: ProfileGroup,
                    url: str) -> str:  # fmt: skip
    async with sessionmaker() as session, session.begin():
        repo = SubscriptionRepository(session)
        secret = new_secret()
        repo.add(
            WebhookSubscription(
                application_id=app_id,
                url=url,
                events=["group.members_changed"],
                group_ids=[group.id],
                secret=secret,
                start_change_id=await repo.last_change_id(),
            )
        )
    return secret


async def main(n: int, keep: bool, repeat: int) -> None:
    async with scratch_database("pg_bench_changes", keep=keep) as url:
        settings = Settings(
            DATABASE_URL=url_text(url),
            STATEMENT_TIMEOUT_MS=600_000,
            WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
        )
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        t0 = time.perf_counter()
        app_id = await seed(engine, n)
        print(f"seeded {n:,} profiles in {time.perf_counter() - t0:.1f} s")
        hooked_group = await make_group(sessionmaker, app_id, "webhook")
        # Warm the caches and the service's path once (throwaway groups), so no timed run pays
        # for disk reads or first-use costs.
        await bare(engine, BARE, app_id, await make_group(sessionmaker, app_id, "warm"))
        await evaluate(sessionmaker, await make_group(sessionmaker, app_id, "warm service"))

        # Interleaved rounds, each on fresh (empty) groups; the medians are compared.
        bares, bare_logs, plains = [], [], []
        for i in range(repeat):
            bares.append(
                await bare(engine, BARE, app_id, await make_group(sessionmaker, app_id, f"b{i}"))
            )
            bare_logs.append(
                await bare(
                    engine, BARE_WITH_LOG, app_id, await make_group(sessionmaker, app_id, f"l{i}")
                )
            )
            plain_group = await make_group(sessionmaker, app_id, f"s{i}")
            t, added = await evaluate(sessionmaker, plain_group)
            plains.append(t)
        t_bare, t_bare_log, t_plain = map(statistics.median, (bares, bare_logs, plains))
        records = await logged(engine, plain_group) > 0

        secret = await subscribe(sessionmaker, app_id, hooked_group, "")
        receiver = Receiver(secret)
        await receiver.start()
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhook_subscriptions SET url = :u"),
                {"u": f"http://127.0.0.1:{receiver.port}/hook"},
            )
        receiver.expected = added
        hooks = WebhookEngine(sessionmaker, settings)
        await hooks.start()
        t_hooked, _ = await evaluate(sessionmaker, hooked_group)
        committed = time.perf_counter()
        try:
            await asyncio.wait_for(receiver.done.wait(), timeout=120)
        except TimeoutError:
            print(f"  receiver got only {receiver.changes:,} of {added:,} changes in 120 s")
        lag = receiver.last_at - committed
        print("  arrivals after the commit:", [round(a - committed, 3) for a in receiver.arrivals])
        await hooks.stop()
        receiver.server.close()

        print(f"medians of {repeat} rounds")
        print(f"bare SQL, first evaluation        {t_bare:7.3f} s  ({added:,} members added)")
        print(
            f"bare SQL with the change log      {t_bare_log:7.3f} s  "
            f"{t_bare_log / t_bare:5.2f}x  (what logging costs in SQL)"
        )
        print(
            f"service evaluation, no webhook    {t_plain:7.3f} s  {t_plain / t_bare:5.2f}x bare"
            f"  (change log {'recorded' if records else 'NOT recorded'})"
        )
        print(
            f"service evaluation, webhook on    {t_hooked:7.3f} s  {t_hooked / t_bare:5.2f}x bare"
        )
        print(
            f"changes at the receiver           {receiver.changes:,} in {receiver.deliveries} "
            f"deliveries (largest {receiver.biggest:,}, {receiver.unverified} unverified), "
            f"last {lag:.3f} s after the commit"
        )
        met = (
            records
            and t_plain <= 1.2 * t_bare
            and receiver.changes >= added
            and lag <= 10
            and receiver.unverified == 0
        )
        print(
            "targets (logged evaluation within 1.2x of bare SQL without the log; every change "
            f"at the receiver within 10 s of the commit): {'met' if met else 'MISSED'}"
        )
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.profiles, args.keep, args.repeat))
