"""Evaluation of dynamic groups: the set-based diff, membership_created_at, counts,
concurrency (two evaluations at once; a group deleted or deactivated meanwhile), failures that leave
membership unchanged, and the schedule's tick."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.groups import evaluation as service
from profile_groups.kit.state import app_state
from profile_groups.models.segmentation import DynamicGroup, GroupEvaluation
from tests.activity.helpers import ago, new_profile, send
from tests.conftest import Api
from tests.groups.helpers import (
    create_dynamic,
    evaluate,
    lock_waits,
    member_ids,
    members,
    membership_count,
    queued_id,
    request,
)

SCORE_ABOVE = {
    "operator": "AND",
    "children": [{"attribute": "toxicity_score", "condition": "greater_than", "value": 0.5}],
}


async def _scored(api: Api, *scores: float | None) -> list[str]:
    r = await api.post("/custom-attributes/", json={"key": "toxicity_score", "data_type": "number"})
    assert r.status_code == 201, r.text
    ids = []
    for score in scores:
        attrs = {} if score is None else {"toxicity_score": score}
        ids.append((await new_profile(api, custom_attributes=attrs))["id"])
    return ids


async def _set_score(api: Api, profile_id: str, score: float | None) -> None:
    r = await api.patch(
        f"/profiles/{profile_id}/", json={"custom_attributes": {"toxicity_score": score}}
    )
    assert r.status_code == 200, r.text


async def _evaluations(api: Api, group_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/profile-groups/{group_id}/evaluations/")
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


@asynccontextmanager
async def _holding(engine: AsyncEngine, sql: str, **params: Any) -> AsyncIterator[AsyncConnection]:
    """Hold a lock in another transaction until the block ends (then roll back)."""
    async with engine.connect() as conn:
        trans = await conn.begin()
        await conn.execute(text(sql), params)
        try:
            yield conn
        finally:
            if trans.is_active:
                await trans.rollback()


async def _status(sessionmaker: AsyncSessionMaker, evaluation_id: UUID) -> str | None:
    async with sessionmaker() as session:
        stmt = select(GroupEvaluation.status).where(GroupEvaluation.id == evaluation_id)
        return (await session.execute(stmt)).scalar_one_or_none()


async def _wait_for(sessionmaker: AsyncSessionMaker, evaluation_id: UUID, status: str) -> None:
    for _ in range(200):
        if await _status(sessionmaker, evaluation_id) == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"evaluation never became {status}")


async def test_first_evaluation_adds_the_matching_profiles(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    high, low, unset = await _scored(api, 0.9, 0.1, None)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    assert group["evaluation"]["status"] == "pending"
    assert group["profile_count"] == 0

    result = await evaluate(sessionmaker, group["id"])
    assert result is not None and result.status == "succeeded"
    assert (result.matched_count, result.added_count, result.removed_count) == (1, 1, 0)
    assert await member_ids(api, group["id"]) == {high}
    assert await membership_count(sessionmaker, group["id"]) == (1, 1)

    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["profile_count"] == 1
    assert got["evaluation"]["status"] == "succeeded"
    assert got["evaluation"]["error"] is None
    assert got["evaluation"]["last_evaluated_at"] is not None
    [evaluation] = await _evaluations(api, group["id"])
    assert evaluation["status"] == "succeeded"
    assert evaluation["trigger"] == "rule_change"  # the evaluation queued by creating the group
    assert evaluation["ruleset_id"] == group["ruleset"]["id"]
    assert evaluation["matched_count"] == 1 and evaluation["added_count"] == 1
    assert evaluation["duration_ms"] >= 0
    assert evaluation["as_of"] <= evaluation["finished_at"]
    assert got["evaluation"]["last_evaluated_at"] == evaluation["as_of"]
    # The profile's groups include the dynamic one.
    r = await api.get(f"/profiles/{high}/profile-groups/")
    assert [g["group_id"] for g in r.json()["results"]] == [group["id"]]
    assert r.json()["results"][0]["membership_type"] == "dynamic"
    for other in (low, unset):
        r = await api.get(f"/profiles/{other}/profile-groups/")
        assert r.json()["count"] == 0


async def test_reevaluation_applies_the_difference_and_keeps_entry_times(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    a, b, c = await _scored(api, 0.9, 0.1, 0.7)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    await evaluate(sessionmaker, group["id"])
    first = await members(api, group["id"])
    assert set(first) == {a, c}

    await _set_score(api, a, 0.2)  # leaves
    await _set_score(api, b, 0.8)  # enters
    result = await evaluate(sessionmaker, group["id"])
    assert result is not None
    assert (result.matched_count, result.added_count, result.removed_count) == (2, 1, 1)
    second = await members(api, group["id"])
    assert set(second) == {b, c}
    assert second[c] == first[c]  # stayed: entry time kept
    assert second[b] > first[c]  # entered now
    assert await membership_count(sessionmaker, group["id"]) == (2, 2)

    # Nothing changed: nothing moves.
    result = await evaluate(sessionmaker, group["id"])
    assert result is not None
    assert (result.matched_count, result.added_count, result.removed_count) == (2, 0, 0)
    assert await members(api, group["id"]) == second

    # Leaving and coming back: the entry time is the latest entry.
    await _set_score(api, c, None)
    await evaluate(sessionmaker, group["id"])
    await _set_score(api, c, 0.6)
    await evaluate(sessionmaker, group["id"])
    third = await members(api, group["id"])
    assert third[c] > second[c]
    history = await _evaluations(api, group["id"])
    assert len(history) == 5
    assert [h["status"] for h in history] == ["succeeded"] * 5
    assert history[0]["as_of"] > history[-1]["as_of"]  # newest first


async def test_requests_are_coalesced_while_queued(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    await _scored(api, 0.9)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    queued = await queued_id(sessionmaker, group["id"])
    assert queued is not None
    # Every request while one is queued joins it, over HTTP too.
    assert await request(sessionmaker, group["id"]) == queued
    r = await api.post(f"/profile-groups/{group['id']}/evaluate/")
    assert r.status_code == 202, r.text
    assert r.json()["id"] == str(queued)
    assert r.json()["status"] == "queued"
    assert len(await _evaluations(api, group["id"])) == 1


async def test_two_evaluations_of_one_group_run_one_after_the_other(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    await _scored(api, 0.9, 0.8, 0.1)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    first_id = await request(sessionmaker, group["id"])
    # Hold the group row as an evaluation does, so both have to queue up behind the lock.
    async with _holding(
        engine, "SELECT 1 FROM profile_groups WHERE id = :g FOR NO KEY UPDATE", g=group["id"]
    ):
        first = asyncio.create_task(
            service.run_evaluation(sessionmaker, first_id, timeout_ms=60_000)
        )
        await _wait_for(sessionmaker, first_id, "running")
        # One is running: a new request queues exactly one follow-up.
        second_id = await request(sessionmaker, group["id"])
        assert second_id != first_id
        assert await request(sessionmaker, group["id"]) == second_id
        second = asyncio.create_task(
            service.run_evaluation(sessionmaker, second_id, timeout_ms=60_000)
        )
        await lock_waits(engine, 2)  # both queue behind the held group row
        assert not first.done() and not second.done()
        got = (await api.get(f"/profile-groups/{group['id']}/")).json()
        assert got["evaluation"]["status"] == "running"
    results = await asyncio.gather(first, second)
    assert all(r is not None and r.status == "succeeded" for r in results)
    a, b = sorted((r for r in results if r is not None), key=lambda r: r.as_of or datetime.min)
    # Serialised: the later one read the data after the earlier one had finished.
    assert a.finished_at is not None and b.as_of is not None and b.as_of >= a.finished_at
    assert (a.added_count, b.added_count) == (2, 0)
    assert await membership_count(sessionmaker, group["id"]) == (2, 2)


async def test_requests_do_not_wait_for_a_running_evaluation(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    await _scored(api, 0.9)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    evaluation_id = await request(sessionmaker, group["id"])
    async with _holding(engine, "LOCK TABLE group_memberships IN EXCLUSIVE MODE") as conn:
        running = asyncio.create_task(
            service.run_evaluation(sessionmaker, evaluation_id, timeout_ms=60_000)
        )
        await _wait_for(sessionmaker, evaluation_id, "running")
        await lock_waits(engine, 1)  # it now holds the group row and waits at its diff
        r = await asyncio.wait_for(api.post(f"/profile-groups/{group['id']}/evaluate/"), 5)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        got = await asyncio.wait_for(api.get(f"/profile-groups/{group['id']}/"), 5)
        assert got.json()["evaluation"]["status"] == "running"
        assert not running.done()
        await conn.rollback()
    result = await running
    assert result is not None and result.status == "succeeded"
    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["evaluation"]["status"] == "pending"  # the follow-up is queued


async def test_group_deleted_while_its_evaluation_runs(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    await _scored(api, 0.9, 0.8)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    evaluation_id = await request(sessionmaker, group["id"])
    # Stall the evaluation at its membership statement, after it has locked the group.
    async with _holding(engine, "LOCK TABLE group_memberships IN EXCLUSIVE MODE") as conn:
        running = asyncio.create_task(
            service.run_evaluation(sessionmaker, evaluation_id, timeout_ms=60_000)
        )
        await _wait_for(sessionmaker, evaluation_id, "running")
        await lock_waits(engine, 1)
        deleting = asyncio.create_task(api.delete(f"/profile-groups/{group['id']}/"))
        await lock_waits(engine, 2)
        assert not deleting.done()  # waits for the evaluation's lock on the group
        await conn.rollback()
    result = await running
    assert result is not None and result.status == "succeeded"
    r = await deleting
    assert r.status_code == 204, r.text
    async with sessionmaker() as session:
        left = await session.execute(
            text(
                "SELECT (SELECT count(*) FROM group_memberships WHERE group_id = :g) + "
                "(SELECT count(*) FROM group_evaluations WHERE group_id = :g) + "
                "(SELECT count(*) FROM dynamic_groups WHERE group_id = :g)"
            ),
            {"g": group["id"]},
        )
        assert left.scalar_one() == 0


async def test_group_deleted_before_its_evaluation_starts(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    await _scored(api, 0.9)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    evaluation_id = await request(sessionmaker, group["id"])
    async with _holding(
        engine, "SELECT 1 FROM profile_groups WHERE id = :g FOR UPDATE", g=group["id"]
    ) as conn:
        running = asyncio.create_task(
            service.run_evaluation(sessionmaker, evaluation_id, timeout_ms=60_000)
        )
        await _wait_for(sessionmaker, evaluation_id, "running")
        await conn.execute(text("DELETE FROM profile_groups WHERE id = :g"), {"g": group["id"]})
        await conn.commit()
    assert await running is None  # nothing to evaluate, no error


async def test_group_deactivated_while_its_evaluation_runs(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    high, _ = await _scored(api, 0.9, 0.1)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    evaluation_id = await request(sessionmaker, group["id"])
    async with _holding(engine, "LOCK TABLE group_memberships IN EXCLUSIVE MODE") as conn:
        running = asyncio.create_task(
            service.run_evaluation(sessionmaker, evaluation_id, timeout_ms=60_000)
        )
        await _wait_for(sessionmaker, evaluation_id, "running")
        await lock_waits(engine, 1)
        patching = asyncio.create_task(
            api.patch(f"/profile-groups/{group['id']}/", json={"is_active": False})
        )
        await lock_waits(engine, 2)
        assert not patching.done()
        await conn.rollback()
    result = await running
    assert result is not None and result.status == "succeeded"
    assert (await patching).status_code == 200
    # Inactive: 404 through the API, memberships kept, not evaluated any more.
    assert (await api.get(f"/profile-groups/{group['id']}/evaluations/")).status_code == 404
    assert (await api.post(f"/profile-groups/{group['id']}/evaluate/")).status_code == 404
    assert await membership_count(sessionmaker, group["id"]) == (1, 1)
    later = await request(sessionmaker, group["id"])
    assert await service.run_evaluation(sessionmaker, later, timeout_ms=60_000) is None
    assert await _status(sessionmaker, later) is None  # dropped, not recorded as a failure
    r = await api.get(f"/profiles/{high}/profile-groups/")
    assert r.json()["count"] == 0


async def test_failed_evaluation_leaves_membership_unchanged(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    a, b = await _scored(api, 0.9, 0.1)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    await evaluate(sessionmaker, group["id"])
    before = await members(api, group["id"])
    assert set(before) == {a}
    await _set_score(api, a, 0.0)
    await _set_score(api, b, 1.0)

    # The membership statement cannot get its lock: the statement timeout cancels it.
    async with _holding(engine, "LOCK TABLE group_memberships IN EXCLUSIVE MODE"):
        result = await evaluate(sessionmaker, group["id"], timeout_ms=300)
    assert result is not None and result.status == "failed"
    assert result.error is not None and "statement timeout (300 ms)" in result.error
    assert await members(api, group["id"]) == before
    assert await membership_count(sessionmaker, group["id"]) == (1, 1)
    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["evaluation"]["status"] == "failed"
    assert "statement timeout" in got["evaluation"]["error"]
    assert got["profile_count"] == 1
    history = await _evaluations(api, group["id"])
    assert history[0]["status"] == "failed" and history[0]["matched_count"] is None
    assert history[0]["finished_at"] is not None

    # The next evaluation succeeds and applies the change.
    result = await evaluate(sessionmaker, group["id"])
    assert result is not None and result.status == "succeeded"
    assert await member_ids(api, group["id"]) == {b}
    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["evaluation"] | {"last_evaluated_at": None, "next_evaluation_at": None} == {
        "status": "succeeded",
        "error": None,
        "last_evaluated_at": None,
        "next_evaluation_at": None,
    }


async def test_rules_that_no_longer_validate_fail_the_evaluation(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    (high,) = await _scored(api, 0.9)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    await evaluate(sessionmaker, group["id"])
    async with sessionmaker() as session, session.begin():
        await session.execute(text("DELETE FROM custom_attributes WHERE key = 'toxicity_score'"))
    result = await evaluate(sessionmaker, group["id"])
    assert result is not None and result.status == "failed"
    assert result.error is not None
    assert "Unknown attribute 'toxicity_score'" in result.error
    assert "rule_tree.children.0.attribute" in result.error
    assert await member_ids(api, group["id"]) == {high}


async def test_windowed_and_seed_examples(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    """The product page's examples, as written, evaluate to the expected members."""
    r = await api.post("/custom-attributes/", json={"key": "toxicity_score", "data_type": "number"})
    assert r.status_code == 201
    chatty = (await new_profile(api, nickname="chatty"))["id"]
    old_chatty = (await new_profile(api, nickname="old"))["id"]
    poller = (await new_profile(api, nickname="poller"))["id"]
    toxic = (await new_profile(api, custom_attributes={"toxicity_score": 0.95}))["id"]
    quester = (await new_profile(api, nickname="quester"))["id"]
    idle = (await new_profile(api, nickname="idle"))["id"]
    await send(
        api,
        *(
            {"type": "comment_posted", "profile_id": chatty, "occurred_at": ago(i % 6)}
            for i in range(11)
        ),
        *(
            {"type": "comment_posted", "profile_id": old_chatty, "occurred_at": ago(20)}
            for _ in range(12)
        ),
        {"type": "poll_answered", "profile_id": poller, "occurred_at": ago(1)},
        *(
            {"type": "quest_completed", "profile_id": quester, "occurred_at": ago(3)}
            for _ in range(5)
        ),
        {"type": "comment_posted", "profile_id": quester, "occurred_at": ago(45)},
        {"type": "reaction_added", "profile_id": idle, "occurred_at": ago(40)},
        {"type": "comment_posted", "profile_id": toxic, "occurred_at": ago(2)},
    )
    examples: list[tuple[dict[str, Any], set[str]]] = [
        (  # more than 10 comments in 7 days
            {"attribute": "total_comments_posted", "condition": "greater_than", "value": 10,
             "window_days": 7},
            {chatty},
        ),
        ({"attribute": "has_ever_answered_poll", "condition": "is", "value": True}, {poller}),
        (
            {"attribute": "toxicity_score", "condition": "greater_than", "value": 0.8},
            {toxic},
        ),
        (  # inactive for 30 days (profiles with no activity at all included)
            {"attribute": "last_active_at", "condition": "not_within_last_x_days", "value": 30},
            {idle},
        ),
        (  # completed 5+ quests AND hasn't commented in 30 days
            {"operator": "AND", "children": [
                {"attribute": "total_quests_completed", "condition": "greater_than_or_equal",
                 "value": 5},
                {"attribute": "last_comment_at", "condition": "not_within_last_x_days",
                 "value": 30},
            ]},
            {quester},
        ),
    ]  # fmt: skip
    for tree, expected in examples:
        root = tree if "operator" in tree else {"operator": "OR", "children": [tree]}
        group = await create_dynamic(api, app, sessionmaker, root)
        result = await evaluate(sessionmaker, group["id"])
        assert result is not None and result.status == "succeeded", result and result.error
        assert await member_ids(api, group["id"]) == expected, tree


async def test_schedule_tick_queues_due_groups(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, settings: Settings
) -> None:
    await _scored(api, 0.9)
    due = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE, name="due")
    later = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE, name="later")
    inactive = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE, name="inactive")
    # Run the evaluations queued by creating them.
    for g in (due, later, inactive):
        await evaluate(sessionmaker, g["id"])
    await api.patch(f"/profile-groups/{inactive['id']}/", json={"is_active": False})
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(DynamicGroup)
            .where(DynamicGroup.group_id.in_([UUID(due["id"]), UUID(inactive["id"])]))
            .values(next_evaluation_at=past)
        )
    stats = await service.schedule_tick(sessionmaker, app_state(app).arq, settings)
    assert stats["due"] == 1
    queued = await queued_id(sessionmaker, due["id"])
    assert queued is not None
    assert await queued_id(sessionmaker, later["id"]) is None
    assert await queued_id(sessionmaker, inactive["id"]) is None
    history = await _evaluations(api, due["id"])
    assert history[0]["trigger"] == "schedule" and history[0]["status"] == "queued"
    got = (await api.get(f"/profile-groups/{due['id']}/")).json()
    assert got["evaluation"]["status"] == "pending"
    # Advanced by one interval; a second tick does not queue it again.
    async with sessionmaker() as session:
        next_at = (
            await session.execute(
                select(DynamicGroup.next_evaluation_at).where(
                    DynamicGroup.group_id == UUID(due["id"])
                )
            )
        ).scalar_one()
    assert next_at > datetime.now(UTC) + timedelta(seconds=settings.EVALUATION_INTERVAL_SECONDS - 5)
    stats = await service.schedule_tick(sessionmaker, app_state(app).arq, settings)
    assert stats["due"] == 0
    assert await queued_id(sessionmaker, due["id"]) == queued


async def test_schedule_tick_recovers_lost_work(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, settings: Settings
) -> None:
    await _scored(api, 0.9)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    queued = await queued_id(sessionmaker, group["id"])
    assert queued is not None
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    # A queued evaluation whose job never ran, and a running one whose worker died.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(GroupEvaluation).where(GroupEvaluation.id == queued).values(created_at=long_ago)
        )
        ruleset = UUID(group["ruleset"]["id"])
        session.add(
            GroupEvaluation(
                group_id=UUID(group["id"]),
                application_id=(
                    await session.execute(
                        text("SELECT application_id FROM profile_groups WHERE id = :g"),
                        {"g": group["id"]},
                    )
                ).scalar_one(),
                ruleset_id=ruleset,
                trigger="schedule",
                status="running",
                started_at=long_ago,
                created_at=long_ago,
            )
        )
    await app_state(app).arq.flushdb()
    stats = await service.schedule_tick(sessionmaker, app_state(app).arq, settings)
    assert stats["requeued"] == 1 and stats["enqueued"] == 1 and stats["lost"] == 1
    assert await app_state(app).arq.exists(f"arq:job:evaluate:{queued}")
    history = await _evaluations(api, group["id"])
    lost = [h for h in history if h["status"] == "failed"]
    assert len(lost) == 1 and "interrupted: no heartbeat" in lost[0]["error"]


async def test_a_long_evaluation_with_a_heartbeat_is_not_taken_for_lost(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, settings: Settings
) -> None:
    await _scored(api, 0.9)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    queued = await queued_id(sessionmaker, group["id"])
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(GroupEvaluation)
            .where(GroupEvaluation.id == queued)
            .values(status="running", started_at=long_ago, heartbeat_at=datetime.now(UTC))
        )
    stats = await service.schedule_tick(sessionmaker, app_state(app).arq, settings)
    assert stats["lost"] == 0
    assert await _status(sessionmaker, queued) == "running"
    # Silent for a minute: failed, and its group due again at once.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(GroupEvaluation)
            .where(GroupEvaluation.id == queued)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=61))
        )
    stats = await service.schedule_tick(sessionmaker, app_state(app).arq, settings)
    assert stats["lost"] == 1 and stats["due"] == 1
    assert await _status(sessionmaker, queued) == "failed"
    assert await queued_id(sessionmaker, group["id"]) is not None  # retried at once


async def test_writes_to_a_group_do_not_wait_for_its_matching_pass(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    await _scored(api, 0.9)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    evaluation_id = await request(sessionmaker, group["id"])
    # Stall the evaluation in its matching pass (it reads the aggregates).
    async with _holding(engine, "LOCK TABLE profile_activity IN ACCESS EXCLUSIVE MODE") as conn:
        running = asyncio.create_task(
            service.run_evaluation(sessionmaker, evaluation_id, timeout_ms=60_000)
        )
        await lock_waits(engine, 1)
        r = await asyncio.wait_for(
            api.patch(f"/profile-groups/{group['id']}/", json={"name": "Renamed"}), 5
        )
        assert r.status_code == 200, r.text
        r = await asyncio.wait_for(api.get(f"/profile-groups/{group['id']}/members/"), 5)
        assert r.status_code == 200
        assert not running.done()
        await conn.rollback()
    result = await running
    assert result is not None and result.status == "succeeded" and result.added_count == 1
    got = (await api.get(f"/profile-groups/{group['id']}/")).json()
    assert got["name"] == "Renamed" and got["profile_count"] == 1


async def test_profile_deleted_between_the_matching_pass_and_the_diff(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    # Memberships have no foreign key to profiles: the diff's insert must skip a profile that
    # matched at the pass and is gone by the time the diff is applied, and count what it stored.
    stays, goes = await _scored(api, 0.9, 0.8)
    group = await create_dynamic(api, app, sessionmaker, SCORE_ABOVE)
    evaluation_id = await request(sessionmaker, group["id"])
    held = "SELECT 1 FROM profile_groups WHERE id = :g FOR UPDATE"
    async with _holding(engine, held, g=group["id"]) as conn:
        running = asyncio.create_task(
            service.run_evaluation(sessionmaker, evaluation_id, timeout_ms=60_000)
        )
        await lock_waits(engine, 1)  # the pass is done; the diff waits for the group row
        r = await api.delete(f"/profiles/{goes}/")
        assert r.status_code == 204, r.text
        await conn.rollback()
    result = await running
    assert result is not None and result.status == "succeeded", result and result.error
    assert (result.matched_count, result.added_count) == (1, 1)
    assert await member_ids(api, group["id"]) == {stays}
    assert await membership_count(sessionmaker, group["id"]) == (1, 1)  # rows, profile_count
    r = await api.get(f"/profile-groups/{group['id']}/changes/")
    assert [(c["profile_id"], c["change"]) for c in r.json()["results"]] == [(stays, "entered")]
