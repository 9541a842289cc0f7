"""Profiles: every endpoint, its 4xx answers, tenancy; failures change nothing."""

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import text

from profile_groups.db import AsyncSessionMaker
from tests.conftest import Api, Tenant
from tests.profiles.helpers import (
    NOT_FOUND,
    TIMESTAMP,
    assert_invalid,
    count_profiles,
    create,
    define,
)

# Create ------------------------------------------------------------------------------------


async def test_create_minimal_profile(api: Api) -> None:
    r = await api.post("/profiles/", json={})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {
        "id",
        "custom_id",
        "nickname",
        "custom_attributes",
        "created_at",
        "updated_at",
    }
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["custom_id"] is None and body["nickname"] is None
    assert body["custom_attributes"] == {}
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])
    r = await api.get(f"/profiles/{body['id']}/")
    assert r.status_code == 200
    assert r.json() == body


async def test_create_with_client_id_and_created_at(api: Api) -> None:
    pid = str(uuid.uuid4())
    body = await create(
        api, id=pid, custom_id="user-1", nickname="Final Horse", created_at="2024-01-02T03:04:05"
    )
    assert body["id"] == pid
    assert body["custom_id"] == "user-1"
    assert body["nickname"] == "Final Horse"
    # A timestamp without a zone is UTC.
    assert body["created_at"] == "2024-01-02T03:04:05.000000Z"
    body = await create(api, created_at="2024-01-02T03:04:05.5+02:00")
    assert body["created_at"] == "2024-01-02T01:04:05.500000Z"


async def test_create_uppercase_id_is_rendered_lowercase(api: Api) -> None:
    pid = uuid.uuid4()
    body = await create(api, id=str(pid).upper())
    assert body["id"] == str(pid)


async def test_create_duplicate_id_or_custom_id_is_409_and_changes_nothing(api: Api) -> None:
    first = await create(api, custom_id="c1", nickname="one")
    r = await api.post("/profiles/", json={"id": first["id"], "nickname": "two"})
    assert r.status_code == 409, r.text
    assert r.json()["error_code"] == "conflict"
    assert "id" in r.json()["detail"]
    r = await api.post("/profiles/", json={"custom_id": "c1", "nickname": "three"})
    assert r.status_code == 409
    assert "custom_id" in r.json()["detail"]
    assert await count_profiles(api) == 1
    r = await api.get(f"/profiles/{first['id']}/")
    assert r.json() == first


async def test_create_limits_and_types(api: Api) -> None:
    assert_invalid(
        await api.post("/profiles/", json={"custom_id": "x" * 256}), ["body", "custom_id"]
    )
    assert_invalid(await api.post("/profiles/", json={"nickname": "x" * 256}), ["body", "nickname"])
    assert_invalid(await api.post("/profiles/", json={"custom_id": ""}), ["body", "custom_id"])
    assert_invalid(await api.post("/profiles/", json={"id": "not-a-uuid"}), ["body", "id"])
    assert_invalid(await api.post("/profiles/", json={"nickname": 5}), ["body", "nickname"])
    assert_invalid(
        await api.post("/profiles/", json={"created_at": "yesterday"}), ["body", "created_at"]
    )
    assert_invalid(await api.post("/profiles/", json={"created_at": None}))
    assert_invalid(await api.post("/profiles/", json={"custom_attributes": [1]}))
    # Unknown fields are refused, so a typo never passes silently.
    assert_invalid(await api.post("/profiles/", json={"nick_name": "x"}), ["body", "nick_name"])
    assert_invalid(await api.post("/profiles/", json=[]))
    # At the limits is fine.
    await create(api, custom_id="x" * 255, nickname="y" * 255)
    assert await count_profiles(api) == 1


async def test_bad_json_wrong_content_type_and_large_body(api: Api) -> None:
    r = await api.post(
        "/profiles/", content=b'{"nickname": ', headers={"Content-Type": "application/json"}
    )
    assert_invalid(r)
    assert r.json()["detail"] == "Malformed JSON in request body."
    r = await api.post("/profiles/", content=b"nickname=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error_code"] == "unsupported_media_type"
    big = b'{"nickname": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = await api.post("/profiles/", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error_code"] == "too_large"
    r = await api.post("/profiles/bulk/", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert await count_profiles(api) == 0


# Auth and tenancy --------------------------------------------------------------------------


async def test_missing_or_invalid_token_is_401(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer pgt_nope"},
        {"Authorization": "Bearer garbage"},
    ):
        for method, path in (
            ("GET", "/profiles/"),
            ("POST", "/profiles/"),
            ("GET", f"/profiles/{uuid.uuid4()}/"),
            ("POST", "/profiles/bulk/"),
        ):
            r = await client.request(method, tenant.base + path, headers=headers, json={})
            assert r.status_code == 401, (headers, path, r.text)
            assert r.json()["error_code"] == "not_authenticated"


async def test_other_tenant_token_is_403(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    api_a = Api(client, tenant)
    profile = await create(api_a, custom_id="a1")
    for method, path in (
        ("GET", "/profiles/"),
        ("POST", "/profiles/"),
        ("GET", f"/profiles/{profile['id']}/"),
        ("PUT", f"/profiles/{profile['id']}/"),
        ("PATCH", f"/profiles/{profile['id']}/"),
        ("DELETE", f"/profiles/{profile['id']}/"),
        ("GET", "/profile-by-custom-id/a1/"),
        ("POST", "/profiles/bulk/"),
    ):
        # B's token on A's path.
        r = await client.request(method, tenant.base + path, headers=other_tenant.headers, json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error_code"] == "permission_denied"
    # A token on a path of a client id that does not exist is also 403 (reveals nothing).
    r = await client.get("/api/v1/applications/nope/profiles/", headers=tenant.headers)
    assert r.status_code == 403
    assert (await api_a.get(f"/profiles/{profile['id']}/")).json() == profile


async def test_a_tenant_never_sees_another_tenants_profile(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    api_a, api_b = Api(client, tenant), Api(client, other_tenant)
    profile = await create(api_a, custom_id="shared", nickname="A's")
    pid = profile["id"]
    assert (await api_b.get(f"/profiles/{pid}/")).json() == NOT_FOUND
    assert (await api_b.get("/profile-by-custom-id/shared/")).status_code == 404
    r = await api_b.get("/profiles/", params={"custom_id": "shared"})
    assert r.json()["count"] == 0 and r.json()["results"] == []
    assert (await api_b.get("/profiles/")).json()["count"] == 0
    assert (await api_b.patch(f"/profiles/{pid}/", json={"nickname": "x"})).status_code == 404
    assert (await api_b.delete(f"/profiles/{pid}/")).status_code == 404
    # B may use the same id and custom_id for its own, separate profile.
    r = await api_b.put(f"/profiles/{pid}/", json={"custom_id": "shared", "nickname": "B's"})
    assert r.status_code == 201, r.text
    r = await api_b.post("/profiles/bulk/", json={"profiles": [{"id": pid, "nickname": "B2"}]})
    assert r.json() == {"created": 0, "updated": 1, "errors": []}
    assert (await api_a.get(f"/profiles/{pid}/")).json() == profile
    assert (await api_b.get(f"/profiles/{pid}/")).json()["nickname"] == "B2"


async def test_malformed_uuid_in_path_is_404(api: Api) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = await api.request(method, "/profiles/not-a-uuid/", json={})
        assert r.status_code == 404, (method, r.text)
        assert r.json() == NOT_FOUND
    r = await api.get(f"/profiles/{uuid.uuid4()}/")
    assert r.status_code == 404 and r.json() == NOT_FOUND


async def test_routes_answer_with_and_without_trailing_slash(api: Api) -> None:
    r = await api.post("/profiles", json={"custom_id": "s"})
    assert r.status_code == 201
    pid = r.json()["id"]
    assert (await api.get(f"/profiles/{pid}")).status_code == 200
    assert (await api.get("/profile-by-custom-id/s")).status_code == 200
    assert (await api.patch(f"/profiles/{pid}", json={"nickname": "n"})).status_code == 200
    assert (await api.post("/profiles/bulk", json={"profiles": []})).status_code == 200
    assert (await api.delete(f"/profiles/{pid}")).status_code == 204


# Read --------------------------------------------------------------------------------------


async def test_get_by_custom_id(api: Api) -> None:
    profile = await create(api, custom_id="user/42?x", nickname="n")
    r = await api.get("/profile-by-custom-id/user%2F42%3Fx/")
    # A custom id with a slash cannot be addressed in a path segment; the list filter can.
    assert r.status_code == 404
    r = await api.get("/profiles/", params={"custom_id": "user/42?x"})
    assert r.json()["results"] == [profile]
    await create(api, custom_id="plain")
    r = await api.get("/profile-by-custom-id/plain/")
    assert r.status_code == 200 and r.json()["custom_id"] == "plain"
    r = await api.get("/profile-by-custom-id/nobody/")
    assert r.status_code == 404 and r.json() == NOT_FOUND


async def test_list_filter_by_custom_id(api: Api) -> None:
    a = await create(api, custom_id="a")
    await create(api, custom_id="b")
    r = await api.get("/profiles/", params={"custom_id": "a"})
    assert r.status_code == 200
    assert r.json() == {"count": 1, "next": None, "previous": None, "results": [a]}
    r = await api.get("/profiles/", params={"custom_id": "zzz"})
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_list_newest_first_keyset_pagination(api: Api) -> None:
    created = []
    for i in range(5):
        created.append(
            await create(api, nickname=f"p{i}", created_at=f"2024-01-0{i + 1}T00:00:00Z")
        )
    # Same created_at: ties are broken by id, still a total order.
    for i in range(2):
        created.append(await create(api, nickname=f"t{i}", created_at="2024-01-03T00:00:00Z"))
    expected = sorted(created, key=lambda p: (p["created_at"], p["id"]), reverse=True)

    seen: list[dict[str, Any]] = []
    r = await api.get("/profiles/", params={"page_size": 3})
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == 7
        assert body["next"] is None or body["next"].startswith("http://testserver/")
        seen.extend(body["results"])
        pages += 1
        if body["next"] is None:
            break
        r = await api.client.get(body["next"], headers=api.tenant.headers)
    assert pages == 3
    assert seen == expected
    # And back again from the last page.
    back = body["results"]
    while body["previous"] is not None:
        r = await api.client.get(body["previous"], headers=api.tenant.headers)
        body = r.json()
        back = body["results"] + back
    assert back == expected


async def test_list_keeps_custom_id_in_links_and_refuses_bad_cursor(api: Api) -> None:
    await create(api, custom_id="a")
    r = await api.get("/profiles/", params={"cursor": "garbage"})
    assert_invalid(r, ["query", "cursor"])
    r = await api.get("/profiles/", params={"page_size": 0})
    assert_invalid(r)
    r = await api.get("/profiles/", params={"page_size": 1001})
    assert_invalid(r)
    await create(api, custom_id="b")
    r = await api.get("/profiles/", params={"page_size": 1})
    nxt = r.json()["next"]
    tampered = nxt[:-3] + ("AAA" if not nxt.endswith("AAA") else "BBB")
    r = await api.client.get(tampered, headers=api.tenant.headers)
    assert_invalid(r, ["query", "cursor"])


# PUT ---------------------------------------------------------------------------------------


async def test_put_creates_then_replaces(api: Api) -> None:
    await define(api, "score", "number")
    await define(api, "team", "string")
    pid = str(uuid.uuid4())
    r = await api.put(
        f"/profiles/{pid}/",
        json={
            "custom_id": "c",
            "nickname": "n",
            "custom_attributes": {"score": 1, "team": "Reds"},
            "created_at": "2024-05-05T05:05:05Z",
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] == pid and created["custom_attributes"] == {"score": 1, "team": "Reds"}
    r = await api.put(
        f"/profiles/{pid}/", json={"nickname": "m", "custom_attributes": {"score": 2}}
    )
    assert r.status_code == 200, r.text
    replaced = r.json()
    # Replaced: fields left out are cleared; created_at is kept.
    assert replaced["custom_id"] is None
    assert replaced["nickname"] == "m"
    assert replaced["custom_attributes"] == {"score": 2}
    assert replaced["created_at"] == "2024-05-05T05:05:05.000000Z"
    assert replaced["updated_at"] >= created["updated_at"]
    # The object read back may be PUT as it is, if its id matches the path.
    r = await api.put(
        f"/profiles/{pid}/",
        json={k: v for k, v in replaced.items() if k != "updated_at"},
    )
    assert r.status_code == 200
    assert await count_profiles(api) == 1


async def test_put_errors_change_nothing(api: Api) -> None:
    await define(api, "score", "number")
    a = await create(api, custom_id="a")
    b = await create(api, custom_id="b", custom_attributes={"score": 1})
    r = await api.put(f"/profiles/{b['id']}/", json={"custom_id": "a"})
    assert r.status_code == 409 and r.json()["error_code"] == "conflict"
    r = await api.put(f"/profiles/{uuid.uuid4()}/", json={"custom_id": "a"})
    assert r.status_code == 409
    r = await api.put(f"/profiles/{b['id']}/", json={"id": a["id"]})
    assert_invalid(r, ["body", "id"])
    r = await api.put(f"/profiles/{b['id']}/", json={"custom_attributes": {"score": "high"}})
    assert_invalid(r, ["body", "custom_attributes", "score"])
    r = await api.put(f"/profiles/{b['id']}/", json={"updated_at": "2024-01-01T00:00:00Z"})
    assert_invalid(r, ["body", "updated_at"])
    assert (await api.get(f"/profiles/{b['id']}/")).json() == b
    assert await count_profiles(api) == 2


# PATCH -------------------------------------------------------------------------------------


async def test_patch_merges_custom_attributes_and_null_removes(api: Api) -> None:
    await define(api, "score", "number")
    await define(api, "team", "string")
    await define(api, "vip", "boolean")
    p = await create(
        api, custom_id="c", nickname="n", custom_attributes={"score": 1, "team": "Reds"}
    )
    r = await api.patch(
        f"/profiles/{p['id']}/",
        json={"custom_attributes": {"score": 2.5, "vip": True, "team": None}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["custom_attributes"] == {"score": 2.5, "vip": True}
    assert body["custom_id"] == "c" and body["nickname"] == "n"
    assert body["created_at"] == p["created_at"]
    assert body["updated_at"] >= p["updated_at"]
    # Removing a key that is not set (or not even defined) is a no-op, not an error.
    r = await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"nope": None}})
    assert r.status_code == 200 and r.json()["custom_attributes"] == {"score": 2.5, "vip": True}
    # Plain fields: only those sent change; null clears custom_id and nickname.
    r = await api.patch(f"/profiles/{p['id']}/", json={"nickname": None, "custom_id": "d"})
    body = r.json()
    assert body["nickname"] is None and body["custom_id"] == "d"
    assert body["custom_attributes"] == {"score": 2.5, "vip": True}
    r = await api.patch(f"/profiles/{p['id']}/", json={"created_at": "2020-02-02T00:00:00Z"})
    assert r.json()["created_at"] == "2020-02-02T00:00:00.000000Z"
    r = await api.patch(f"/profiles/{p['id']}/", json={})
    assert r.status_code == 200
    assert (await api.get(f"/profiles/{p['id']}/")).json() == r.json()


async def test_patch_errors_change_nothing(api: Api) -> None:
    await define(api, "score", "number")
    a = await create(api, custom_id="a")
    b = await create(api, custom_id="b", nickname="bee", custom_attributes={"score": 3})
    r = await api.patch(f"/profiles/{b['id']}/", json={"custom_id": "a", "nickname": "x"})
    assert r.status_code == 409 and r.json()["error_code"] == "conflict"
    r = await api.patch(
        f"/profiles/{b['id']}/", json={"nickname": "x", "custom_attributes": {"score": "x"}}
    )
    assert_invalid(r, ["body", "custom_attributes", "score"])
    for body in (
        {"created_at": None},
        {"custom_attributes": None},
        {"id": a["id"]},
        {"nickname": "x" * 256},
        {"custom_id": ""},
    ):
        assert_invalid(await api.patch(f"/profiles/{b['id']}/", json=body))
    r = await api.patch(f"/profiles/{uuid.uuid4()}/", json={"nickname": "x"})
    assert r.status_code == 404 and r.json() == NOT_FOUND
    assert (await api.get(f"/profiles/{b['id']}/")).json() == b
    assert (await api.get(f"/profiles/{a['id']}/")).json() == a


# DELETE ------------------------------------------------------------------------------------


async def test_delete_profile(api: Api) -> None:
    p = await create(api, custom_id="gone")
    r = await api.delete(f"/profiles/{p['id']}/")
    assert r.status_code == 204 and r.content == b""
    assert (await api.get(f"/profiles/{p['id']}/")).status_code == 404
    assert (await api.get("/profile-by-custom-id/gone/")).status_code == 404
    r = await api.delete(f"/profiles/{p['id']}/")
    assert r.status_code == 404 and r.json() == NOT_FOUND
    # The custom_id is free again.
    await create(api, custom_id="gone")


async def test_delete_updates_profile_count_of_its_groups(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    p1 = await create(api, custom_id="p1")
    p2 = await create(api, custom_id="p2")
    group_ids = []
    for name in ("G1", "G2", "G3"):
        r = await api.post("/profile-groups/", json={"name": name})
        assert r.status_code == 201
        group_ids.append(r.json()["id"])
    g1, g2, g3 = group_ids
    for gid, members in ((g1, [p1, p2]), (g2, [p1]), (g3, [p2])):
        r = await api.post(
            f"/profile-groups/{gid}/members/", json={"profile_ids": [m["id"] for m in members]}
        )
        assert r.status_code == 200, r.text
    r = await api.get(f"/profiles/{p1['id']}/profile-groups/")
    assert r.json()["count"] == 2

    assert (await api.delete(f"/profiles/{p1['id']}/")).status_code == 204

    async def count(gid: str) -> int:
        return int((await api.get(f"/profile-groups/{gid}/")).json()["profile_count"])

    assert [await count(g) for g in group_ids] == [1, 0, 1]
    r = await api.get(f"/profile-groups/{g1}/members/")
    assert [m["id"] for m in r.json()["results"]] == [p2["id"]]
    assert r.json()["count"] == 1
    assert (await api.get(f"/profile-groups/{g2}/members/")).json()["results"] == []
    async with sessionmaker() as session:
        left = await session.execute(
            text("SELECT count(*) FROM group_memberships WHERE profile_id = :p"), {"p": p1["id"]}
        )
        assert left.scalar_one() == 0
        # The stored counts agree with the memberships, group by group.
        drift = await session.execute(
            text(
                "SELECT count(*) FROM profile_groups g WHERE g.profile_count <> "
                "(SELECT count(*) FROM group_memberships m WHERE m.group_id = g.id)"
            )
        )
        assert drift.scalar_one() == 0


async def test_delete_counts_inactive_groups_too(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    p = await create(api)
    r = await api.post("/profile-groups/", json={"name": "G"})
    gid = r.json()["id"]
    await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [p["id"]]})
    r = await api.patch(f"/profile-groups/{gid}/", json={"is_active": False})
    assert r.status_code == 200
    assert (await api.delete(f"/profiles/{p['id']}/")).status_code == 204
    async with sessionmaker() as session:
        count = await session.execute(
            text("SELECT profile_count FROM profile_groups WHERE id = :g"), {"g": gid}
        )
        assert count.scalar_one() == 0


# Bulk --------------------------------------------------------------------------------------


async def test_bulk_creates_and_updates_keeping_valid_items(api: Api) -> None:
    await define(api, "score", "number")
    await define(api, "team", "string")
    by_id = await create(api, nickname="old", custom_attributes={"score": 1, "team": "Reds"})
    await create(api, custom_id="known", nickname="keep")
    new_id = str(uuid.uuid4())
    r = await api.post(
        "/profiles/bulk/",
        json={
            "profiles": [
                {"id": by_id["id"], "nickname": "new", "custom_attributes": {"team": None}},
                {"custom_id": "known", "custom_attributes": {"score": 7}},
                {"id": new_id, "custom_id": "fresh", "created_at": "2023-03-03T03:03:03"},
                {"custom_id": "brand-new", "nickname": "b"},
                {"custom_id": "bad", "custom_attributes": {"score": "high"}},
                {"nickname": "no identity"},
                "not an object",
                {"id": "not-a-uuid"},
                {"custom_id": "x", "custom_attributes": {"undefined": 1}},
                {"custom_id": "x" * 256},
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] == 2 and body["updated"] == 2
    errors = {e["index"]: e["detail"] for e in body["errors"]}
    assert sorted(errors) == [4, 5, 6, 7, 8, 9]
    assert "score" in errors[4] and "number" in errors[4]
    assert "undefined" in errors[8]
    assert "custom_id" in errors[9]

    p = (await api.get(f"/profiles/{by_id['id']}/")).json()
    assert p["nickname"] == "new" and p["custom_attributes"] == {"score": 1}
    assert p["created_at"] == by_id["created_at"]
    p = (await api.get("/profile-by-custom-id/known/")).json()
    assert p["nickname"] == "keep" and p["custom_attributes"] == {"score": 7}
    p = (await api.get(f"/profiles/{new_id}/")).json()
    assert p["custom_id"] == "fresh" and p["created_at"] == "2023-03-03T03:03:03.000000Z"
    p = (await api.get("/profile-by-custom-id/brand-new/")).json()
    assert p["nickname"] == "b"
    assert (await api.get("/profile-by-custom-id/bad/")).status_code == 404
    assert await count_profiles(api) == 4


async def test_bulk_is_idempotent_on_retry(api: Api) -> None:
    items = {"profiles": [{"custom_id": f"u{i}", "nickname": f"n{i}"} for i in range(50)]}
    r = await api.post("/profiles/bulk/", json=items)
    assert r.json() == {"created": 50, "updated": 0, "errors": []}
    r = await api.post("/profiles/bulk/", json=items)
    assert r.json() == {"created": 0, "updated": 50, "errors": []}
    assert await count_profiles(api) == 50


async def test_bulk_conflicts_between_and_within_items(api: Api) -> None:
    a = await create(api, custom_id="a")
    b = await create(api, custom_id="b")
    r = await api.post(
        "/profiles/bulk/",
        json={
            "profiles": [
                {"custom_id": "a", "nickname": "first"},
                {"id": a["id"], "nickname": "same profile again"},
                {"id": b["id"], "custom_id": "a"},  # a's custom_id
                {"custom_id": "new", "nickname": "n1"},
                {"custom_id": "new", "nickname": "n2"},
                {"id": str(uuid.uuid4()), "custom_id": "b"},  # b's custom_id for a new profile
                {"id": b["id"], "custom_id": "b2"},
                {"id": str(uuid.uuid4()), "custom_id": "b2"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] == 1 and body["updated"] == 2
    assert sorted(e["index"] for e in body["errors"]) == [1, 2, 4, 5, 7]
    assert (await api.get(f"/profiles/{a['id']}/")).json()["nickname"] == "first"
    assert (await api.get(f"/profiles/{b['id']}/")).json()["custom_id"] == "b2"
    assert (await api.get("/profile-by-custom-id/new/")).json()["nickname"] == "n1"
    assert await count_profiles(api) == 3


async def test_bulk_limits(api: Api) -> None:
    r = await api.post("/profiles/bulk/", json={"profiles": [{"custom_id": "x"}] * 1001})
    assert_invalid(r, ["body", "profiles"])
    assert "1000" in r.text
    for body in ({}, {"profiles": "x"}, {"profiles": [], "extra": 1}, []):
        assert_invalid(await api.post("/profiles/bulk/", json=body))
    r = await api.post("/profiles/bulk/", json={"profiles": []})
    assert r.json() == {"created": 0, "updated": 0, "errors": []}
    assert await count_profiles(api) == 0
    r = await api.post(
        "/profiles/bulk/", json={"profiles": [{"custom_id": f"c{i}"} for i in range(1000)]}
    )
    assert r.json() == {"created": 1000, "updated": 0, "errors": []}
    assert await count_profiles(api) == 1000


# Concurrency -------------------------------------------------------------------------------


async def test_concurrent_deletes_and_member_changes_keep_counts_exact(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    r = await api.post(
        "/profiles/bulk/", json={"profiles": [{"custom_id": f"p{i}"} for i in range(40)]}
    )
    assert r.json()["created"] == 40
    ids = [
        p["id"] for p in (await api.get("/profiles/", params={"page_size": 100})).json()["results"]
    ]
    doomed, removed, added = ids[:15], ids[15:25], ids[25:]
    gids = []
    for name in ("G1", "G2", "G3"):
        gid = (await api.post("/profile-groups/", json={"name": name})).json()["id"]
        gids.append(gid)
        r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": ids[:25]})
        assert r.status_code == 200

    calls = [api.delete(f"/profiles/{pid}/") for pid in doomed]
    for gid in gids:
        calls.append(api.delete(f"/profile-groups/{gid}/members/", json={"profile_ids": removed}))
        calls.append(api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": added}))
        # Removing a profile that is being deleted at the same time.
        calls.append(
            api.delete(f"/profile-groups/{gid}/members/", json={"profile_ids": doomed[:5]})
        )
    responses = await asyncio.gather(*calls)
    assert all(r.status_code in (200, 204) for r in responses), [
        (r.status_code, r.text) for r in responses if r.status_code not in (200, 204)
    ]
    for gid in gids:
        r = await api.get(f"/profile-groups/{gid}/")
        assert r.json()["profile_count"] == len(added)
    async with sessionmaker() as session:
        drift = await session.execute(
            text(
                "SELECT count(*) FROM profile_groups g WHERE g.profile_count <> "
                "(SELECT count(*) FROM group_memberships m WHERE m.group_id = g.id)"
            )
        )
        assert drift.scalar_one() == 0
    assert await count_profiles(api) == 25


async def test_concurrent_bulk_batches_with_the_same_new_profiles(api: Api) -> None:
    items = [{"custom_id": f"c{i}", "nickname": "x"} for i in range(200)]
    batches = [
        {"profiles": items},
        {"profiles": list(reversed(items))},
        {"profiles": items[50:150]},
    ]
    responses = await asyncio.gather(*(api.post("/profiles/bulk/", json=b) for b in batches))
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert all(b["errors"] == [] for b in bodies)
    assert sum(b["created"] for b in bodies) == 200
    assert sum(b["created"] + b["updated"] for b in bodies) == 500
    assert await count_profiles(api) == 200


async def test_delete_takes_the_profiles_activity_with_it(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    p = await create(api, custom_id="active")
    keep = await create(api, custom_id="stays")
    events = [
        {"type": "comment_posted", "profile_id": p["id"]},
        {
            "type": "leaderboard_ranked",
            "custom_id": "active",
            "properties": {"leaderboard_id": "x"},
        },
        {"type": "comment_posted", "profile_id": keep["id"]},
    ]
    r = await api.post("/events/", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    assert (await api.delete(f"/profiles/{p['id']}/")).status_code == 204
    async with sessionmaker() as session:
        for table in ("events", "profile_activity", "profile_leaderboards"):
            left = await session.execute(
                text(f"SELECT count(*) FROM {table} WHERE profile_id = :p"), {"p": p["id"]}
            )
            assert left.scalar_one() == 0, table
        kept = await session.execute(
            text("SELECT count(*) FROM events WHERE profile_id = :p"), {"p": keep["id"]}
        )
        assert kept.scalar_one() == 1
