"""The fault suite (docs/operations.md): the API and the worker as their own processes, on a
PostgreSQL and a Redis of this suite's own, under a bounded request loop while each dependency
is stopped, frozen (SIGSTOP), killed and started again.

Asserts: no answer but a success or a 503 (with Retry-After) while anything is down; recovery
without restarting the API or the worker; no lost or half-applied change (every confirmed
profile, member and event is there, `profile_count` = member rows = the listing, events
accepted = events stored); a worker killed with SIGKILL is replaced and its queue still runs.
"""

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.faults.conftest import Stack
from tests.faults.servers import wait_until

# Every loop below is bounded by count and by time.
MAX_OPERATIONS = 4000
LOOP_SECONDS = 120
CLIENTS = 4
OK = {200, 201, 204}


@dataclass
class Ledger:
    """What the clients were told: statuses by phase, confirmed changes, events to replay."""

    phase: str = "steady"
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    bad: list[tuple[str, str, int, str]] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)  # custom_id -> id (201)
    members: set[str] = field(default_factory=set)  # profile ids added (200)
    accepted: int = 0
    # Events of a batch whose request failed although it committed (the connection died during
    # COMMIT, an in-doubt outcome): its replay counts them as duplicates, stored once.
    in_doubt: int = 0
    sent_events: set[str] = field(default_factory=set)
    replay: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


async def _call(
    c: httpx.AsyncClient, ledger: Ledger, method: str, url: str, **kw: Any
) -> httpx.Response | None:
    started = time.monotonic()
    try:
        r = await c.request(method, url, **kw)
    except httpx.TransportError as exc:  # the API itself must always answer
        ledger.bad.append((ledger.phase, url, -1, repr(exc)))
        return None
    ledger.latencies.append(time.monotonic() - started)
    ledger.statuses[(ledger.phase, r.status_code)] += 1
    if r.status_code not in OK and r.status_code != 503:
        ledger.bad.append((ledger.phase, url, r.status_code, r.text[:300]))
    if r.status_code == 503 and not r.headers.get("retry-after"):
        ledger.bad.append((ledger.phase, url, 503, "no Retry-After"))
    return r


async def _client_loop(
    stack: Stack, ledger: Ledger, group: str, n: int, done: asyncio.Event, budget: list[int]
) -> None:
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers, timeout=30) as c:
        i = 0
        while not done.is_set() and budget[0] > 0:
            budget[0] -= 3
            i += 1
            custom_id = f"c{n}-{i}"
            r = await _call(c, ledger, "POST", "/profiles/", json={"custom_id": custom_id})
            if r is None or r.status_code != 201:
                await asyncio.sleep(0.05)
                continue
            pid = r.json()["id"]
            ledger.profiles[custom_id] = pid
            r = await _call(
                c, ledger, "POST", f"/profile-groups/{group}/members/", json={"profile_ids": [pid]}
            )
            if r is not None and r.status_code == 200:
                ledger.members.add(pid)
            batch = {
                "events": [
                    {"id": f"e-{pid}-{k}", "type": "comment_posted", "profile_id": pid}
                    for k in range(3)
                ]
            }
            ledger.sent_events |= {e["id"] for e in batch["events"]}
            r = await _call(c, ledger, "POST", "/events/", json=batch)
            if r is not None and r.status_code == 200:
                ledger.accepted += r.json()["accepted"]
            else:
                ledger.replay.append(batch)


async def _timed_readyz(stack: Stack) -> tuple[float, int]:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(f"{stack.api.base}/readyz")
    return round(time.monotonic() - started, 2), r.status_code


def _ready(stack: Stack) -> bool:
    r = httpx.get(f"{stack.api.base}/readyz", timeout=5)
    return r.status_code == 200


async def _phase(ledger: Ledger, name: str, action: Callable[[], None], hold: float) -> None:
    ledger.phase = name
    await asyncio.to_thread(action)
    await asyncio.sleep(hold)


async def test_dependencies_stopped_frozen_and_restarted_under_load(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers, timeout=30) as c:
        r = await c.post("/profile-groups/", json={"name": "under-faults"})
        assert r.status_code == 201, r.text
        group = r.json()["id"]
    api_pid = stack.api.proc.pid if stack.api.proc else None
    worker_pid = stack.worker.proc.pid if stack.worker.proc else None
    ledger = Ledger()
    done = asyncio.Event()
    budget = [MAX_OPERATIONS]
    clients = [
        asyncio.create_task(_client_loop(stack, ledger, group, n, done, budget))
        for n in range(CLIENTS)
    ]
    pg, redis = stack.pg, stack.redis
    down_for = 3.0
    readyz_while_frozen: list[tuple[float, int]] = []

    async def faults() -> None:
        await asyncio.sleep(2)
        await _phase(ledger, "pg fast stop", lambda: pg.stop(signal.SIGINT), down_for)
        await _phase(ledger, "pg starting", pg.start, 2)
        # Frozen past the client-side command bound (3 s statement timeout + 5 s).
        await _phase(ledger, "pg frozen", pg.freeze, 1)
        readyz_while_frozen.append(await _timed_readyz(stack))
        await asyncio.sleep(9)
        await _phase(ledger, "pg thawed", pg.thaw, 3)
        await _phase(ledger, "pg killed", pg.kill, down_for)
        await _phase(ledger, "pg crash recovery", pg.start, 3)
        await _phase(ledger, "redis stopped", redis.stop, down_for)
        await _phase(ledger, "redis starting", redis.start, 2)
        await _phase(ledger, "redis frozen", redis.freeze, 1)
        readyz_while_frozen.append(await _timed_readyz(stack))
        await asyncio.sleep(down_for)
        await _phase(ledger, "redis thawed", redis.thaw, 3)
        ledger.phase = "steady"

    try:
        await asyncio.wait_for(faults(), LOOP_SECONDS)
    finally:
        done.set()
        await asyncio.wait_for(asyncio.gather(*clients), 60)

    # Recovery without a restart: the same API and worker processes, ready again.
    await asyncio.to_thread(wait_until, lambda: _ready(stack), 60, "readiness after the faults")
    assert stack.api.proc is not None and stack.api.proc.pid == api_pid
    assert stack.api.proc.poll() is None
    assert stack.worker.proc is not None and stack.worker.proc.pid == worker_pid
    assert stack.worker.proc.poll() is None, stack.dump_logs()

    print("\nfault suite statuses by phase:", dict(sorted(ledger.statuses.items())))
    print("readyz while frozen (seconds, status):", readyz_while_frozen)
    # /readyz never hangs: it answers within its bound, 503, while a dependency is frozen.
    assert [s for _, s in readyz_while_frozen] == [503, 503]
    assert all(t < 5 for t, _ in readyz_while_frozen), readyz_while_frozen
    assert ledger.bad == [], (ledger.bad[:20], stack.dump_logs())
    assert any(s == 503 for (_, s) in ledger.statuses), "no fault was observed"
    assert ledger.statuses[("pg frozen", 503)] > 0, "a frozen database must answer 503s"

    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers, timeout=30) as c:
        # Batches answered 503 are retried (idempotent by event id).
        for batch in ledger.replay:
            r = await c.post("/events/", json=batch)
            assert r.status_code == 200, r.text
            ledger.accepted += r.json()["accepted"]
            ledger.in_doubt += r.json()["duplicates"]
        await _check_invariants(stack, c, ledger, group)


async def _check_invariants(stack: Stack, c: httpx.AsyncClient, ledger: Ledger, group: str) -> None:
    listed = await _all(c, "/profiles/")
    listed_ids = {p["id"] for p in listed}
    assert set(ledger.profiles.values()) <= listed_ids  # no confirmed profile lost
    r = await c.get(f"/profile-groups/{group}/")
    profile_count = r.json()["profile_count"]
    members = await _all(c, f"/profile-groups/{group}/members/")
    conn = await asyncpg.connect(stack.pg.url.replace("+asyncpg", ""), timeout=10)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM group_memberships WHERE group_id = $1::uuid", group
        )
        stored = await conn.fetchval("SELECT count(*) FROM events")
        half_applied = await conn.fetchval(
            "SELECT count(*) FROM profile_groups g WHERE g.profile_count <> "
            "(SELECT count(*) FROM group_memberships m WHERE m.group_id = g.id)"
        )
    finally:
        await conn.close()
    assert profile_count == rows == len(members), (profile_count, rows, len(members))
    assert half_applied == 0
    assert ledger.members <= {m["id"] for m in members}  # no confirmed member lost
    # Every event sent is stored exactly once, and each was accepted by exactly one request.
    assert stored == len(ledger.sent_events) == ledger.accepted + ledger.in_doubt, (
        stored,
        len(ledger.sent_events),
        ledger.accepted,
        ledger.in_doubt,
    )


async def _all(c: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url: str | None = f"{path}?page_size=1000"
    for _ in range(100):
        if url is None:
            break
        r = await c.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["count"] >= len(page["results"])
        out += page["results"]
        url = page["next"]
    return out


async def _wait(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {seconds} s")


async def test_a_killed_worker_is_replaced_and_its_queue_still_runs(stack: Stack) -> None:
    tree = {
        "operator": "OR",
        "children": [
            {"attribute": "total_comments_posted", "condition": "greater_than_or_equal", "value": 1}
        ],
    }
    async with httpx.AsyncClient(base_url=stack.base, headers=stack.headers, timeout=30) as c:
        p = (await c.post("/profiles/", json={"custom_id": "dyn-1"})).json()["id"]
        r = await c.post("/events/", json={"events": [{"type": "comment_posted", "profile_id": p}]})
        assert r.status_code == 200, r.text
        stack.worker.kill()  # SIGKILL: no shutdown hook, no goodbye
        r = await c.post(
            "/profile-groups/",
            json={"name": "dynamic", "membership_type": "dynamic", "rule_tree": tree},
        )
        assert r.status_code == 201, r.text
        group = r.json()["id"]
        await asyncio.to_thread(stack.worker.start)

        async def evaluated() -> bool:
            r = await c.get(f"/profile-groups/{group}/evaluations/")
            return any(e["status"] == "succeeded" for e in r.json()["results"])

        await _wait(evaluated, 60, "the queued evaluation ran on the new worker")
        members = await _all(c, f"/profile-groups/{group}/members/")
        assert p in {m["id"] for m in members}
        r = await c.get(f"/profile-groups/{group}/")
        assert r.json()["profile_count"] == len(members)
    await asyncio.to_thread(wait_until, lambda: _ready(stack), 30, "readiness with the new worker")
