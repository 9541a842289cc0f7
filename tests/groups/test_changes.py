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
    assert [(c["profile_id"], c["custom_id"], c["change"]) for c in got[:2]] == sorted(
        [(a["id"], "a", "entered"), (b["id"], "b", "entered")]
    ) or {(c["profile_id"], c["custom_id"]) for c in got[:2]} == {(a["id"], "a"), (b["id"], "b")}
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
        ("/size-history/", {"since": "2000-01-01T00:00:00Z"}, "since"),
        (
            "/size-history/",
            {"interval": "hour", "since": format_timestamp(datetime.now(UTC) - timedelta(days=60))},
            "since",
        ),
    ]:
        r = await api.get(base + path, params=params)
        assert r.status_code == 400, (path, params, r.text)
        assert r.json()["error_code"] == "invalid"
        assert r.json()["errors"][0]["loc"] == ["query", loc], r.json()
    assert (
        await api.get("/profile-groups/00000000-0000-0000-0000-000000000000/changes/")
    ).status_code == 404
