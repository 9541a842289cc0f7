"""The domain metrics of /metrics (docs/operations.md): ingestion and membership counters of the
API, evaluations, schedule, queue and freshness read from PostgreSQL and Redis at scrape time,
and scrape collectors plugged in by other packages."""

import asyncio
import time
from collections.abc import Iterable
from typing import Any
from uuid import uuid4

import httpx
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from profile_groups.app import create_app
from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.groups import evaluation
from profile_groups.ops.metrics import ScrapeContext, install_metrics
from profile_groups.ops.repository import CHANGES_CAP
from tests.conftest import Api
from tests.groups.helpers import create_dynamic, queued_id

COMMENTERS = {
    "operator": "AND",
    "children": [
        {"attribute": "total_comments_posted", "condition": "greater_than_or_equal", "value": 1}
    ],
}


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_events_and_member_changes_are_counted(client: httpx.AsyncClient, api: Api) -> None:
    before = await scrape(client)
    profile_id = str(uuid4())
    assert (await api.post("/profiles/", json={"id": profile_id})).status_code == 201
    event = {"id": "e-1", "type": "comment_posted", "profile_id": profile_id}
    batch = [event, event, {"type": "no_such_type", "profile_id": profile_id}]
    r = await api.post("/events/", json={"events": batch})
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["duplicates"], len(r.json()["rejected"])) == (1, 1, 1)
    r = await api.post("/events/", json={"events": [event]})  # a retried batch: a duplicate
    assert r.json()["duplicates"] == 1

    group = (await api.post("/profile-groups/", json={"name": "Static"})).json()
    others = [str(uuid4()) for _ in range(2)]
    for other in others:
        assert (await api.post("/profiles/", json={"id": other})).status_code == 201
    members = f"/profile-groups/{group['id']}/members/"
    r = await api.post(members, json={"profile_ids": [profile_id, *others]})
    assert len(r.json()["successfully_added"]) == 3
    r = await api.post(members, json={"profile_ids": [profile_id]})  # already a member
    assert r.json()["already_added"] == [profile_id]
    assert (await api.delete(members, json={"profile_ids": others})).status_code == 204

    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("profile_groups_events_total", outcome="accepted") == 1
    assert delta("profile_groups_events_total", outcome="duplicate") == 2
    assert delta("profile_groups_events_total", outcome="rejected") == 1
    assert delta("profile_groups_member_changes_total", change="added") == 3
    assert delta("profile_groups_member_changes_total", change="removed") == 2


async def test_a_rolled_back_batch_counts_nothing(client: httpx.AsyncClient, api: Api) -> None:
    before = await scrape(client)
    # A member add to a missing group fails (404): nothing committed, nothing counted.
    r = await api.post(f"/profile-groups/{uuid4()}/members/", json={"profile_ids": [str(uuid4())]})
    assert r.status_code == 404
    after = await scrape(client)
    for change in ("added", "removed"):
        assert value(after, "profile_groups_member_changes_total", change=change) == value(
            before, "profile_groups_member_changes_total", change=change
        )


async def test_evaluations_schedule_and_freshness_come_from_the_database(
    client: httpx.AsyncClient,
    api: Api,
    app: Any,
    sessionmaker: AsyncSessionMaker,
    engine: AsyncEngine,
) -> None:
    profile_id = str(uuid4())
    assert (await api.post("/profiles/", json={"id": profile_id})).status_code == 201
    r = await api.post(
        "/events/", json={"events": [{"type": "comment_posted", "profile_id": profile_id}]}
    )
    assert r.json()["accepted"] == 1
    group = await create_dynamic(api, app, sessionmaker, COMMENTERS)

    samples = await scrape(client)
    assert value(samples, "profile_groups_metrics_collector_up", collector="domain") == 1
    assert value(samples, "profile_groups_evaluations_open", status="queued") == 1
    assert value(samples, "profile_groups_evaluations_open", status="running") == 0
    assert value(samples, "profile_groups_evaluations_recent", status="succeeded") == 0
    assert value(samples, "profile_groups_evaluation_queue_oldest_seconds") >= 0
    # The API enqueued the evaluation's job (no worker runs in this test).
    assert value(samples, "profile_groups_queue_jobs") >= 1
    # The profile and its event queued changes for the incremental worker.
    assert value(samples, "profile_groups_profile_changes_pending") >= 1
    assert 0 <= value(samples, "profile_groups_freshness_lag_seconds") < 60

    evaluation_id = await queued_id(sessionmaker, group["id"])
    assert evaluation_id is not None
    done = await evaluation.run_evaluation(sessionmaker, evaluation_id, timeout_ms=60_000)
    assert done is not None and done.status == "succeeded"
    async with engine.begin() as conn:
        # The oldest change waits for 2 minutes; the group's schedule is 30 s late.
        await conn.execute(
            text("UPDATE profile_changes SET changed_at = now() - interval '120 seconds'")
        )
        await conn.execute(
            text(
                "UPDATE dynamic_groups SET next_evaluation_at = now() - interval '30 seconds' "
                "WHERE group_id = :g"
            ),
            {"g": group["id"]},
        )

    samples = await scrape(client)
    assert value(samples, "profile_groups_evaluations_open", status="queued") == 0
    assert value(samples, "profile_groups_evaluation_queue_oldest_seconds") == 0
    assert value(samples, "profile_groups_evaluations_recent", status="succeeded") == 1
    assert value(samples, "profile_groups_evaluations_recent", status="failed") == 0
    assert value(samples, "profile_groups_evaluation_profiles_recent", count="matched") == 1
    assert value(samples, "profile_groups_evaluation_profiles_recent", count="added") == 1
    assert value(samples, "profile_groups_evaluation_profiles_recent", count="removed") == 0
    longest = value(samples, "profile_groups_evaluation_duration_seconds", quantile="1")
    assert longest == (done.duration_ms or 0) / 1000
    assert value(samples, "profile_groups_groups_due") == 1
    assert 30 <= value(samples, "profile_groups_groups_due_oldest_seconds") < 60
    assert 120 <= value(samples, "profile_groups_freshness_lag_seconds") < 150

    # A deactivated group is never due.
    r = await api.patch(f"/profile-groups/{group['id']}/", json={"is_active": False})
    assert r.status_code == 200
    samples = await scrape(client)
    assert value(samples, "profile_groups_groups_due") == 0
    assert value(samples, "profile_groups_groups_due_oldest_seconds") == 0


async def test_the_freshness_queue_is_read_up_to_its_cap(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO profile_changes (application_id, profile_id) "
                "SELECT gen_random_uuid(), gen_random_uuid() FROM generate_series(1, :n)"
            ),
            {"n": CHANGES_CAP + 5},
        )
    samples = await scrape(client)
    assert value(samples, "profile_groups_profile_changes_pending") == CHANGES_CAP


class WebhookLike:
    """A collector as another package plugs one in (here: the shape of the webhook metrics)."""

    name = "webhooks"

    async def collect(self, session: AsyncSession, ctx: ScrapeContext) -> Iterable[Metric]:
        pending = (await session.execute(text("SELECT 3"))).scalar_one()
        deliveries = GaugeMetricFamily(
            "profile_groups_webhook_deliveries", "Deliveries by status.", labels=["status"]
        )
        deliveries.add_metric(["pending"], pending)
        oldest = GaugeMetricFamily(
            "profile_groups_webhook_oldest_pending_seconds", "Oldest pending delivery.", value=7
        )
        return [deliveries, oldest]


class Broken:
    name = "broken"

    async def collect(self, session: AsyncSession, ctx: ScrapeContext) -> Iterable[Metric]:
        raise RuntimeError("its source is down")


class Slow:
    name = "slow"

    async def collect(self, session: AsyncSession, ctx: ScrapeContext) -> Iterable[Metric]:
        await session.execute(text("SELECT pg_sleep(30)"))  # past the statement bound
        return []


async def test_plugged_in_collectors_and_failing_ones(settings: Settings) -> None:
    app = create_app(settings)
    install_metrics(app, WebhookLike(), Broken(), Slow())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            started = time.monotonic()
            samples = await scrape(c)
            elapsed = time.monotonic() - started
    assert elapsed < 5  # the slow collector is cut at its bound
    up = {
        collector: value(samples, "profile_groups_metrics_collector_up", collector=collector)
        for collector in ("domain", "webhooks", "broken", "slow")
    }
    assert up == {"domain": 1, "webhooks": 1, "broken": 0, "slow": 0}
    assert value(samples, "profile_groups_webhook_deliveries", status="pending") == 3
    assert value(samples, "profile_groups_webhook_oldest_pending_seconds") == 7
    # The process's own metrics are there whatever the collectors did.
    assert ("profile_groups_events_total", (("outcome", "accepted"),)) in samples


async def test_metrics_answer_while_the_database_is_down(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(
            update={"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            samples = await asyncio.wait_for(scrape(c), 10)
    assert value(samples, "profile_groups_metrics_collector_up", collector="domain") == 0


async def test_recent_membership_changes_by_reason(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    rows = [
        ("entered", "activity", 0),
        ("entered", "activity", 10),
        ("exited", "evaluation", 60),
        ("entered", "manual", 3600),  # outside the 15-minute window
    ]
    async with engine.begin() as conn:
        for change, reason, ago in rows:
            await conn.execute(
                text(
                    "INSERT INTO membership_changes (application_id, group_id, profile_id, "
                    "change, reason, occurred_at) VALUES (gen_random_uuid(), gen_random_uuid(), "
                    "gen_random_uuid(), :change, :reason, now() - make_interval(secs => :ago))"
                ),
                {"change": change, "reason": reason, "ago": ago},
            )
    samples = await scrape(client)
    name = "profile_groups_membership_changes_recent"
    assert value(samples, name, change="entered", reason="activity") == 2
    assert value(samples, name, change="exited", reason="evaluation") == 1
    assert value(samples, name, change="entered", reason="manual") == 0
    assert value(samples, name, change="exited", reason="profile_deleted") == 0
