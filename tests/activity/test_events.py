"""POST /events/ (docs/activity.md): rejections, idempotency, limits, retention, cascades."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from profile_groups.activity import tasks
from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.kit.state import WorkerState
from tests.activity.helpers import ago, new_profile, send, values
from tests.conftest import Api, Tenant


def in_future(**kw: float) -> str:
    return (datetime.now(UTC) + timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def event_count(sessionmaker: AsyncSessionMaker) -> int:
    async with sessionmaker() as session:
        return int((await session.execute(text("SELECT count(*) FROM events"))).scalar_one())


async def test_accepts_a_batch(api: Api) -> None:
    p = await new_profile(api, custom_id="u1")
    result = await send(
        api,
        {"type": "comment_posted", "profile_id": p["id"]},
        {"type": "comment_posted", "custom_id": "u1", "id": "x"},
    )
    assert result == {"accepted": 2, "duplicates": 0, "rejected": []}


async def test_empty_batch(api: Api) -> None:
    assert await send(api) == {"accepted": 0, "duplicates": 0, "rejected": []}


async def test_every_rejection_reason_and_good_items_kept(api: Api) -> None:
    p = await new_profile(api, custom_id="u1")
    pid = p["id"]
    bad: list[tuple[Any, str]] = [
        ("not an object", "JSON object"),
        ({"profile_id": pid}, "'type' is required"),
        ({"type": "comment_deleted", "profile_id": pid}, "Unknown event type"),
        ({"type": 5, "profile_id": pid}, "Unknown event type"),
        ({"type": ["comment_posted"], "profile_id": pid}, "Unknown event type"),
        ({"type": "comment_posted", "profile_id": 12}, "'profile_id' must be a UUID"),
        ({"type": "comment_posted"}, "Exactly one of 'profile_id' or 'custom_id'"),
        ({"type": "comment_posted", "profile_id": pid, "custom_id": "u1"}, "Exactly one"),
        ({"type": "comment_posted", "profile_id": "nope"}, "'profile_id' must be a UUID"),
        ({"type": "comment_posted", "profile_id": "0b8f7c2e-52a7-4a57-9d3e-1f2a3b4c5d6e"},
         "Unknown profile"),
        ({"type": "comment_posted", "custom_id": "nobody"}, "Unknown profile"),
        ({"type": "comment_posted", "profile_id": pid, "occurred_at": in_future(minutes=6)},
         "more than 5 minutes in the future"),
        ({"type": "comment_posted", "profile_id": pid, "occurred_at": "yesterday"}, "ISO 8601"),
        ({"type": "comment_posted", "profile_id": pid, "id": ""}, "'id' must be a non-empty"),
        ({"type": "comment_posted", "profile_id": pid, "id": "x" * 256}, "at most 255"),
        ({"type": "comment_posted", "profile_id": pid, "colour": "red"}, "Unknown field 'colour'"),
        ({"type": "comment_posted", "profile_id": pid, "properties": [1]}, "must be an object"),
        ({"type": "streak_activity", "profile_id": pid}, "'value' is required"),
        ({"type": "streak_activity", "profile_id": pid, "value": -1}, "integer >= 0"),
        ({"type": "streak_activity", "profile_id": pid, "value": 1.5}, "integer >= 0"),
        ({"type": "streak_activity", "profile_id": pid, "value": True}, "integer >= 0"),
        ({"type": "streak_activity", "profile_id": pid, "value": 1,
          "properties": {"streak_type": "weekly"}}, "streak_type"),
        ({"type": "tier_changed", "profile_id": pid, "properties": {"rank": 1,
          "direction": "upgrade"}}, "'value' is required"),
        ({"type": "tier_changed", "profile_id": pid, "value": "Gold",
          "properties": {"direction": "upgrade"}}, "'properties.rank' is required"),
        ({"type": "tier_changed", "profile_id": pid, "value": "Gold",
          "properties": {"rank": "1", "direction": "upgrade"}}, "must be an integer"),
        ({"type": "tier_changed", "profile_id": pid, "value": "Gold", "properties": {"rank": 1}},
         "'properties.direction' is required"),
        ({"type": "tier_changed", "profile_id": pid, "value": "Gold",
          "properties": {"rank": 1, "direction": "sideways"}}, "'upgrade' or 'downgrade'"),
        ({"type": "tier_changed", "profile_id": pid, "value": 3,
          "properties": {"rank": 1, "direction": "upgrade"}}, "must be a string"),
        ({"type": "reward_earned", "profile_id": pid}, "'value' is required"),
        ({"type": "reward_spent", "profile_id": pid, "value": -3}, "number >= 0"),
        ({"type": "reward_spent", "profile_id": pid, "value": "3"}, "number >= 0"),
        ({"type": "leaderboard_ranked", "profile_id": pid}, "'properties.leaderboard_id'"),
        ({"type": "leaderboard_ranked", "profile_id": pid, "properties": {"leaderboard_id": ""}},
         "leaderboard_id"),
    ]  # fmt: skip
    good = [
        {"type": "comment_posted", "profile_id": pid, "occurred_at": in_future(minutes=4)},
        {"type": "leaderboard_ranked", "custom_id": "u1", "properties": {"leaderboard_id": 7}},
    ]
    # Interleave: good items at the start and the end.
    items = [good[0], *[b for b, _ in bad], good[1]]
    response = await api.post("/events/", json={"events": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == list(range(1, len(bad) + 1))
    for rejection, (_, reason) in zip(body["rejected"], bad, strict=True):
        assert reason in rejection["detail"], (rejection, reason)
    got = (await values(api, pid))["values"]
    assert got["total_comments_posted"] == 1 and got["leaderboards_ranked_on"] == 1


async def test_values_and_properties_where_not_needed_are_tolerated(api: Api) -> None:
    p = await new_profile(api)
    result = await send(
        api,
        {"type": "comment_posted", "profile_id": p["id"], "properties": {"post_id": "p-1"}},
        {"type": "reaction_added", "profile_id": p["id"], "value": 1},
    )
    assert result["accepted"] == 2


async def test_any_spelling_of_a_profile_uuid_is_the_same_profile(api: Api) -> None:
    p = await new_profile(api)
    pid = p["id"]
    spellings = [pid, pid.upper(), pid.replace("-", ""), "{" + pid + "}", f"urn:uuid:{pid}"]
    result = await send(api, *({"type": "comment_posted", "profile_id": s} for s in spellings))
    assert result == {"accepted": 5, "duplicates": 0, "rejected": []}
    assert (await values(api, pid))["values"]["total_comments_posted"] == 5


async def test_every_iso_spelling_of_an_instant_is_that_instant(api: Api) -> None:
    spellings = [
        "2025-01-02T03:04:05.250000Z",
        "2025-01-02T03:04:05.25+00:00",
        "2025-01-02T03:04:05.250-00:00",
        "2025-01-02T08:34:05.25+05:30",
        "2025-01-01T21:04:05.25-06:00",
        "2025-01-02 03:04:05.250000",  # naive: UTC
        "20250102T030405.25Z",  # basic format
        "2025-W01-4T03:04:05.25Z",  # week date
        "2025-01-02T03:04:05.25000Z",
        "2025-01-02T03:34:05.25+00:30:00",  # an offset with seconds
    ]
    for spelling in spellings:
        p = await new_profile(api)
        r = await send(
            api, {"type": "comment_posted", "profile_id": p["id"], "occurred_at": spelling}
        )
        assert r["accepted"] == 1, (spelling, r)
        got = (await values(api, p["id"]))["values"]["last_comment_at"]
        assert got == "2025-01-02T03:04:05.250000Z", (spelling, got)


async def test_naive_timestamp_is_utc(api: Api) -> None:
    p = await new_profile(api)
    await send(
        api, {"type": "comment_posted", "profile_id": p["id"], "occurred_at": "2025-01-02T03:04:05"}
    )
    got = (await values(api, p["id"]))["values"]
    assert got["last_comment_at"] == "2025-01-02T03:04:05.000000Z"
    await send(
        api,
        {
            "type": "reaction_added",
            "profile_id": p["id"],
            "occurred_at": "2025-01-02T05:04:05+02:00",
        },
    )
    got = (await values(api, p["id"]))["values"]
    assert got["last_reaction_at"] == "2025-01-02T03:04:05.000000Z"


async def test_over_limit_batch_is_400(api: Api) -> None:
    p = await new_profile(api)
    events = [{"type": "comment_posted", "profile_id": p["id"]}] * 1001
    response = await api.post("/events/", json={"events": events})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "invalid"
    assert body["errors"][0]["loc"] == ["body", "events"]
    assert "1000" in body["errors"][0]["msg"]
    assert (await values(api, p["id"]))["values"]["total_comments_posted"] == 0
    # Exactly 1000 is fine.
    assert (await send(api, *events[:1000]))["accepted"] == 1000


async def test_malformed_and_wrong_bodies(api: Api) -> None:
    r = await api.post(
        "/events/", content=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error_code"] == "invalid"
    assert r.json()["detail"] == "Malformed JSON in request body."
    r = await api.post("/events/", json={"evnts": []})
    assert r.status_code == 400 and r.json()["error_code"] == "invalid"
    r = await api.post("/events/", json={"events": {"type": "comment_posted"}})
    assert r.status_code == 400 and r.json()["errors"][0]["loc"] == ["body", "events"]
    r = await api.post("/events/", json=[])
    assert r.status_code == 400
    r = await api.post("/events/", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


async def test_requires_auth(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    r = await client.post(f"{tenant.base}/events/", json={"events": []})
    assert r.status_code == 401
    r = await client.post(
        f"{tenant.base}/events/", json={"events": []}, headers=other_tenant.headers
    )
    assert r.status_code == 403


async def test_profiles_of_another_tenant_are_unknown(
    api: Api, client: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    p = await new_profile(api, custom_id="shared")
    r = await client.post(
        f"{other_tenant.base}/events/",
        json={"events": [{"type": "comment_posted", "profile_id": p["id"]},
                         {"type": "comment_posted", "custom_id": "shared"}]},
        headers=other_tenant.headers,
    )  # fmt: skip
    assert r.status_code == 200
    assert [x["detail"] for x in r.json()["rejected"]] == ["Unknown profile.", "Unknown profile."]


async def test_idempotent_retry_of_a_whole_batch(api: Api) -> None:
    p = await new_profile(api)
    batch = [
        {"type": "reward_earned", "profile_id": p["id"], "value": 5, "id": f"e{i}"}
        for i in range(10)
    ]
    assert await send(api, *batch) == {"accepted": 10, "duplicates": 0, "rejected": []}
    assert await send(api, *batch) == {"accepted": 0, "duplicates": 10, "rejected": []}
    # A partly new batch: only the new ones count.
    more = [*batch[:5], {"type": "reward_earned", "profile_id": p["id"], "value": 1, "id": "new"}]
    assert await send(api, *more) == {"accepted": 1, "duplicates": 5, "rejected": []}
    assert (await values(api, p["id"]))["values"]["reward_balance"] == 51


async def test_duplicate_ids_inside_one_batch(api: Api) -> None:
    p = await new_profile(api)
    e = {"type": "comment_posted", "profile_id": p["id"], "id": "same"}
    assert await send(api, e, e, e) == {"accepted": 1, "duplicates": 2, "rejected": []}
    assert (await values(api, p["id"]))["values"]["total_comments_posted"] == 1


async def test_event_ids_are_per_application(
    api: Api, client: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    p = await new_profile(api)
    other = Api(client, other_tenant)
    q = await new_profile(other)
    assert (await send(api, {"type": "comment_posted", "profile_id": p["id"], "id": "a"}))[
        "accepted"
    ] == 1
    assert (await send(other, {"type": "comment_posted", "profile_id": q["id"], "id": "a"}))[
        "accepted"
    ] == 1


async def test_concurrent_batches_over_the_same_profiles(api: Api) -> None:
    profiles = [await new_profile(api) for _ in range(20)]

    def batch(k: int) -> list[dict[str, Any]]:
        # Each batch touches every profile, in a different order, with retried ids mixed in.
        order = profiles[k:] + profiles[:k]
        return [
            {"type": "comment_posted", "profile_id": p["id"], "id": f"{p['id']}-{(k + i) % 30}"}
            for i, p in enumerate(order)
        ] + [{"type": "reaction_added", "profile_id": p["id"]} for p in reversed(order)]

    results = await asyncio.gather(*(send(api, *batch(k)) for k in range(12)))
    assert all(not r["rejected"] for r in results)
    total_reactions = 0
    total_comments = 0
    for p in profiles:
        got = (await values(api, p["id"]))["values"]
        total_reactions += got["total_reactions"]
        total_comments += got["total_comments_posted"]
    assert total_reactions == 12 * 20
    assert total_comments == sum(r["accepted"] for r in results) - 12 * 20
    assert sum(r["duplicates"] for r in results) == 12 * 20 - total_comments


async def test_deleting_a_profile_removes_its_activity(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    p = await new_profile(api)
    keep = await new_profile(api)
    await send(
        api,
        {
            "type": "leaderboard_ranked",
            "profile_id": p["id"],
            "properties": {"leaderboard_id": "a"},
        },
        {"type": "comment_posted", "profile_id": p["id"], "id": "c1"},
        {"type": "comment_posted", "profile_id": keep["id"]},
    )
    assert (await api.delete(f"/profiles/{p['id']}/")).status_code == 204
    async with sessionmaker() as session:
        for table in ("events", "profile_activity", "profile_leaderboards"):
            n = (
                await session.execute(
                    text(f"SELECT count(*) FROM {table} WHERE profile_id = :p"), {"p": p["id"]}
                )
            ).scalar_one()
            assert n == 0, table
    assert await event_count(sessionmaker) == 1


async def test_retention_prunes_raw_events_but_not_all_time_attributes(
    api: Api, engine: AsyncEngine, sessionmaker: AsyncSessionMaker, settings: Settings
) -> None:
    p = await new_profile(api)
    old = [
        {"type": "comment_posted", "profile_id": p["id"], "occurred_at": ago(500)},
        {"type": "reward_earned", "profile_id": p["id"], "occurred_at": ago(450), "value": 7},
        {"type": "leaderboard_ranked", "profile_id": p["id"], "occurred_at": ago(420),
         "properties": {"leaderboard_id": "old-board"}},
        {"type": "tier_changed", "profile_id": p["id"], "occurred_at": ago(410), "value": "Gold",
         "properties": {"rank": 3, "direction": "upgrade"}},
        {"type": "streak_activity", "profile_id": p["id"], "occurred_at": ago(405), "value": 9},
    ]  # fmt: skip
    recent = [{"type": "comment_posted", "profile_id": p["id"], "occurred_at": ago(10)}]
    await send(api, *old, *recent)
    before = (await values(api, p["id"]))["values"]
    assert await event_count(sessionmaker) == 6

    ctx = {"state": WorkerState(settings, engine, sessionmaker)}
    assert settings.EVENT_RETENTION_DAYS == 400
    assert await tasks.prune_old_events(ctx) == 5
    assert await event_count(sessionmaker) == 1
    after = (await values(api, p["id"]))["values"]
    assert after == before
    assert after["total_comments_posted"] == 2 and after["reward_balance"] == 7
    assert after["leaderboards_ranked_on"] == 1 and after["status_tier"] == "Gold"
    # The same board again after pruning is still not a new board.
    await send(
        api,
        {"type": "leaderboard_ranked", "profile_id": p["id"],
         "properties": {"leaderboard_id": "old-board"}},
    )  # fmt: skip
    assert (await values(api, p["id"]))["values"]["leaderboards_ranked_on"] == 1
    assert await tasks.prune_old_events(ctx) == 0


async def test_prune_works_in_batches(
    api: Api,
    engine: AsyncEngine,
    sessionmaker: AsyncSessionMaker,
    settings: Settings,
    monkeypatch: Any,
) -> None:
    p = await new_profile(api)
    await send(
        api,
        *[{"type": "reaction_added", "profile_id": p["id"], "occurred_at": ago(401)}] * 25,
    )
    monkeypatch.setattr(tasks, "PRUNE_BATCH_SIZE", 10)
    ctx = {"state": WorkerState(settings, engine, sessionmaker)}
    assert await tasks.prune_old_events(ctx) == 25
    assert (await values(api, p["id"]))["values"]["total_reactions"] == 25


def test_prune_is_a_worker_cron_job() -> None:
    from profile_groups.worker import worker_settings

    kwargs = worker_settings(Settings(REDIS_URL="redis://127.0.0.1:6379/2"))
    assert tasks.prune_old_events in kwargs["functions"]
    assert any(job.coroutine is tasks.prune_old_events for job in kwargs["cron_jobs"])
