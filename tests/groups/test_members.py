"""Static membership: add/remove, listing, checks, pagination and concurrency (docs/groups.md)."""

import asyncio
import random
import uuid
from typing import Any

import httpx

from profile_groups.db import AsyncSessionMaker
from tests.conftest import Api
from tests.factories import make_profiles, membership_rows

BOTH_OR_NEITHER = "Either 'profile_ids' or 'custom_ids' must be provided, not both."


async def _group(api: Api) -> str:
    r = await api.post("/profile-groups/", json={"name": "G"})
    return str(r.json()["id"])


async def _count(api: Api, gid: str) -> int:
    return int((await api.get(f"/profile-groups/{gid}/")).json()["profile_count"])


async def test_add_reports_added_already_and_invalid(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    gid = await _group(api)
    p1, p2, p3 = await make_profiles(sessionmaker, api.tenant, 3, custom_ids=["c1", "c2", "c3"])
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [p1]})
    assert r.json() == {"successfully_added": [p1], "already_added": [], "invalid_ids": []}
    unknown = str(uuid.uuid4())
    r = await api.post(
        f"/profile-groups/{gid}/members/",
        json={"profile_ids": [p1, p2, p2, "not-a-uuid", unknown, p3]},
    )
    assert r.status_code == 200
    assert r.json() == {
        "successfully_added": [p2, p3],
        "already_added": [p1],
        "invalid_ids": ["not-a-uuid", unknown],
    }
    assert await _count(api, gid) == 3
    r = await api.post(
        f"/profile-groups/{gid}/members/", json={"custom_ids": ["c1", "nobody", "c1"]}
    )
    assert r.json() == {
        "successfully_added": [],
        "already_added": ["c1"],
        "invalid_ids": ["nobody"],
    }
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": []})
    assert r.json() == {"successfully_added": [], "already_added": [], "invalid_ids": []}


async def test_both_or_neither_id_lists_is_400(api: Api) -> None:
    gid = await _group(api)
    for method in ("POST", "DELETE"):
        for body in ({}, {"profile_ids": [], "custom_ids": []}):
            r = await api.request(method, f"/profile-groups/{gid}/members/", json=body)
            assert r.status_code == 400, (method, body)
            assert r.json()["detail"] == BOTH_OR_NEITHER
            assert r.json()["error_code"] == "invalid"


async def test_over_limit_and_bad_bodies(api: Api) -> None:
    gid = await _group(api)
    ids = [str(uuid.uuid4()) for _ in range(10_001)]
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": ids})
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["body", "profile_ids"]
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": "abc"})
    assert r.status_code == 400
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [1, 2]})
    assert r.status_code == 400
    r = await api.post(
        f"/profile-groups/{gid}/members/",
        content=b"[",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    unknown = str(uuid.uuid4())
    r = await api.post(f"/profile-groups/{unknown}/members/", json={"profile_ids": []})
    assert r.status_code == 404
    assert await _count(api, gid) == 0


async def test_add_ten_thousand_in_one_request(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    gid = await _group(api)
    pids = await make_profiles(sessionmaker, api.tenant, 10_000)
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": pids})
    assert r.status_code == 200
    assert len(r.json()["successfully_added"]) == 10_000
    assert await _count(api, gid) == 10_000 == await membership_rows(sessionmaker, gid)


async def test_remove(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    gid = await _group(api)
    pids = await make_profiles(sessionmaker, api.tenant, 4, custom_ids=["a", "b", "c", "d"])
    await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": pids[:3]})
    r = await api.delete(
        f"/profile-groups/{gid}/members/", json={"profile_ids": [pids[0], pids[3], "junk"]}
    )
    assert r.status_code == 204
    assert await _count(api, gid) == 2
    r = await api.delete(
        f"/profile-groups/{gid}/members/", json={"application_profile_ids": [pids[1]]}
    )
    assert r.status_code == 204
    r = await api.delete(f"/profile-groups/{gid}/members/", json={"custom_ids": ["c", "c", "zz"]})
    assert r.status_code == 204
    assert await _count(api, gid) == 0 == await membership_rows(sessionmaker, gid)
    # The synonym is for removal only.
    r = await api.post(f"/profile-groups/{gid}/members/", json={"application_profile_ids": pids})
    assert r.status_code == 400


async def test_membership_check(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    gid = await _group(api)
    p1, p2 = await make_profiles(sessionmaker, api.tenant, 2, nicknames=["Final Horse", None])
    await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [p1]})
    r = await api.get(f"/profile-groups/{gid}/members/{p1}/")
    assert r.status_code == 200
    member = r.json()
    assert (
        member["id"] == p1 and member["nickname"] == "Final Horse" and member["custom_id"] is None
    )
    assert member["membership_created_at"].endswith("Z")
    assert (await api.get(f"/profile-groups/{gid}/members/{p2}")).status_code == 404
    assert (await api.get(f"/profile-groups/{gid}/members/junk/")).status_code == 404


async def test_profile_groups_listing(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    (pid,) = await make_profiles(sessionmaker, api.tenant, 1, custom_ids=["me"])
    gids = [await _group(api) for _ in range(3)]
    for gid in gids:
        await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [pid]})
    r = await api.get(f"/profiles/{pid}/profile-groups/?page_size=2")
    body = r.json()
    assert body["count"] == 3
    assert [g["group_id"] for g in body["results"]] == [gids[2], gids[1]]
    r2 = await api.client.get(body["next"], headers=api.tenant.headers)
    assert [g["group_id"] for g in r2.json()["results"]] == [gids[0]]
    r = await api.get("/profile-by-custom-id/me/profile-groups/")
    assert r.json()["count"] == 3
    assert (await api.get("/profile-by-custom-id/nobody/profile-groups/")).status_code == 404
    assert (await api.get(f"/profiles/{uuid.uuid4()}/profile-groups/")).status_code == 404


async def test_pagination_walks_2500_members_both_ways(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    gid = await _group(api)
    pids = await make_profiles(sessionmaker, api.tenant, 2500)
    # Three requests, so memberships carry different created_at values as well as ties.
    for chunk in (pids[:1000], pids[1000:2000], pids[2000:]):
        await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": chunk})

    pages: list[dict[str, Any]] = []
    r = await api.get(f"/profile-groups/{gid}/members/?page_size=1000")
    while True:
        assert r.status_code == 200
        pages.append(r.json())
        if not pages[-1]["next"]:
            break
        r = await api.client.get(pages[-1]["next"], headers=api.tenant.headers)
    assert [len(p["results"]) for p in pages] == [1000, 1000, 500]
    assert all(p["count"] == 2500 for p in pages)
    assert pages[0]["previous"] is None
    forward = [m["id"] for p in pages for m in p["results"]]
    assert sorted(forward) == sorted(pids)
    stamps = [m["membership_created_at"] for p in pages for m in p["results"]]
    assert stamps == sorted(stamps, reverse=True)  # newest membership first

    backward: list[str] = []
    page = pages[-1]
    backward = [m["id"] for m in page["results"]]
    while page["previous"]:
        page = (await api.client.get(page["previous"], headers=api.tenant.headers)).json()
        backward = [m["id"] for m in page["results"]] + backward
    assert backward == forward


async def test_bad_page_parameters(api: Api) -> None:
    gid = await _group(api)
    for query in ("page_size=0", "page_size=1001", "page_size=x", "cursor=garbage"):
        r = await api.get(f"/profile-groups/{gid}/members/?{query}")
        assert r.status_code == 400, query
        assert r.json()["error_code"] == "invalid"


async def test_tampered_cursor_is_400(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    gid = await _group(api)
    pids = await make_profiles(sessionmaker, api.tenant, 3)
    await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": pids})
    body = (await api.get(f"/profile-groups/{gid}/members/?page_size=1")).json()
    url = httpx.URL(body["next"])
    cursor = url.params["cursor"]
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    r = await api.client.get(url.copy_set_param("cursor", tampered), headers=api.tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_concurrent_overlapping_adds_and_removes_keep_count_exact(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    gid = await _group(api)
    pids = await make_profiles(sessionmaker, api.tenant, 300)
    rng = random.Random(7)

    async def one(i: int) -> httpx.Response:
        ids = rng.sample(pids, 60)
        if i % 3 == 2:
            return await api.delete(f"/profile-groups/{gid}/members/", json={"profile_ids": ids})
        return await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": ids})

    responses = await asyncio.gather(*(one(i) for i in range(40)))
    assert all(r.status_code in (200, 204) for r in responses), [r.text for r in responses]
    rows = await membership_rows(sessionmaker, gid)
    listed = (await api.get(f"/profile-groups/{gid}/members/?page_size=1000")).json()
    assert await _count(api, gid) == rows == listed["count"] == len(listed["results"])
    assert rows > 0


async def test_member_adds_racing_profile_deletes_are_not_conflicts(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    """Adds of many profiles while some of them are deleted: the races (deadlocks, vanished
    profiles) are retried inside the service, so no request answers 409, and the count holds."""
    gid = (await api.post("/profile-groups/", json={"name": "race"})).json()["id"]
    statuses: list[int] = []
    for _ in range(8):
        ids = await make_profiles(sessionmaker, api.tenant, 40)
        doomed = ids[::4]
        results = await asyncio.gather(
            api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": ids}),
            api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": ids[::-1]}),
            *(api.delete(f"/profiles/{pid}/") for pid in doomed),
        )
        statuses += [r.status_code for r in results]
    assert 409 not in statuses, statuses
    r = await api.get(f"/profile-groups/{gid}/")
    assert r.json()["profile_count"] == await membership_rows(sessionmaker, gid) == 8 * 30
