"""The `after` guarantee under concurrency (docs/changes.md): while member adds and removes,
full evaluations, incremental rounds and profile deletions write one group's membership at
once, a consumer that polls `…/changes/?after=<last id it saw>` sees every change exactly once,
in strictly increasing ids, and replaying what it saw rebuilds the final membership."""

import asyncio
import itertools
import random
from typing import Any

from sqlalchemy import text

from profile_groups.db import AsyncSessionMaker
from profile_groups.groups import incremental
from tests.activity.helpers import new_profile
from tests.conftest import Api
from tests.groups.helpers import create_dynamic, evaluate

ROUNDS = 25
PROFILES = 40


async def consume(api: Api, group_id: str, stop: asyncio.Event) -> list[dict[str, Any]]:
    """Poll with `after` until `stop` is set and a last poll finds nothing new."""
    seen: list[dict[str, Any]] = []
    last: str | None = None
    while True:
        stopping = stop.is_set()
        params: dict[str, Any] = {"page_size": 7}
        if last is not None:
            params["after"] = last
        r = await api.get(f"/profile-groups/{group_id}/changes/", params=params)
        assert r.status_code == 200, r.text
        page = r.json()["results"]
        seen.extend(page)
        if page:
            last = page[-1]["id"]
        elif stopping:
            return seen
        await asyncio.sleep(0)


async def logged_ids(sessionmaker: AsyncSessionMaker, group_id: str) -> list[int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT id FROM membership_changes WHERE group_id = :g ORDER BY id"),
            {"g": group_id},
        )
        return [int(r) for r in rows.scalars()]


async def members_now(sessionmaker: AsyncSessionMaker, group_id: str) -> set[str]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT profile_id::text FROM group_memberships WHERE group_id = :g"),
            {"g": group_id},
        )
        return set(rows.scalars())


def replay(seen: list[dict[str, Any]]) -> set[str]:
    """Apply the consumed log in order; every change must be possible in the state it meets."""
    members: set[str] = set()
    for change in seen:
        pid = change["profile_id"]
        if change["change"] == "entered":
            assert pid not in members, change
            members.add(pid)
        else:
            assert pid in members, change
            members.remove(pid)
    return members


def check_feed(seen: list[dict[str, Any]], logged: list[int]) -> None:
    ids = [int(c["id"]) for c in seen]
    assert all(a < b for a, b in itertools.pairwise(ids)), "ids strictly increase"
    assert ids == logged, "every committed change, exactly once"


async def test_a_polling_consumer_sees_every_change_once_under_concurrent_writers(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    rng = random.Random(12)
    r = await api.post("/custom-attributes/", json={"key": "score", "data_type": "number"})
    assert r.status_code == 201
    profiles = [
        (await new_profile(api, custom_attributes={"score": rng.random()}))["id"]
        for _ in range(PROFILES)
    ]
    alive = list(profiles)
    r = await api.post("/profile-groups/", json={"name": "Static"})
    static = r.json()["id"]
    tree = {"attribute": "score", "condition": "greater_than", "value": 0.5}
    dynamic = (await create_dynamic(api, app, sessionmaker, tree))["id"]
    await incremental.apply_changes(sessionmaker, timeout_ms=60_000)  # the creations: no group yet
    stop = asyncio.Event()
    consumers = [
        asyncio.create_task(consume(api, static, stop)),
        asyncio.create_task(consume(api, dynamic, stop)),
    ]
    members_path = f"/profile-groups/{static}/members/"

    async def adds() -> None:
        for _ in range(ROUNDS):
            ids = rng.sample(profiles, 6)  # deleted ones come back as invalid_ids
            r = await api.post(members_path, json={"profile_ids": ids})
            assert r.status_code == 200, r.text

    async def removes() -> None:
        for _ in range(ROUNDS):
            r = await api.request(
                "DELETE", members_path, json={"profile_ids": rng.sample(profiles, 5)}
            )
            assert r.status_code == 204, r.text

    async def attribute_changes() -> None:
        for _ in range(ROUNDS):
            pid = rng.choice(alive)
            r = await api.patch(
                f"/profiles/{pid}/", json={"custom_attributes": {"score": rng.random()}}
            )
            assert r.status_code in (200, 404), r.text  # 404: deleted meanwhile

    async def incremental_rounds() -> None:
        for _ in range(ROUNDS):
            await incremental.apply_changes(sessionmaker, timeout_ms=60_000)
            await asyncio.sleep(0.01)

    async def full_evaluations() -> None:
        for _ in range(ROUNDS // 3):
            # A profile deleted between the pass and its apply fails that evaluation (its
            # membership untouched): either outcome leaves the log exact.
            await evaluate(sessionmaker, dynamic)

    async def deletions() -> None:
        for pid in rng.sample(alive, 8):
            await asyncio.sleep(0.05)
            alive.remove(pid)
            r = await api.delete(f"/profiles/{pid}/")
            assert r.status_code == 204, r.text

    writers = [adds, removes, attribute_changes, incremental_rounds, full_evaluations, deletions]
    await asyncio.gather(*(w() for w in writers))
    await incremental.apply_changes(sessionmaker, timeout_ms=60_000)
    stop.set()
    seen_static, seen_dynamic = await asyncio.gather(*consumers)

    for group, seen in ((static, seen_static), (dynamic, seen_dynamic)):
        check_feed(seen, await logged_ids(sessionmaker, group))
        assert replay(seen) == await members_now(sessionmaker, group)
    reasons = {c["reason"] for c in seen_static + seen_dynamic}
    assert {"manual", "evaluation", "activity", "profile_deleted"} <= reasons, reasons
