"""The membership change log (docs/changes.md): every writer records its entries and exits with
the right reason, evaluation id, custom_id and member_since; the history endpoints read it."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from profile_groups.db import AsyncSessionMaker
from profile_groups.groups import incremental
from profile_groups.kit.timestamps import format_timestamp
from tests.activity.helpers import new_profile
from tests.applications.test_profile_tokens import bearer, token
from tests.conftest import Api
from tests.groups.helpers import create_dynamic, evaluate, members

SCORED = {"attribute": "score", "condition": "greater_than", "value": 0.5}


async def changes(api: Api, group_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every change of the group, following `next` links."""
    out: list[dict[str, Any]] = []
    r = await api.get(f"/profile-groups/{group_id}/changes/", params={"page_size": 1000, **params})
    while True:
        assert r.status_code == 200, r.text
        out.extend(r.json()["results"])
        if r.json()["next"] is None:
            return out
        r = await api.client.get(r.json()["next"], headers=api.tenant.headers)


async def logged(sessionmaker: AsyncSessionMaker, group_id: str) -> list[dict[str, Any]]:
    """The log's rows of a group, with what the API does not show (member_since)."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT * FROM membership_changes WHERE group_id = :g ORDER BY id"),
            {"g": group_id},
        )
        return [dict(r._mapping) for r in rows]


async def static_group(api: Api) -> str:
    r = await api.post("/profile-groups/", json={"name": "Static"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def scored_profiles(api: Api, scores: list[float]) -> list[dict[str, Any]]:
    r = await api.post("/custom-attributes/", json={"key": "score", "data_type": "number"})
    assert r.status_code in (201, 409), r.text
    return [
        await new_profile(api, custom_id=f"c{i}", custom_attributes={"score": s})
        for i, s in enumerate(scores)
    ]


async def test_member_adds_and_removes_are_manual_changes(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    a, b = await new_profile(api, custom_id="a"), await new_profile(api, custom_id="b")
    group = await static_group(api)
    r = await api.post(
        f"/profile-groups/{group}/members/", json={"profile_ids": [a["id"], b["id"]]}
    )
    assert r.status_code == 200
    # Adding again changes nothing, so records nothing.
    await api.post(f"/profile-groups/{group}/members/", json={"profile_ids": [a["id"]]})
    # The custom_id is the one the profile had at the time.
    await api.patch(f"/profiles/{a['id']}/", json={"custom_id": "a2"})
    r = await api.request(
        "DELETE", f"/profile-groups/{group}/members/", json={"custom_ids": ["a2"]}
    )
    assert r.status_code == 204
    got = await changes(api, group)
    assert {(c["profile_id"], c["custom_id"], c["change"]) for c in got[:2]} == {
        (a["id"], "a", "entered"),
        (b["id"], "b", "entered"),
    }
    assert (got[2]["profile_id"], got[2]["custom_id"], got[2]["change"]) == (
        a["id"],
        "a2",
        "exited",
    )
    assert {c["reason"] for c in got} == {"manual"} and {c["evaluation_id"] for c in got} == {None}
    assert {c["group_id"] for c in got} == {group}
    ids = [int(c["id"]) for c in got]
    assert ids == sorted(ids) and all(isinstance(c["id"], str) for c in got)
    rows = await logged(sessionmaker, group)
    entry = next(
        r
        for r in rows
        if r["profile_id"].hex == a["id"].replace("-", "") and r["change"] == "entered"
    )
    # An exit carries when the membership it ended began: the entry's time.
    assert rows[2]["member_since"] == entry["occurred_at"]
    assert rows[0]["member_since"] is None


async def test_a_full_evaluation_records_its_id_and_as_of(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    ps = await scored_profiles(api, [0.9, 0.8, 0.1])
    group = (await create_dynamic(api, app, sessionmaker, SCORED))["id"]
    first = await evaluate(sessionmaker, group)
    assert first is not None and first.status == "succeeded"
    got = await changes(api, group)
    assert {c["profile_id"] for c in got} == {ps[0]["id"], ps[1]["id"]}
    assert {(c["change"], c["reason"], c["evaluation_id"]) for c in got} == {
        ("entered", "evaluation", str(first.id))
    }
    assert {c["custom_id"] for c in got} == {"c0", "c1"}
    # occurred_at is the evaluation's as_of, which is also the membership's start.
    assert {c["occurred_at"] for c in got} == {format_timestamp(first.as_of)}
    assert set((await members(api, group)).values()) == {format_timestamp(first.as_of)}
    await api.patch(f"/profiles/{ps[0]['id']}/", json={"custom_attributes": {"score": 0}})
    second = await evaluate(sessionmaker, group)
    assert second is not None and second.removed_count == 1
    last = (await changes(api, group))[-1]
    assert (last["profile_id"], last["change"], last["evaluation_id"]) == (
        ps[0]["id"],
        "exited",
        str(second.id),
    )
    assert (await logged(sessionmaker, group))[-1]["member_since"] == first.as_of


async def test_incremental_rounds_record_activity(
    api: Api, app: Any, sessionmaker: AsyncSessionMaker
) -> None:
    (p,) = await scored_profiles(api, [0.1])
    group = (await create_dynamic(api, app, sessionmaker, SCORED))["id"]
    assert await evaluate(sessionmaker, group) is not None
    await incremental.apply_changes(sessionmaker, timeout_ms=60_000)
    await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"score": 0.9}})
    done = await incremental.apply_changes(sessionmaker, timeout_ms=60_000)
    assert done.entered == 1
    await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"score": 0.2}})
    assert (await incremental.apply_changes(sessionmaker, timeout_ms=60_000)).exited == 1
    got = await changes(api, group)
    assert [(c["change"], c["reason"], c["evaluation_id"], c["custom_id"]) for c in got] == [
        ("entered", "activity", None, "c0"),
        ("exited", "activity", None, "c0"),
    ]
    rows = await logged(sessionmaker, group)
    assert rows[1]["member_since"] == rows[0]["occurred_at"]


async def test_profile_deletion_records_exits_and_group_deletion_records_none(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    p = await new_profile(api, custom_id="gone")
    g1, g2 = await static_group(api), await static_group(api)
    for g in (g1, g2):
        await api.post(f"/profile-groups/{g}/members/", json={"profile_ids": [p["id"]]})
    assert (await api.delete(f"/profile-groups/{g2}/")).status_code == 204
    assert len(await logged(sessionmaker, g2)) == 1  # its entry only: no exit per member
    assert (await api.delete(f"/profiles/{p['id']}/")).status_code == 204
    last = (await changes(api, g1))[-1]
    assert (last["change"], last["reason"], last["custom_id"]) == (
        "exited",
        "profile_deleted",
        "gone",
    )


async def test_after_filters_and_pagination(api: Api) -> None:
    ps = [await new_profile(api) for _ in range(5)]
    group = await static_group(api)
    for p in ps:
        await api.post(f"/profile-groups/{group}/members/", json={"profile_ids": [p["id"]]})
    await api.request(
        "DELETE", f"/profile-groups/{group}/members/", json={"profile_ids": [ps[0]["id"]]}
    )
    everything = await changes(api, group)
    assert len(everything) == 6
    later = await changes(api, group, after=everything[2]["id"])
    assert later == everything[3:]
    assert await changes(api, group, after=everything[-1]["id"]) == []
    assert [c["change"] for c in await changes(api, group, change="exited")] == ["exited"]
    # Oldest first across pages; count is exact.
    r = await api.get(f"/profile-groups/{group}/changes/", params={"page_size": 2})
    assert r.json()["count"] == 6 and r.json()["results"] == everything[:2]
    r = await api.client.get(r.json()["next"], headers=api.tenant.headers)
    assert r.json()["results"] == everything[2:4] and r.json()["previous"] is not None
    r = await api.client.get(r.json()["previous"], headers=api.tenant.headers)
    assert r.json()["results"] == everything[:2]
    at = everything[3]["occurred_at"]
    assert await changes(api, group, since=at) == everything[3:]
    assert await changes(api, group, until=at) == everything[:3]


async def test_bad_queries_are_400(api: Api) -> None:
    group = await static_group(api)
    base = f"/profile-groups/{group}"
    for path, params, loc in [
        ("/changes/", {"after": "abc"}, "after"),
        ("/changes/", {"after": "-1"}, "after"),
        ("/changes/", {"after": str(2**63)}, "after"),
        ("/changes/", {"since": "yesterday"}, "since"),
        ("/changes/", {"change": "left"}, "change"),
        ("/members/", {"as_of": "nope"}, "as_of"),
        ("/members/", {"as_of": "2000-01-01T00:00:00Z"}, "as_of"),
        ("/members/", {"as_of": format_timestamp(datetime.now(UTC) + timedelta(days=1))}, "as_of"),
        ("/size-history/", {"interval": "week"}, "interval"),
        ("/size-history/", {"until": "2000-01-01T00:00:00Z"}, "since"),  # since after until
    ]:
        r = await api.get(base + path, params=params)
        assert r.status_code == 400, (path, params, r.text)
        assert r.json()["error_code"] == "invalid"
        assert r.json()["errors"][0]["loc"] == ["query", loc], r.json()
    assert (
        await api.get("/profile-groups/00000000-0000-0000-0000-000000000000/changes/")
    ).status_code == 404


async def set_occurred(
    sessionmaker: AsyncSessionMaker, group_id: str, times: list[datetime]
) -> None:
    """Spread a group's recorded timeline over the past: the i-th change (in id order) at
    times[i], an entry's membership starting then, an exit's member_since its entry's time."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "WITH t AS (SELECT id, (CAST(:times AS timestamptz[]))[row_number() OVER "
                "(ORDER BY id)] AS at FROM membership_changes WHERE group_id = :g) "
                "UPDATE membership_changes c SET occurred_at = t.at FROM t WHERE c.id = t.id"
            ),
            {"g": group_id, "times": times},
        )
        await session.execute(
            text(
                "UPDATE membership_changes x SET member_since = (SELECT max(e.occurred_at) FROM "
                "membership_changes e WHERE e.group_id = x.group_id AND e.profile_id = "
                "x.profile_id AND e.change = 'entered' AND e.id < x.id) "
                "WHERE x.group_id = :g AND x.change = 'exited'"
            ),
            {"g": group_id},
        )
        await session.execute(
            text(
                "UPDATE group_memberships m SET created_at = (SELECT max(e.occurred_at) FROM "
                "membership_changes e WHERE e.group_id = m.group_id AND e.profile_id = "
                "m.profile_id AND e.change = 'entered') WHERE m.group_id = :g"
            ),
            {"g": group_id},
        )
        # The log began before this timeline.
        await session.execute(
            text("UPDATE membership_change_log SET started_at = :t"),
            {"t": times[0] - timedelta(days=1)},
        )


async def test_members_as_of_and_size_history_follow_a_recorded_timeline(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    a, b, c = [await new_profile(api, nickname=n) for n in "abc"]
    group = await static_group(api)
    path = f"/profile-groups/{group}/members/"

    async def add(*ps: dict[str, Any]) -> None:
        await api.post(path, json={"profile_ids": [p["id"] for p in ps]})

    async def remove(*ps: dict[str, Any]) -> None:
        await api.request("DELETE", path, json={"profile_ids": [p["id"] for p in ps]})

    # Day 0: a and b enter; day 1: b leaves; day 2: c enters; day 3: a leaves, b comes back.
    await add(a, b)
    await remove(b)
    await add(c)
    await remove(a)
    await add(b)
    day0 = (datetime.now(UTC) - timedelta(days=5)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    days = [day0 + timedelta(days=d) for d in (0, 0, 1, 2, 3, 3)]
    # Ids in commit order: a+, b+ (one statement), b-, c+, a-, b+.
    async with sessionmaker() as session:
        started = (
            await session.execute(text("SELECT started_at FROM membership_change_log"))
        ).scalar_one()
    await set_occurred(sessionmaker, group, days)
    await api.delete(f"/profiles/{c['id']}/")  # day 5 (now): c leaves by deletion

    async def at(when: datetime) -> dict[str, str]:
        r = await api.get(path, params={"as_of": format_timestamp(when), "page_size": 1})
        assert r.status_code == 200, r.text
        body = r.json()
        out = {m["id"]: m["membership_created_at"] for m in body["results"]}
        while body["next"]:
            body = (await api.client.get(body["next"], headers=api.tenant.headers)).json()
            out.update({m["id"]: m["membership_created_at"] for m in body["results"]})
        assert len(out) == r.json()["count"]
        return out

    hour = timedelta(hours=1)
    assert await at(day0 - hour) == {}
    ts = format_timestamp
    assert await at(day0 + hour) == {a["id"]: ts(days[0]), b["id"]: ts(days[1])}
    assert await at(days[2] + hour) == {a["id"]: ts(days[0])}
    assert await at(days[3] + hour) == {a["id"]: ts(days[0]), c["id"]: ts(days[3])}
    assert await at(days[4] + hour) == {c["id"]: ts(days[3]), b["id"]: ts(days[5])}
    # A deleted profile is still listed as the member it was, with its logged custom_id.
    r = await api.get(path, params={"as_of": ts(days[3] + hour)})
    gone = next(m for m in r.json()["results"] if m["id"] == c["id"])
    assert gone["nickname"] is None
    # Newest membership first.
    assert [m["id"] for m in r.json()["results"]] == [c["id"], a["id"]]

    r = await api.get(
        f"/profile-groups/{group}/size-history/",
        params={"since": ts(day0 - timedelta(days=1)), "interval": "day"},
    )
    assert r.status_code == 200, r.text
    rows = [(x["profile_count"], x["entered"], x["exited"]) for x in r.json()["results"]]
    # One row per UTC day from the day before day 0 to today (c's deletion).
    assert rows == [(0, 0, 0), (2, 2, 0), (1, 0, 1), (2, 1, 0), (2, 1, 1), (2, 0, 0), (1, 0, 1)]
    assert r.json()["results"][1]["at"] == ts(day0.replace(hour=0))
    r = await api.get(
        f"/profile-groups/{group}/size-history/",
        params={"since": ts(days[3]), "until": ts(days[3] + 3 * hour), "interval": "hour"},
    )
    assert [(x["profile_count"], x["entered"]) for x in r.json()["results"]] == [
        (2, 1),
        (2, 0),
        (2, 0),
        (2, 0),
    ]
    # Before the log began: refused.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE membership_change_log SET started_at = :t"), {"t": days[2]}
        )
    r = await api.get(path, params={"as_of": ts(day0)})
    assert r.status_code == 400 and r.json()["errors"][0]["loc"] == ["query", "as_of"]
    assert ts(days[2]) in r.json()["detail"]
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE membership_change_log SET started_at = :t"), {"t": started}
        )


async def test_retention_prunes_old_changes(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    from profile_groups.groups import history

    ps = [await new_profile(api) for _ in range(3)]
    group = await static_group(api)
    await api.post(f"/profile-groups/{group}/members/", json={"profile_ids": [p["id"] for p in ps]})
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE membership_changes SET occurred_at = now() - interval '91 days' "
                "WHERE profile_id = ANY(CAST(:p AS uuid[]))"
            ),
            {"p": [ps[0]["id"], ps[1]["id"]]},
        )
    async with sessionmaker() as session, session.begin():
        assert await history.prune_changes(session, 90, 1) == 1  # bounded batches
    async with sessionmaker() as session, session.begin():
        assert await history.prune_changes(session, 90, 10) == 1
    assert [c["profile_id"] for c in await changes(api, group)] == [ps[2]["id"]]


async def test_a_profiles_group_history(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    p = await new_profile(api, custom_id="me")
    other = await new_profile(api, custom_id="other")
    g1, g2, g3 = await static_group(api), await static_group(api), await static_group(api)
    for g in (g1, g2, g3):
        await api.post(
            f"/profile-groups/{g}/members/", json={"profile_ids": [p["id"], other["id"]]}
        )
    await api.request("DELETE", f"/profile-groups/{g1}/members/", json={"profile_ids": [p["id"]]})
    await api.patch(f"/profile-groups/{g3}/", json={"is_active": False})  # left out, like lists
    r = await api.get(f"/profiles/{p['id']}/group-history/")
    assert r.status_code == 200, r.text
    got = [(c["group_id"], c["change"]) for c in r.json()["results"]]
    assert got[0] == (g1, "exited") and sorted(got[1:]) == sorted(
        [(g1, "entered"), (g2, "entered")]
    )
    assert r.json()["count"] == 3
    ids = [int(c["id"]) for c in r.json()["results"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    r2 = await api.get("/profile-by-custom-id/me/group-history/")
    assert r2.json()["results"] == r.json()["results"]
    # A profile token reads its own history, and no one else's.
    own = bearer(token(api.tenant, custom_profile_id="me"))
    base = api.tenant.base
    r3 = await api.client.get(f"{base}/profile-by-custom-id/me/group-history/", headers=own)
    assert r3.status_code == 200 and r3.json()["results"] == r.json()["results"]
    r4 = await api.client.get(f"{base}/profiles/{other['id']}/group-history/", headers=own)
    assert r4.status_code == 403
    r5 = await api.client.get(f"{base}/profile-groups/{g2}/changes/", headers=own)
    assert r5.status_code == 403
    assert (await api.get("/profile-by-custom-id/nobody/group-history/")).status_code == 404


async def test_size_history_is_clipped_to_what_the_log_covers_and_capped(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    group = await static_group(api)
    url = f"/profile-groups/{group}/size-history/"
    async with sessionmaker() as session, session.begin():
        started = (
            await session.execute(text("SELECT started_at FROM membership_change_log"))
        ).scalar_one()
    # Before the log began (or the retention horizon): the rows start at the interval holding
    # the earliest instant it covers, not earlier.
    r = await api.get(url, params={"since": "2000-01-01T00:00:00Z", "interval": "day"})
    assert r.status_code == 200, r.text
    earliest = max(started, datetime.now(UTC) - timedelta(days=90))
    assert r.json()["results"][0]["at"] == format_timestamp(
        earliest.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    assert {x["profile_count"] for x in r.json()["results"]} == {0}
    # More than 1,000 intervals: refused, naming the limit.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE membership_change_log SET started_at = now() - interval '1 year'")
        )
    since = format_timestamp(datetime.now(UTC) - timedelta(days=60))
    r = await api.get(url, params={"since": since, "interval": "hour"})
    assert r.status_code == 400 and "1000" in r.json()["detail"], r.text
    r = await api.get(url, params={"since": since, "interval": "day"})
    assert r.status_code == 200 and len(r.json()["results"]) == 61
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE membership_change_log SET started_at = :t"), {"t": started}
        )
