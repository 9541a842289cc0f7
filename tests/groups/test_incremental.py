"""Incremental membership: every write that changes a profile's attributes queues it, and the
worker's round applies it to every active dynamic group of the application — no change lost,
none applied twice, never undoing a full evaluation that runs meanwhile."""

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from profile_groups.db import AsyncSessionMaker
from profile_groups.groups import incremental
from tests.activity.helpers import new_profile, send
from tests.conftest import Api
from tests.groups.helpers import create_dynamic, evaluate, member_ids, membership_count

COMMENTERS = {
    "attribute": "total_comments_posted",
    "condition": "greater_than_or_equal",
    "value": 2,
}
SILENT = {"attribute": "total_comments_posted", "condition": "equals", "value": 0}
SCORED = {"attribute": "toxicity_score", "condition": "greater_than", "value": 0.5}


async def queued(sessionmaker: AsyncSessionMaker) -> int:
    async with sessionmaker() as session:
        n = (await session.execute(text("SELECT count(*) FROM profile_changes"))).scalar_one()
        return int(n)


async def apply(sessionmaker: AsyncSessionMaker) -> incremental.Applied:
    return await incremental.apply_changes(sessionmaker, timeout_ms=60_000)


async def evaluated_group(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, tree: dict[str, Any]
) -> str:
    group = await create_dynamic(api, app, sessionmaker, tree)
    result = await evaluate(sessionmaker, group["id"])
    assert result is not None and result.status == "succeeded"
    await apply(sessionmaker)  # the profiles created before the group: nothing new
    return str(group["id"])


async def test_every_kind_of_write_queues_the_profile(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    assert await api.post("/custom-attributes/", json={"key": "score", "data_type": "number"})
    p = await new_profile(api)  # create
    assert await queued(sessionmaker) == 1
    await send(api, {"type": "comment_posted", "profile_id": p["id"]})  # activity
    assert await queued(sessionmaker) == 2
    r = await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"score": 1}})
    assert r.status_code == 200  # a custom attribute value
    r = await api.put(f"/profiles/{p['id']}/", json={"nickname": "x"})
    assert r.status_code == 200  # replace
    r = await api.post("/profiles/bulk/", json={"profiles": [{"id": p["id"], "nickname": "y"}]})
    assert r.status_code == 200 and r.json()["updated"] == 1  # bulk
    assert await queued(sessionmaker) == 5
    done = await apply(sessionmaker)
    assert (done.changes, done.profiles) == (5, 1)  # one profile, evaluated once
    assert await queued(sessionmaker) == 0


async def test_activity_moves_a_profile_in_and_out_without_a_full_evaluation(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    p = await new_profile(api)
    commenters = await evaluated_group(api, app, sessionmaker, COMMENTERS)
    silent = await evaluated_group(api, app, sessionmaker, SILENT)
    assert await member_ids(api, silent) == {p["id"]}
    await send(api, *[{"type": "comment_posted", "profile_id": p["id"]}] * 2)
    done = await apply(sessionmaker)
    assert (done.entered, done.exited) == (1, 1)  # into one group, out of the other
    assert await member_ids(api, commenters) == {p["id"]}
    assert await member_ids(api, silent) == set()
    assert await membership_count(sessionmaker, commenters) == (1, 1)
    assert await membership_count(sessionmaker, silent) == (0, 0)
    # Not an evaluation: the history has only the first one.
    r = await api.get(f"/profile-groups/{commenters}/evaluations/")
    assert r.json()["count"] == 1
    # Applying again changes nothing.
    await send(api, {"type": "reaction_added", "profile_id": p["id"]})
    assert (await apply(sessionmaker)).entered == 0
    assert await membership_count(sessionmaker, commenters) == (1, 1)


async def test_new_profiles_and_attribute_values_are_applied(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    r = await api.post("/custom-attributes/", json={"key": "toxicity_score", "data_type": "number"})
    assert r.status_code == 201
    group = await evaluated_group(api, app, sessionmaker, SCORED)
    p = await new_profile(api, custom_attributes={"toxicity_score": 0.9})
    q = await new_profile(api, custom_attributes={"toxicity_score": 0.1})
    await apply(sessionmaker)
    assert await member_ids(api, group) == {p["id"]}
    await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"toxicity_score": None}})
    await api.patch(f"/profiles/{q['id']}/", json={"custom_attributes": {"toxicity_score": 0.7}})
    await apply(sessionmaker)
    assert await member_ids(api, group) == {q["id"]}
    assert await membership_count(sessionmaker, group) == (1, 1)


async def test_a_round_that_fails_loses_no_change(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    p = await new_profile(api)
    group = await evaluated_group(api, app, sessionmaker, COMMENTERS)
    await send(api, *[{"type": "comment_posted", "profile_id": p["id"]}] * 2)
    # A round that dies after taking the changes (worker killed: its transaction rolls back).
    async with sessionmaker() as session:
        await session.begin()
        rows = await session.execute(text("DELETE FROM profile_changes RETURNING profile_id"))
        assert len(rows.all()) == 1
        await session.rollback()
    assert await queued(sessionmaker) == 1
    await apply(sessionmaker)
    assert await member_ids(api, group) == {p["id"]}


async def test_a_group_under_full_evaluation_is_left_for_the_next_round(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    p = await new_profile(api)
    busy = await evaluated_group(api, app, sessionmaker, COMMENTERS)
    free = await evaluated_group(api, app, sessionmaker, {**COMMENTERS, "value": 1})
    await send(api, *[{"type": "comment_posted", "profile_id": p["id"]}] * 2)
    key = "hashtextextended('profile_group_evaluation:' || CAST(:g AS text), 0)"
    async with engine.connect() as conn:
        # What a running full evaluation of `busy` holds.
        assert await conn.execute(text(f"SELECT pg_try_advisory_lock({key})"), {"g": busy})
        done = await apply(sessionmaker)
        assert done.deferred == 1
        assert await member_ids(api, free) == {p["id"]}  # the other group is up to date
        assert await member_ids(api, busy) == set()
        assert await queued(sessionmaker) == 1  # kept for later
        await conn.execute(text(f"SELECT pg_advisory_unlock({key})"), {"g": busy})
        await conn.commit()
    done = await apply(sessionmaker)
    assert done.deferred == 0 and await queued(sessionmaker) == 0
    assert await member_ids(api, busy) == {p["id"]}
    assert await membership_count(sessionmaker, free) == (1, 1)


async def test_inactive_and_static_groups_are_left_alone(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    p = await new_profile(api)
    group = await evaluated_group(api, app, sessionmaker, COMMENTERS)
    r = await api.patch(f"/profile-groups/{group}/", json={"is_active": False})
    assert r.status_code == 200
    static = (await api.post("/profile-groups/", json={"name": "static"})).json()["id"]
    await send(api, *[{"type": "comment_posted", "profile_id": p["id"]}] * 2)
    assert (await apply(sessionmaker)).entered == 0
    assert await membership_count(sessionmaker, group) == (0, 0)
    assert await membership_count(sessionmaker, static) == (0, 0)


async def test_rounds_do_not_overlap(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    p = await new_profile(api)
    group = await evaluated_group(api, app, sessionmaker, COMMENTERS)
    await send(api, *[{"type": "comment_posted", "profile_id": p["id"]}] * 2)
    key = "hashtextextended('profile_changes', 0)"
    async with engine.connect() as conn:  # a round in progress elsewhere
        assert (await conn.execute(text(f"SELECT pg_try_advisory_lock({key})"))).scalar_one()
        assert (await apply(sessionmaker)).changes == 0
        assert await queued(sessionmaker) == 1
        await conn.execute(text(f"SELECT pg_advisory_unlock({key})"))
        await conn.commit()
    assert (await apply(sessionmaker)).changes == 1
    assert await member_ids(api, group) == {p["id"]}
