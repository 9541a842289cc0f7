"""A bounded load test of mixed traffic (loopback only) against the suite's own API and worker
processes: concurrent profile creates, bulk upserts, deletes, member adds and removes over
shared groups, event batches and list reads. It checks the invariants and prints the 409 and
error rates (docs/operations.md has the latest numbers).

Bounds: LOAD_SECONDS (default 40) and LOAD_MAX_REQUESTS (default 20,000)."""

import asyncio
import os
import random
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx

from tests.faults.conftest import Stack

SECONDS = float(os.environ.get("LOAD_SECONDS", "40"))
MAX_REQUESTS = int(os.environ.get("LOAD_MAX_REQUESTS", "20000"))
CLIENTS = 6
GROUPS = 3


async def test_mixed_load_keeps_every_invariant(stack: Stack) -> None:
    rng = random.Random(10)  # a fixed seed: the same mix every run
    statuses: Counter[tuple[str, int]] = Counter()
    mismatched_pages: list[tuple[str, int, int]] = []
    accepted = 0
    sent: set[str] = set()
    budget = [MAX_REQUESTS]
    deadline = time.monotonic() + SECONDS

    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers, timeout=60) as c:
        groups = []
        for g in range(GROUPS):
            r = await c.post("/profile-groups/", json={"name": f"load-{g}"})
            assert r.status_code == 201, r.text
            groups.append(r.json()["id"])
        # Profiles that are never deleted carry the events, so events accepted = stored.
        keep = []
        for k in range(20):
            r = await c.post("/profiles/", json={"custom_id": f"keep-{k}"})
            keep.append(r.json()["id"])
        pool: list[str] = []

        async def call(kind: str, method: str, url: str, **kw: Any) -> httpx.Response:
            budget[0] -= 1
            r = await c.request(method, url, **kw)
            statuses[(kind, r.status_code)] += 1
            return r

        async def client(n: int) -> None:
            nonlocal accepted
            i = 0
            while time.monotonic() < deadline and budget[0] > 0:
                i += 1
                op = rng.random()
                if op < 0.15:
                    r = await call("create", "POST", "/profiles/", json={"custom_id": f"l{n}-{i}"})
                    if r.status_code == 201:
                        pool.append(r.json()["id"])
                elif op < 0.2:
                    items = [{"custom_id": f"b{n}-{i}-{k}", "nickname": "x"} for k in range(20)]
                    await call("bulk", "POST", "/profiles/bulk/", json={"profiles": items})
                elif op < 0.27 and pool:
                    victim = pool.pop(rng.randrange(len(pool)))
                    await call("delete", "DELETE", f"/profiles/{victim}/")
                elif op < 0.45:
                    ids = rng.sample(pool, min(len(pool), 5)) + rng.sample(keep, 2)
                    g = rng.choice(groups)
                    await call(
                        "add", "POST", f"/profile-groups/{g}/members/", json={"profile_ids": ids}
                    )
                elif op < 0.55:
                    ids = rng.sample(pool, min(len(pool), 3)) + rng.sample(keep, 1)
                    g = rng.choice(groups)
                    await call(
                        "remove",
                        "DELETE",
                        f"/profile-groups/{g}/members/",
                        json={"profile_ids": ids},
                    )
                elif op < 0.7:
                    events = []
                    for k in range(10):
                        eid = f"ev{n}-{i}-{k}"
                        sent.add(eid)
                        events.append(
                            {"id": eid, "type": "comment_posted", "profile_id": rng.choice(keep)}
                        )
                    r = await call("events", "POST", "/events/", json={"events": events})
                    if r.status_code == 200:
                        accepted += r.json()["accepted"]
                    else:
                        sent.difference_update(e["id"] for e in events)
                else:
                    g = rng.choice(groups)
                    path = rng.choice(
                        [
                            f"/profile-groups/{g}/members/?page_size=1000",
                            f"/profiles/{rng.choice(keep)}/profile-groups/?page_size=1000",
                            "/profile-groups/?page_size=1000",
                        ]
                    )
                    r = await call("list", "GET", path)
                    if r.status_code == 200:
                        page = r.json()
                        if page["next"] is None and page["count"] != len(page["results"]):
                            mismatched_pages.append((path, page["count"], len(page["results"])))

        started = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        elapsed = time.monotonic() - started

        total = sum(statuses.values())
        conflicts = sum(n for (_, s), n in statuses.items() if s == 409)
        errors = sum(n for (_, s), n in statuses.items() if s >= 500)
        unexpected = {k: n for k, n in statuses.items() if k[1] not in (200, 201, 204, 409)}
        by_kind = Counter(k for k, _ in statuses.elements())
        print(
            f"\nload: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s), "
            f"409: {conflicts} ({100 * conflicts / total:.2f}%), 5xx: {errors}, "
            f"by kind: {dict(by_kind)}, 409 by kind: "
            f"{ {k: n for (k, s), n in statuses.items() if s == 409} }"
        )
        assert errors == 0 and unexpected == {}, unexpected
        assert mismatched_pages == []

        conn = await asyncpg.connect(stack.pg.url.replace("+asyncpg", ""), timeout=10)
        try:
            for g in groups:
                r = await c.get(f"/profile-groups/{g}/members/?page_size=1000")
                page = r.json()
                rows = await conn.fetchval(
                    "SELECT count(*) FROM group_memberships WHERE group_id = $1::uuid", g
                )
                count = (await c.get(f"/profile-groups/{g}/")).json()["profile_count"]
                assert count == rows == page["count"] == len(page["results"])
            stored = await conn.fetchval(
                "SELECT count(*) FROM events WHERE client_event_id LIKE 'ev%'"
            )
        finally:
            await conn.close()
        assert stored == accepted == len(sent), (stored, accepted, len(sent))
