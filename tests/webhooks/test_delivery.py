"""Delivery end to end (docs/webhooks.md): a real receiver on loopback verifies every signature
with `standardwebhooks`; batches of at most 1,000 changes of one group in change-id order;
at-least-once through a failing or stopped receiver and a stopped worker (redeliveries keep
their webhook-id); rotation; disabling after a day of failures; the target check at delivery."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.webhooks.dispatcher import WebhookEngine
from profile_groups.webhooks.repository import delivery_stats
from tests.conftest import Api
from tests.webhooks.conftest import (
    EngineFactory,
    application_id,
    insert_changes,
    recorded_changes,
)
from tests.webhooks.receiver import Receiver


async def until(check: Callable[[], Awaitable[bool] | bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _group(api: Api, name: str = "G") -> str:
    r = await api.post("/profile-groups/", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _subscribe(api: Api, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    body = {"url": receiver.url, "events": ["group.members_changed"], **fields}
    r = await api.post("/webhooks/", json=body)
    assert r.status_code == 201, r.text
    hook = dict(r.json())
    receiver.secrets.append(hook["secret"])
    return hook


def _changes_by_group(receiver: Receiver) -> dict[str, list[dict[str, Any]]]:
    """Every change received, per group, in arrival order, without redeliveries of the same
    webhook-id."""
    seen: set[str] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for r in receiver.of_type("group.members_changed"):
        if r.id in seen:
            continue
        seen.add(r.id)
        data = r.json["data"]
        out.setdefault(data["group_id"], []).extend(data["changes"])
    return out


def _essentials(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("id", "profile_id", "custom_id", "change", "reason")
    return [{k: c[k] for k in keys} for c in changes]


async def _deliveries(sessionmaker: AsyncSessionMaker, hook_id: str) -> list[Any]:
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT id::text, type, status, attempts, group_id::text, failing_since "
                "FROM webhook_deliveries WHERE subscription_id = :s ORDER BY seq"
            ),
            {"s": hook_id},
        )
        return list(rows)


async def _make_due(sessionmaker: AsyncSessionMaker) -> None:
    """Skip the backoff: every pending delivery is due now."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending'")
        )


async def test_changes_arrive_signed_in_batches_and_in_order(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    app_id = await application_id(sessionmaker, papi.tenant.client_id)
    a, b = await _group(papi, "A"), await _group(papi, "B")
    hook = await _subscribe(papi, receiver)
    await insert_changes(sessionmaker, app_id, a, 2500)
    await insert_changes(sessionmaker, app_id, b, 1200)
    await insert_changes(sessionmaker, app_id, a, 10, change="exited")
    engine = engines()
    await engine.start()
    await until(lambda: _all_succeeded(sessionmaker, hook["id"], 5))
    await engine.stop()

    assert all(r.verified for r in receiver.received)
    assert len(receiver.received) == 5  # 2,510 changes of A in 3 batches, 1,200 of B in 2
    for r in receiver.received:
        assert len(r.json["data"]["changes"]) <= 1000
        assert r.json["type"] == "group.members_changed"
        assert r.headers["content-type"] == "application/json"
    got = _changes_by_group(receiver)
    assert _essentials(got[a]) == await recorded_changes(sessionmaker, a)
    assert _essentials(got[b]) == await recorded_changes(sessionmaker, b)
    first = got[a][0]
    assert set(first) == {
        "id",
        "group_id",
        "profile_id",
        "custom_id",
        "change",
        "reason",
        "evaluation_id",
        "occurred_at",
    }
    assert first["group_id"] == a and first["occurred_at"].endswith("Z")
    log = (await papi.get(f"/webhooks/{hook['id']}/deliveries/")).json()
    assert log["count"] == 5
    assert {d["status"] for d in log["results"]} == {"succeeded"}
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in log["results"])
    # The delivery's id is the webhook-id.
    assert {d["id"] for d in log["results"]} == {r.id for r in receiver.received}


async def test_only_changes_after_creation_and_of_the_named_groups(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    app_id = await application_id(sessionmaker, papi.tenant.client_id)
    a, b = await _group(papi, "A"), await _group(papi, "B")
    await insert_changes(sessionmaker, app_id, a, 5)  # before the subscription: not sent
    await _subscribe(papi, receiver, group_ids=[a])
    await insert_changes(sessionmaker, app_id, a, 3)
    await insert_changes(sessionmaker, app_id, b, 3)  # another group: not sent
    engine = engines()
    await engine.start()
    await until(lambda: len(receiver.received) >= 1)
    await asyncio.sleep(0.5)
    await engine.stop()
    got = _changes_by_group(receiver)
    assert list(got) == [a]
    assert _essentials(got[a]) == (await recorded_changes(sessionmaker, a))[5:]


async def test_nothing_lost_while_the_receiver_fails_or_is_down_and_the_worker_restarts(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    app_id = await application_id(sessionmaker, papi.tenant.client_id)
    a, b = await _group(papi, "A"), await _group(papi, "B")
    hook = await _subscribe(papi, receiver)
    receiver.status = 500
    await insert_changes(sessionmaker, app_id, a, 1500)
    await insert_changes(sessionmaker, app_id, b, 10)
    engine = engines()
    await engine.start()
    await until(lambda: len(receiver.received) >= 2)
    await _make_due(sessionmaker)
    await until(lambda: len(receiver.received) >= 4)
    # Only each group's head is tried: A's second batch waits behind its failing first.
    assert {r.json["data"]["changes"][0]["id"] for r in receiver.received} == {
        c["id"] for c in (await recorded_changes(sessionmaker, a))[:1]
    } | {c["id"] for c in (await recorded_changes(sessionmaker, b))[:1]}
    failing_ids = {r.id for r in receiver.received}
    assert all(r.verified for r in receiver.received)
    await engine.stop()

    # The receiver goes down, more changes come while no worker runs.
    await receiver.stop()
    await insert_changes(sessionmaker, app_id, a, 700, change="exited")
    before = sum(d.attempts for d in await _deliveries(sessionmaker, hook["id"]))
    engine = engines()
    await engine.start()
    await _make_due(sessionmaker)
    await until(lambda: _attempts_over(sessionmaker, hook["id"], before + 2))
    log = (await papi.get(f"/webhooks/{hook['id']}/deliveries/")).json()["results"]
    assert {d["status"] for d in log} == {"pending"}
    assert any(d["last_error"] and d["last_status_code"] is None for d in log)
    await engine.stop()

    # Back up; a new worker sends everything, in order, the failed ones under their old ids.
    receiver.status = 200
    await receiver.start()
    engine = engines()
    await engine.start()
    await _make_due(sessionmaker)
    await until(lambda: _all_succeeded(sessionmaker, hook["id"]))
    await engine.stop()

    assert all(r.verified for r in receiver.received)
    ok = [r for r in receiver.received if r.json["type"] == "group.members_changed"]
    delivered_ids = {r.id for r in ok}
    assert failing_ids <= delivered_ids  # redeliveries kept their webhook-id
    got = _changes_by_group(receiver)
    assert _essentials(got[a]) == await recorded_changes(sessionmaker, a)
    assert _essentials(got[b]) == await recorded_changes(sessionmaker, b)
    # Byte-identical redeliveries.
    bodies: dict[str, set[bytes]] = {}
    for r in ok:
        bodies.setdefault(r.id, set()).add(r.body)
    assert all(len(v) == 1 for v in bodies.values())


async def _attempts_over(sessionmaker: AsyncSessionMaker, hook_id: str, n: int) -> bool:
    return sum(d.attempts for d in await _deliveries(sessionmaker, hook_id)) >= n


async def _all_succeeded(sessionmaker: AsyncSessionMaker, hook_id: str, n: int = 1) -> bool:
    rows = await _deliveries(sessionmaker, hook_id)
    return len(rows) >= n and all(d.status == "succeeded" for d in rows)


async def test_test_ping_is_signed_and_logged(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    hook = await _subscribe(papi, receiver)
    ping = (await papi.post(f"/webhooks/{hook['id']}/test/")).json()
    engine = engines()
    await engine.start()
    await until(lambda: _all_succeeded(sessionmaker, hook["id"]))
    await engine.stop()
    (got,) = receiver.received
    assert got.verified and got.id == ping["id"]
    assert got.json["type"] == "webhook.test"
    assert got.json["data"] == {"webhook_id": hook["id"]}
    (logged,) = (await papi.get(f"/webhooks/{hook['id']}/deliveries/")).json()["results"]
    assert logged["status"] == "succeeded" and logged["last_status_code"] == 200
    assert logged["next_attempt_at"] is None


async def test_rotation_signs_with_both_secrets_for_a_while(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    hook = await _subscribe(papi, receiver)
    old = hook["secret"]
    new = (await papi.post(f"/webhooks/{hook['id']}/rotate-secret/")).json()["secret"]
    await papi.post(f"/webhooks/{hook['id']}/test/")
    engine = engines()
    await engine.start()
    await until(lambda: len(receiver.received) == 1)
    first = receiver.received[0]
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    assert Receiver(secrets=[new]).verify(first.headers, first.body)
    assert Receiver(secrets=[old]).verify(first.headers, first.body)
    # Once the overlap is over, only the new secret signs.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE webhook_subscriptions SET previous_secret_until = now() - interval '1s'")
        )
    await papi.post(f"/webhooks/{hook['id']}/test/")
    await until(lambda: len(receiver.received) == 2)
    await engine.stop()
    second = receiver.received[1]
    assert Receiver(secrets=[new]).verify(second.headers, second.body)
    assert not Receiver(secrets=[old]).verify(second.headers, second.body)


async def test_a_day_of_failures_fails_the_delivery_and_disables_the_webhook(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    app_id = await application_id(sessionmaker, papi.tenant.client_id)
    a = await _group(papi)
    hook = await _subscribe(papi, receiver)
    receiver.status = 503
    await insert_changes(sessionmaker, app_id, a, 1200)
    engine = engines()
    await engine.start()
    await until(lambda: _attempts_over(sessionmaker, hook["id"], 1))
    await engine.stop()
    first = (await _deliveries(sessionmaker, hook["id"]))[0]
    assert first.status == "pending" and first.failing_since is not None
    # A day later (the clock moved by setting the times back).
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE webhook_deliveries SET failing_since = failing_since - interval '25 hours'"
                " WHERE failing_since IS NOT NULL"
            )
        )
        await session.execute(
            text(
                "UPDATE webhook_subscriptions"
                " SET failing_since = failing_since - interval '25 hours'"
            )
        )
    await _make_due(sessionmaker)
    engine = engines()
    await engine.start()
    await until(lambda: _attempts_over(sessionmaker, hook["id"], 2))
    await asyncio.sleep(0.3)
    await engine.stop()
    got = (await papi.get(f"/webhooks/{hook['id']}/")).json()
    assert got["is_active"] is False
    assert "a day" in got["disabled_reason"]
    log = (await papi.get(f"/webhooks/{hook['id']}/deliveries/")).json()["results"]
    assert [d["status"] for d in log] == ["pending", "failed"]  # newest first
    assert log[1]["attempts"] == 2 and log[1]["last_status_code"] == 503
    assert log[1]["next_attempt_at"] is None

    # Re-enabled, the receiver back: the pending batch goes out; the failed one on request.
    receiver.status = 200
    r = await papi.patch(f"/webhooks/{hook['id']}/", json={"is_active": True})
    assert r.json()["is_active"] is True and r.json()["disabled_reason"] is None
    r = await papi.post(f"/webhooks/{hook['id']}/deliveries/{log[1]['id']}/retry/")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    engine = engines()
    await engine.start()
    await until(lambda: _all_succeeded(sessionmaker, hook["id"]))
    await engine.stop()
    got_changes = _changes_by_group(receiver)
    assert _essentials(got_changes[a]) == await recorded_changes(sessionmaker, a)


async def test_delivery_checks_the_resolved_address(
    papi: Api,
    sessionmaker: AsyncSessionMaker,
    receiver: Receiver,
    engines: EngineFactory,
    private_settings: Settings,
) -> None:
    """A target accepted once (here: by an app allowing private targets, standing in for a name
    that resolved to a public address then) is checked again at delivery: `localhost` now
    resolves to loopback, so nothing is sent."""
    hook = await _subscribe(papi, receiver)
    await papi.patch(
        f"/webhooks/{hook['id']}/", json={"url": f"http://localhost:{receiver.port}/hook"}
    )
    await papi.post(f"/webhooks/{hook['id']}/test/")
    strict = private_settings.model_copy(update={"WEBHOOK_ALLOW_PRIVATE_TARGETS": False})
    engine = engines(strict)
    await engine.start()
    await until(lambda: _attempts_over(sessionmaker, hook["id"], 1))
    await engine.stop()
    assert receiver.received == []
    (logged,) = (await papi.get(f"/webhooks/{hook['id']}/deliveries/")).json()["results"]
    assert logged["status"] == "pending" and "non-public" in logged["last_error"]


async def test_group_deleted_and_evaluation_failed(
    papi: Api,
    private_app: Any,
    sessionmaker: AsyncSessionMaker,
    receiver: Receiver,
    engines: EngineFactory,
    private_settings: Settings,
) -> None:
    from profile_groups.groups import evaluation
    from profile_groups.groups.repositories.evaluations import EvaluationRepository
    from profile_groups.kit.state import app_state

    app_id = await application_id(sessionmaker, papi.tenant.client_id)
    doomed = await _group(papi, "Doomed")
    tree = {"attribute": "total_comments_posted", "condition": "greater_than", "value": 1}
    dynamic = (
        await papi.post(
            "/profile-groups/",
            json={"name": "Dyn", "membership_type": "dynamic", "rule_tree": tree},
        )
    ).json()
    await _subscribe(
        papi, receiver, events=["group.members_changed", "group.deleted", "group.evaluation_failed"]
    )
    await insert_changes(sessionmaker, app_id, doomed, 3)
    assert (await papi.delete(f"/profile-groups/{doomed}/")).status_code == 204

    # An evaluation whose worker went silent is failed by the tick.
    async with sessionmaker() as session, session.begin():
        queued = await session.scalar(
            text("SELECT id FROM group_evaluations WHERE group_id = :g"), {"g": dynamic["id"]}
        )
        await EvaluationRepository(session).claim(queued)
        await session.execute(
            text(
                "UPDATE group_evaluations SET heartbeat_at = now() - interval '1 hour' "
                "WHERE id = :e"
            ),
            {"e": queued},
        )
    await evaluation.schedule_tick(sessionmaker, app_state(private_app).arq, private_settings)

    engine = engines()
    await engine.start()
    await until(lambda: len(receiver.received) >= 3)
    await engine.stop()
    assert all(r.verified for r in receiver.received)
    types = [r.json["type"] for r in receiver.received]
    # The deleted group's last changes before its deletion.
    assert types.index("group.members_changed") < types.index("group.deleted")
    (deleted,) = receiver.of_type("group.deleted")
    assert deleted.json["data"] == {"group_id": doomed}
    (failed,) = receiver.of_type("group.evaluation_failed")
    evaluations = (await papi.get(f"/profile-groups/{dynamic['id']}/evaluations/")).json()
    failed_eval = next(e for e in evaluations["results"] if e["status"] == "failed")
    assert failed.json["data"] == failed_eval


async def test_delivery_stats(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver
) -> None:
    hook = await _subscribe(papi, receiver)
    await papi.post(f"/webhooks/{hook['id']}/test/")
    async with sessionmaker() as session:
        stats = await delivery_stats(session)
    assert stats.by_status == {"pending": 1, "succeeded": 0, "failed": 0}
    assert stats.oldest_pending_age_seconds is not None
    assert 0 <= stats.oldest_pending_age_seconds < 60


async def test_the_worker_runs_the_engine_beside_arq(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, private_settings: Settings
) -> None:
    import uuid

    from arq.worker import Worker

    from profile_groups.worker import worker_settings

    hook = await _subscribe(papi, receiver)
    await papi.post(f"/webhooks/{hook['id']}/test/")
    worker = Worker(
        **worker_settings(
            private_settings,
            handle_signals=False,
            poll_delay=0.05,
            queue_name=f"webhooks-test-{uuid.uuid4().hex}",
            cron_jobs=[],
        )
    )
    task = asyncio.create_task(worker.async_run())
    try:
        await until(lambda: len(receiver.received) == 1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()
    assert receiver.received[0].verified


async def test_redirects_are_not_followed(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    hook = await _subscribe(papi, receiver)
    receiver.status = 302
    await papi.post(f"/webhooks/{hook['id']}/test/")
    engine = engines()
    await engine.start()
    await until(lambda: _attempts_over(sessionmaker, hook["id"], 1))
    await engine.stop()
    assert len(receiver.received) == 1
    (logged,) = (await papi.get(f"/webhooks/{hook['id']}/deliveries/")).json()["results"]
    assert logged["status"] == "pending" and logged["last_status_code"] == 302
    assert logged["last_error"].startswith("The receiver answered 302.")
    assert logged["next_attempt_at"] > logged["created_at"]


async def test_attempts_in_flight_are_bounded_per_webhook(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    """Groups do not wait for each other, but at most PER_SUBSCRIPTION attempts of one webhook
    are open at once; one group's deliveries are never concurrent."""
    from profile_groups.webhooks.dispatcher import PER_SUBSCRIPTION

    app_id = await application_id(sessionmaker, papi.tenant.client_id)
    groups = [await _group(papi, f"G{i}") for i in range(PER_SUBSCRIPTION + 2)]
    hook = await _subscribe(papi, receiver)
    for g in groups:
        await insert_changes(sessionmaker, app_id, g, 1500)
    receiver.delay = 0.3
    engine = engines()
    await engine.start()
    await until(lambda: _all_succeeded(sessionmaker, hook["id"], 2 * len(groups)))
    await engine.stop()
    assert receiver.max_active == PER_SUBSCRIPTION
    got = _changes_by_group(receiver)
    for g in groups:
        assert _essentials(got[g]) == await recorded_changes(sessionmaker, g)


async def test_metrics_export_deliveries_and_their_lag(
    papi: Api, receiver: Receiver, private_app: Any
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    hook = await _subscribe(papi, receiver)
    await papi.post(f"/webhooks/{hook['id']}/test/")
    r = await papi.client.get("/metrics")
    assert r.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    assert samples[("profile_groups_metrics_collector_up", (("collector", "webhooks"),))] == 1
    assert samples[("profile_groups_webhook_deliveries", (("status", "pending"),))] == 1
    assert samples[("profile_groups_webhook_deliveries", (("status", "failed"),))] == 0
    assert 0 <= samples[("profile_groups_webhook_oldest_pending_seconds", ())] < 60


async def test_member_writes_reach_the_receiver_through_the_change_log(
    papi: Api, sessionmaker: AsyncSessionMaker, receiver: Receiver, engines: EngineFactory
) -> None:
    """End to end with a real writer: POST and DELETE members record changes (reason manual),
    which reach the receiver in order, in batches of at most 1,000, exactly as the feed lists
    them."""
    custom_ids = [f"p{i:04d}" for i in range(1500)]
    for chunk in (custom_ids[:1000], custom_ids[1000:]):
        r = await papi.post("/profiles/bulk/", json={"profiles": [{"custom_id": c} for c in chunk]})
        assert r.status_code == 200, r.text
    group = await _group(papi)
    hook = await _subscribe(papi, receiver, group_ids=[group])
    r = await papi.post(f"/profile-groups/{group}/members/", json={"custom_ids": custom_ids})
    assert r.status_code == 200, r.text
    r = await papi.delete(f"/profile-groups/{group}/members/", json={"custom_ids": custom_ids[:10]})
    assert r.status_code == 204, r.text
    engine = engines()
    await engine.start()
    await until(lambda: _all_succeeded(sessionmaker, hook["id"], 2))
    await engine.stop()
    assert all(r.verified for r in receiver.received)
    assert all(len(r.json["data"]["changes"]) <= 1000 for r in receiver.received)
    got = _changes_by_group(receiver)[group]
    assert [c["change"] for c in got] == ["entered"] * 1500 + ["exited"] * 10
    assert sorted(c["custom_id"] for c in got[:1500]) == custom_ids
    assert sorted(c["custom_id"] for c in got[1500:]) == custom_ids[:10]
    assert {c["reason"] for c in got} == {"manual"}
    assert _essentials(got) == await recorded_changes(sessionmaker, group)
    feed: list[dict[str, Any]] = []
    r = await papi.get(f"/profile-groups/{group}/changes/", params={"page_size": 1000})
    while True:
        assert r.status_code == 200, r.text
        feed.extend(r.json()["results"])
        if r.json()["next"] is None:
            break
        r = await papi.client.get(r.json()["next"], headers=papi.tenant.headers)
    assert got == feed  # the webhook's change objects are the feed's, byte for byte as JSON


async def test_a_wake_as_the_engine_stops_does_not_keep_its_loop_running(
    sessionmaker: AsyncSessionMaker, settings: Settings
) -> None:
    # An attempt finishing (it wakes the dispatcher) in the same instant `stop` cancels the
    # dispatcher's wait: the cancellation must win, or `stop` waits for the loop forever.
    engine = WebhookEngine(sessionmaker, settings, poll_seconds=30)
    waiting = asyncio.create_task(engine._dispatcher_wait())
    await asyncio.sleep(0)
    engine.wake()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(waiting), 5)
