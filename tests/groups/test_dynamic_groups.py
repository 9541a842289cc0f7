"""Dynamic groups through the API: the group object, rule changes, evaluate,
evaluations, preview, and end to end with a real arq worker (burst mode) on real Redis."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from arq.worker import Worker
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from profile_groups.app import create_app
from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.kit.state import app_state
from profile_groups.models.segmentation import DynamicGroup
from profile_groups.queue import QUEUE_NAME
from profile_groups.worker import worker_settings
from tests.activity.helpers import ago, new_profile, send
from tests.conftest import Api
from tests.groups.helpers import create_dynamic, evaluate, member_ids, members

COMMENTERS = {
    "operator": "AND",
    "children": [
        {
            "operator": "OR",
            "children": [
                {"attribute": "total_comments_posted", "condition": "greater_than", "value": 2},
                {"attribute": "has_ever_reacted", "condition": "is", "value": True},
            ],
        }
    ],
}


async def run_worker(settings: Settings) -> None:
    """A real arq worker: runs what is queued (and its startup ticks) until no job is due or
    running, then stops. (arq's burst mode would never stop: the per-second cron job is always
    queued for the next second.)"""
    worker = Worker(**worker_settings(settings, handle_signals=False, poll_delay=0.05))
    running = asyncio.create_task(worker.main())
    try:
        async with asyncio.timeout(60):
            await asyncio.sleep(0.5)  # the startup ticks are queued
            while True:
                due = await worker.pool.zcount(QUEUE_NAME, "-inf", time.time() * 1000)
                if not due and not worker.tasks:
                    break
                await asyncio.sleep(0.05)
    finally:
        running.cancel()
        await worker.close()


@pytest.fixture
async def redis(app: Any) -> AsyncIterator[Any]:
    """The test's Redis database, emptied so jobs of other tests do not leak in."""
    await app_state(app).arq.flushdb()
    yield app_state(app).arq
    await app_state(app).arq.flushdb()


# The group object ---------------------------------------------------------------------------


async def test_create_dynamic_group(api: Api) -> None:
    r = await api.post(
        "/profile-groups/",
        json={"name": "Commenters", "membership_type": "dynamic", "rule_tree": COMMENTERS},
    )
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["membership_type"] == "dynamic"
    assert group["profile_count"] == 0
    assert group["ruleset"]["rule_tree"] == COMMENTERS  # as given
    UUID(group["ruleset"]["id"])
    assert group["ruleset"]["created_at"].endswith("Z")
    assert group["evaluation"]["status"] == "pending"
    assert group["evaluation"]["last_evaluated_at"] is None
    assert group["evaluation"]["next_evaluation_at"].endswith("Z")
    assert group["evaluation"]["error"] is None
    # The evaluation was queued by the creation.
    r = await api.get(f"/profile-groups/{group['id']}/evaluations/")
    [queued] = r.json()["results"]
    assert queued["trigger"] == "rule_change" and queued["status"] == "queued"
    assert queued["ruleset_id"] == group["ruleset"]["id"]

    listed = (await api.get("/profile-groups/", params={"membership_type": "dynamic"})).json()
    assert [g["id"] for g in listed["results"]] == [group["id"]]
    assert listed["results"][0]["ruleset"] == group["ruleset"]
    static = (await api.get("/profile-groups/", params={"membership_type": "static"})).json()
    assert static["count"] == 0


async def test_invalid_trees_are_400_with_the_path(api: Api) -> None:
    bad = {"operator": "AND", "children": [{"attribute": "nickname", "condtion": "equals",
                                            "value": "x"}]}  # fmt: skip
    r = await api.post(
        "/profile-groups/", json={"name": "G", "membership_type": "dynamic", "rule_tree": bad}
    )
    assert r.status_code == 400
    [err] = r.json()["errors"]
    assert err["loc"] == ["body", "rule_tree", "children", 0, "condtion"]
    assert (await api.get("/profile-groups/")).json()["count"] == 0  # nothing written

    r = await api.post("/profile-groups/", json={"name": "G", "membership_type": "dynamic"})
    assert r.status_code == 400
    r = await api.post("/profile-groups/", json={"name": "G", "rule_tree": COMMENTERS})
    assert r.status_code == 400


async def test_patch_rule_tree_makes_a_new_ruleset(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    group = await create_dynamic(api, app, sessionmaker, COMMENTERS)
    await evaluate(sessionmaker, group["id"])
    new_tree = {"operator": "OR", "children": [
        {"attribute": "nickname", "condition": "starts_with", "value": "a"}]}  # fmt: skip
    r = await api.patch(f"/profile-groups/{group['id']}/", json={"rule_tree": new_tree})
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["ruleset"]["rule_tree"] == new_tree
    assert patched["ruleset"]["id"] != group["ruleset"]["id"]
    assert patched["evaluation"]["status"] == "pending"
    history = (await api.get(f"/profile-groups/{group['id']}/evaluations/")).json()["results"]
    assert [h["status"] for h in history] == ["queued", "succeeded"]
    assert history[0]["trigger"] == "rule_change"

    # Other fields change without touching the rules; a bad tree changes nothing.
    r = await api.patch(f"/profile-groups/{group['id']}/", json={"name": "Renamed"})
    assert r.json()["ruleset"]["id"] == patched["ruleset"]["id"]
    r = await api.patch(
        f"/profile-groups/{group['id']}/",
        json={"name": "X", "rule_tree": {"operator": "OR", "children": []}},
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["body", "rule_tree", "children"]
    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["name"] == "Renamed" and got["ruleset"]["id"] == patched["ruleset"]["id"]


async def test_members_are_owned_by_the_rules(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    profile = await new_profile(api)
    group = await create_dynamic(api, app, sessionmaker, COMMENTERS)
    for method in ("POST", "DELETE"):
        r = await api.request(
            method, f"/profile-groups/{group['id']}/members/", json={"profile_ids": [profile["id"]]}
        )
        assert r.status_code == 409, r.text


# Evaluate and evaluations -------------------------------------------------------------------


async def test_evaluate_endpoint(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, other_tenant: Any
) -> None:
    group = await create_dynamic(api, app, sessionmaker, COMMENTERS)
    await evaluate(sessionmaker, group["id"])  # run the creation's evaluation
    r = await api.post(f"/profile-groups/{group['id']}/evaluate/")
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {
        "id", "ruleset_id", "trigger", "status", "as_of", "started_at", "finished_at",
        "duration_ms", "matched_count", "added_count", "removed_count", "error",
    }  # fmt: skip
    assert body["status"] == "queued" and body["trigger"] == "manual"
    assert body["as_of"] is None and body["matched_count"] is None
    again = await api.post(f"/profile-groups/{group['id']}/evaluate")  # no trailing slash
    assert again.status_code == 202 and again.json()["id"] == body["id"]  # coalesced

    static = (await api.post("/profile-groups/", json={"name": "S"})).json()
    r = await api.post(f"/profile-groups/{static['id']}/evaluate/")
    assert r.status_code == 409
    assert (await api.get(f"/profile-groups/{static['id']}/evaluations/")).json()["count"] == 0
    for missing in ("00000000-0000-0000-0000-000000000000", "nope"):
        assert (await api.post(f"/profile-groups/{missing}/evaluate/")).status_code == 404
        assert (await api.get(f"/profile-groups/{missing}/evaluations/")).status_code == 404
    other = Api(api.client, other_tenant)
    assert (await other.post(f"/profile-groups/{group['id']}/evaluate/")).status_code == 404
    r = await api.client.post(f"{other_tenant.base}/profile-groups/{group['id']}/evaluate/")
    assert r.status_code == 401


async def test_evaluations_are_paginated_newest_first(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    group = await create_dynamic(api, app, sessionmaker, COMMENTERS)
    for _ in range(4):
        await evaluate(sessionmaker, group["id"])
    r = await api.get(f"/profile-groups/{group['id']}/evaluations/", params={"page_size": 3})
    page = r.json()
    assert page["count"] == 4 and len(page["results"]) == 3 and page["previous"] is None
    rest = (await api.client.get(page["next"], headers=api.tenant.headers)).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    times = [e["as_of"] for e in page["results"] + rest["results"]]
    assert times == sorted(times, reverse=True)
    r = await api.get(f"/profile-groups/{group['id']}/evaluations/", params={"cursor": "x"})
    assert r.status_code == 400


# Preview ------------------------------------------------------------------------------------


async def test_preview_counts_and_samples(api: Api, other_tenant: Any) -> None:
    ids = []
    for i in range(5):
        p = await new_profile(api, nickname=f"a{i}", created_at=ago(10 - i))
        ids.append(p["id"])
        await send(api, *({"type": "comment_posted", "profile_id": p["id"]} for _ in range(i)))
    other = Api(api.client, other_tenant)
    q = await new_profile(other)
    await send(other, *({"type": "comment_posted", "profile_id": q["id"]} for _ in range(5)))

    r = await api.post("/profile-groups/preview/", json={"rule_tree": COMMENTERS, "sample_size": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 2  # a3 and a4 (more than 2 comments); not the other tenant's
    assert body["sample"] == [{"id": ids[4], "nickname": "a4", "custom_id": None}]  # newest
    assert body["as_of"].endswith("Z")
    r = await api.post("/profile-groups/preview/", json={"rule_tree": COMMENTERS})
    assert [s["id"] for s in r.json()["sample"]] == [ids[4], ids[3]]
    r = await api.post("/profile-groups/preview/", json={"rule_tree": COMMENTERS, "sample_size": 0})
    assert r.json()["count"] == 2 and r.json()["sample"] == []
    none = {"operator": "OR", "children": [
        {"attribute": "nickname", "condition": "equals", "value": "zzz"}]}  # fmt: skip
    r = await api.post("/profile-groups/preview/", json={"rule_tree": none})
    assert r.json()["count"] == 0 and r.json()["sample"] == []
    for size in (-1, 101, "x"):
        r = await api.post(
            "/profile-groups/preview/", json={"rule_tree": COMMENTERS, "sample_size": size}
        )
        assert r.status_code == 400
        assert r.json()["errors"][0]["loc"] == ["body", "sample_size"]
    r = await api.post("/profile-groups/preview/", json={"rule_tree": COMMENTERS, "extra": 1})
    assert r.status_code == 400
    assert (await api.get("/profile-groups/")).json()["count"] == 0  # nothing created


async def test_preview_is_bounded_by_a_statement_timeout(
    api: Api, app: Any, engine: AsyncEngine
) -> None:
    await new_profile(api)
    settings = app_state(app).settings
    saved = settings.PREVIEW_TIMEOUT_MS
    settings.PREVIEW_TIMEOUT_MS = 200
    try:
        async with engine.connect() as conn, conn.begin():
            # Nothing can read the aggregates while this is held: the preview times out.
            await conn.execute(text("LOCK TABLE profile_activity IN ACCESS EXCLUSIVE MODE"))
            r = await api.post("/profile-groups/preview/", json={"rule_tree": COMMENTERS})
            await conn.rollback()
    finally:
        settings.PREVIEW_TIMEOUT_MS = saved
    assert r.status_code == 503, r.text
    assert r.json()["error_code"] == "unavailable"
    assert "200 ms" in r.json()["detail"]
    r = await api.post("/profile-groups/preview/", json={"rule_tree": COMMENTERS})
    assert r.status_code == 200


# End to end with a real worker --------------------------------------------------------------


async def test_end_to_end_with_a_real_worker(
    api: Api, redis: Any, settings: Settings, sessionmaker: AsyncSessionMaker
) -> None:
    chatty = await new_profile(api, nickname="chatty")
    quiet = await new_profile(api, nickname="quiet")
    await send(api, *({"type": "comment_posted", "profile_id": chatty["id"]} for _ in range(3)))

    # Creating the group enqueues its evaluation after the commit; the worker runs it.
    r = await api.post(
        "/profile-groups/",
        json={"name": "Commenters", "membership_type": "dynamic", "rule_tree": COMMENTERS},
    )
    assert r.status_code == 201, r.text
    group = r.json()
    assert await redis.zcard("profile_groups") >= 1
    await run_worker(settings)
    assert await member_ids(api, group["id"]) == {chatty["id"]}
    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["profile_count"] == 1
    assert got["evaluation"]["status"] == "succeeded"
    first_entry = (await members(api, group["id"]))[chatty["id"]]

    # Activity changes: the worker applies it at once (incremental) or the schedule, which comes
    # round at the same time, does: whichever runs second finds nothing left to add.
    await send(api, {"type": "reaction_added", "profile_id": quiet["id"]})
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(DynamicGroup)
            .where(DynamicGroup.group_id == UUID(group["id"]))
            .values(next_evaluation_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await run_worker(settings)
    now_members = await members(api, group["id"])
    assert set(now_members) == {chatty["id"], quiet["id"]}
    assert now_members[chatty["id"]] == first_entry

    # On demand.
    await send(api, *({"type": "comment_posted", "profile_id": quiet["id"]} for _ in range(3)))
    r = await api.post(f"/profile-groups/{group['id']}/evaluate/")
    assert r.status_code == 202
    await run_worker(settings)

    # A profile's groups and the evaluation history.
    r = await api.get(f"/profiles/{quiet['id']}/profile-groups/")
    [membership] = r.json()["results"]
    assert membership["group_id"] == group["id"]
    assert membership["membership_type"] == "dynamic"
    assert membership["profile_count"] == 2
    assert membership["membership_created_at"] == now_members[quiet["id"]]
    history = (await api.get(f"/profile-groups/{group['id']}/evaluations/")).json()["results"]
    assert [(h["trigger"], h["status"]) for h in history] == [
        ("manual", "succeeded"),
        ("schedule", "succeeded"),
        ("rule_change", "succeeded"),
    ]
    manual, schedule, rule_change = (h["added_count"] for h in history)
    assert (manual, rule_change) == (0, 1) and schedule in (0, 1)
    assert [h["matched_count"] for h in history] == [2, 2, 1]
    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["evaluation"]["last_evaluated_at"] == history[0]["as_of"]
    assert got["evaluation"]["next_evaluation_at"] > history[0]["as_of"]


async def test_worker_skips_inactive_groups(
    api: Api, redis: Any, settings: Settings, sessionmaker: AsyncSessionMaker
) -> None:
    chatty = await new_profile(api)
    await send(api, *({"type": "comment_posted", "profile_id": chatty["id"]} for _ in range(3)))
    r = await api.post(
        "/profile-groups/",
        json={"name": "G", "membership_type": "dynamic", "rule_tree": COMMENTERS,
              "is_active": False},
    )  # fmt: skip
    assert r.status_code == 201
    gid = r.json()["id"]
    await run_worker(settings)
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT count(*) FROM group_memberships WHERE group_id = :g"), {"g": gid}
        )
        assert rows.scalar_one() == 0


async def test_the_schedule_follows_the_settings_the_app_was_built_with(
    settings: Settings, tenant: Any
) -> None:
    """The app reads EVALUATION_INTERVAL_SECONDS from the Settings it is given, not from the
    environment (the session's settings say 300)."""
    app = create_app(settings.model_copy(update={"EVALUATION_INTERVAL_SECONDS": 60}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            before = datetime.now(UTC)
            r = await client.post(
                f"{tenant.base}/profile-groups/",
                headers=tenant.headers,
                json={
                    "name": "Every minute",
                    "membership_type": "dynamic",
                    "rule_tree": COMMENTERS,
                },
            )
    assert r.status_code == 201, r.text
    group_id = r.json()["id"]
    async with app_state(app).sessionmaker() as session:
        next_at = await session.scalar(
            select(DynamicGroup.next_evaluation_at).where(DynamicGroup.group_id == UUID(group_id))
        )
    assert next_at is not None
    assert timedelta(seconds=59) <= next_at - before <= timedelta(seconds=65)
