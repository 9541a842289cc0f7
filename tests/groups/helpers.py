"""Helpers shared by the dynamic group tests: groups with rules, running evaluations directly."""

import asyncio
from typing import Any
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from profile_groups.db import AsyncSessionMaker
from profile_groups.groups import evaluation
from profile_groups.groups.repositories.evaluations import EvaluationRepository
from profile_groups.models.segmentation import GroupEvaluation
from tests.conftest import Api

TIMEOUT_MS = 60_000


async def create_dynamic(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker, tree: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """POST a dynamic group (its first evaluation is queued, not run)."""
    body = {"name": "Dynamic", "membership_type": "dynamic", "rule_tree": tree, **fields}
    r = await api.post("/profile-groups/", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def queued_id(sessionmaker: AsyncSessionMaker, group_id: str) -> UUID | None:
    async with sessionmaker() as session:
        stmt = select(GroupEvaluation.id).where(
            GroupEvaluation.group_id == UUID(group_id), GroupEvaluation.status == "queued"
        )
        return (await session.execute(stmt)).scalar_one_or_none()


async def request(sessionmaker: AsyncSessionMaker, group_id: str, trigger: str = "manual") -> UUID:
    async with sessionmaker() as session, session.begin():
        evaluation, _ = await EvaluationRepository(session).request(UUID(group_id), trigger)
        assert evaluation is not None
        return evaluation.id


async def evaluate(
    sessionmaker: AsyncSessionMaker, group_id: str, timeout_ms: int = TIMEOUT_MS
) -> GroupEvaluation | None:
    """Queue (or join the queued) evaluation of the group and run it here, without a worker."""
    evaluation_id = await request(sessionmaker, group_id)
    return await evaluation.run_evaluation(sessionmaker, evaluation_id, timeout_ms=timeout_ms)


async def member_ids(api: Api, group_id: str) -> set[str]:
    r = await api.get(f"/profile-groups/{group_id}/members/", params={"page_size": 1000})
    assert r.status_code == 200, r.text
    return {m["id"] for m in r.json()["results"]}


async def members(api: Api, group_id: str) -> dict[str, str]:
    """{profile id: membership_created_at}."""
    r = await api.get(f"/profile-groups/{group_id}/members/", params={"page_size": 1000})
    assert r.status_code == 200, r.text
    return {m["id"]: m["membership_created_at"] for m in r.json()["results"]}


async def membership_count(sessionmaker: AsyncSessionMaker, group_id: str) -> tuple[int, int]:
    """(rows in group_memberships, profile_count) of a group."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT (SELECT count(*) FROM group_memberships WHERE group_id = :g), "
                "(SELECT profile_count FROM profile_groups WHERE id = :g)"
            ),
            {"g": group_id},
        )
        a, b = rows.one()
        return int(a), int(b)


async def lock_waits(engine: AsyncEngine, at_least: int) -> None:
    """Return once `at_least` sessions of this database are waiting for a lock, as PostgreSQL
    itself reports it: a test then knows a concurrent statement has reached its lock."""
    async with asyncio.timeout(10), engine.connect() as conn:
        while True:
            waiting = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
            await conn.rollback()
            if waiting >= at_least:
                return
            await asyncio.sleep(0.01)
