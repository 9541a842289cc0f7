"""Benchmark: how fresh dynamic groups stay under steady ingestion.

1,000,000 profiles and 50 dynamic groups of varied rules (benchmarks/population.py), all
evaluated once; then a real API (uvicorn subprocess) and a real worker (`profile-groups worker`
subprocess) on localhost, while 4 clients send 5,000 events/s in batches for 60 s. Meanwhile a
probe, twice a second, posts the one event that qualifies a random profile for a probe group
(`leaderboards_ranked_on >= 1`; no seeded profile has one) and polls
`GET /profiles/{id}/profile-groups/` until the group is there. Printed: the probes' p50 / p95 /
max from the event's 200 to the membership being visible (target p95 <= 5 s), beside the floor
the same run measures: the latency of the event request itself. Usage:

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres \
    REDIS_URL=redis://127.0.0.1:6379/13 \
    python benchmarks/freshness.py [--profiles 1000000] [--seconds 60] [--rate 5000]
                                   [--keep | --reuse DBNAME [--keep-groups]]
"""

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import population  # noqa: E402
from cycle import application, make_groups, service_cycle  # noqa: E402
from scratch import REDIS_URL, scratch_database, url_text  # noqa: E402

from profile_groups.applications.service import create_token  # noqa: E402
from profile_groups.config import Settings  # noqa: E402
from profile_groups.db import create_engine, create_sessionmaker  # noqa: E402
from profile_groups.models import Application  # noqa: E402

PROBE_RULE = {
    "attribute": "leaderboards_ranked_on",
    "condition": "greater_than_or_equal",
    "value": 1,
}
BATCH = 500
CLIENTS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def kept_groups(engine: AsyncEngine, count: int) -> tuple[uuid.UUID, uuid.UUID | None] | None:
    """(application, probe group or None) of an earlier run's groups, if it left all of them
    (cycle.py leaves all but the probe group)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT g.application_id, g.id, g.name FROM profile_groups g "
                    "JOIN applications a ON a.id = g.application_id AND a.name = 'bench'"
                )
            )
        ).all()
    probe = [r for r in rows if r.name == f"g{count - 1}"]
    if len(rows) == count and probe:
        return probe[0].application_id, probe[0].id
    if len(rows) == count - 1 and not probe:
        return rows[0].application_id, None
    return None


async def main(
    n: int,
    seconds: int,
    rate: int,
    keep: bool,
    reuse: str | None,
    keep_groups: bool,
    ingest_only: bool,
) -> None:
    async with scratch_database("pg_bench_fresh", keep=keep, reuse=reuse) as url:
        settings = Settings(DATABASE_URL=url_text(url), STATEMENT_TIMEOUT_MS=600_000)
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        trees = [tree for tree, _ in population.rules()] + [PROBE_RULE]
        kept = await kept_groups(engine, len(trees)) if keep_groups else None
        if kept is not None:
            # The groups of an earlier run (this one's or cycle.py's), evaluated then; what it
            # left queued is stale. A missing probe group is made and evaluated alone.
            app_id, probe_id = kept
            if probe_id is None:
                [probe] = await make_groups(sessionmaker, app_id, [PROBE_RULE], len(trees) - 1)
                await service_cycle(sessionmaker, [probe])
                probe_id = probe.id
            probe_group = str(probe_id)
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE profile_changes"))
            print("reusing the groups and memberships of the earlier run")
        else:
            app_id = await application(engine, n, reuse is not None)
            groups = await make_groups(sessionmaker, app_id, trees)
            probe_group = str(groups[-1].id)
            async with engine.begin() as conn:  # what the full cycle below makes current anyway
                await conn.execute(text("TRUNCATE profile_changes"))
            t0 = time.perf_counter()
            _, added, failed = await service_cycle(sessionmaker, groups)
            print(f"{len(groups)} groups evaluated in {time.perf_counter() - t0:.1f} s "
                  f"({added:,} memberships, {len(failed)} failed)")  # fmt: skip
        async with sessionmaker() as session, session.begin():
            app = await session.get(Application, app_id)
            assert app is not None
            token = (await create_token(session, app)).token
            client_id = app.client_id
            # Probes go to profiles that are not in the probe group yet (a reused database keeps
            # the probes of earlier runs).
            ids = [
                str(r)
                for r in (
                    await session.execute(
                        text(
                            "SELECT id FROM profiles WHERE application_id = :a AND id NOT IN "
                            "(SELECT profile_id FROM group_memberships WHERE group_id = :g)"
                        ),
                        {"a": app_id, "g": probe_group},
                    )
                ).scalars()
            ]
        await engine.dispose()

        port = free_port()
        env = {**os.environ, "DATABASE_URL": url_text(url), "REDIS_URL": REDIS_URL,
               "LOG_LEVEL": "WARNING", "CURSOR_SECRET": "bench-" + uuid.uuid4().hex}  # fmt: skip
        api = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurements
            [sys.executable, "-m", "uvicorn", "--factory", "profile_groups.app:main_app",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, cwd=ROOT,
        )  # fmt: skip
        procs = [api]
        if not ingest_only:
            procs.append(
                subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, "-m", "profile_groups.cli", "worker"], env=env, cwd=ROOT
                )
            )
        try:
            await measure(f"http://127.0.0.1:{port}", client_id, token, ids, probe_group,
                          seconds, rate, probing=not ingest_only)  # fmt: skip
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGINT)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


async def measure(
    base_url: str,
    client_id: str,
    token: str,
    ids: list[str],
    probe_group: str,
    seconds: int,
    rate: int,
    *,
    probing: bool,
) -> None:
    base = f"{base_url}/api/v1/applications/{client_id}"
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(3)
    lags: list[float] = []
    request_times: list[float] = []
    sent = 0
    missed = 0
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        for _ in range(150):
            try:
                if (await client.get(f"{base_url}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        per_client_interval = BATCH * CLIENTS / rate

        async def load() -> None:
            nonlocal sent
            while loop.time() < end:
                started = loop.time()
                events = [
                    {"type": rng.choice(("comment_posted", "reaction_added")),
                     "profile_id": rng.choice(ids)}
                    for _ in range(BATCH)
                ]  # fmt: skip
                t = time.perf_counter()
                r = await client.post(f"{base}/events/", json={"events": events})
                request_times.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
                sent += r.json()["accepted"]
                await asyncio.sleep(max(0.0, per_client_interval - (loop.time() - started)))

        async def probe(profile_id: str) -> None:
            nonlocal missed
            event = {"type": "leaderboard_ranked", "profile_id": profile_id,
                     "properties": {"leaderboard_id": f"probe-{profile_id}"}}  # fmt: skip
            r = await client.post(f"{base}/events/", json={"events": [event]})
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
            accepted_at = time.perf_counter()
            while time.perf_counter() - accepted_at < 30:
                r = await client.get(f"{base}/profiles/{profile_id}/profile-groups/")
                if any(g["group_id"] == probe_group for g in r.json()["results"]):
                    lags.append(time.perf_counter() - accepted_at)
                    return
                await asyncio.sleep(0.1)
            missed += 1

        async def probes() -> None:
            tasks = []
            for profile_id in rng.sample(ids, seconds * 2):
                if loop.time() >= end:
                    break
                tasks.append(asyncio.create_task(probe(profile_id)))
                await asyncio.sleep(0.5)
            await asyncio.gather(*tasks)

        t0 = time.perf_counter()
        await asyncio.gather(*(load() for _ in range(CLIENTS)), *([probes()] if probing else []))
        elapsed = time.perf_counter() - t0
    if not probing:
        print(f"ingested {sent:,} events in {elapsed:.1f} s: {sent / elapsed:,.0f} events/s "
              f"(asked {rate:,}; API only, no worker)")  # fmt: skip
        return
    print(f"ingested {sent:,} events in {elapsed:.1f} s: {sent / elapsed:,.0f} events/s "
          f"(asked {rate:,}), {len(lags)} probes, {missed} not visible within 30 s")  # fmt: skip
    print(f"event -> membership visible: p50 {statistics.median(lags):.2f} s   "
          f"p95 {percentile(lags, 0.95):.2f} s   max {max(lags):.2f} s")  # fmt: skip
    print(f"floor, the event request itself: p50 {statistics.median(request_times):.3f} s   "
          f"p95 {percentile(request_times, 0.95):.3f} s")  # fmt: skip
    ok = not missed and percentile(lags, 0.95) <= 5
    print(f"target (p95 <= 5 s): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=5000, help="events per second")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", help="a database kept by an earlier run (skips seeding)")
    parser.add_argument(
        "--keep-groups",
        action="store_true",
        help="with --reuse: keep that run's evaluated groups (skips the full evaluation)",
    )
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="no worker and no probes: the ingestion rate this machine sustains by itself",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.profiles,
            args.seconds,
            args.rate,
            args.keep,
            args.reuse,
            args.keep_groups,
            args.ingest_only,
        )
    )
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
