"""Custom attributes (docs/profiles.md): definitions, and the values profiles may hold."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from profile_groups.attributes.registry import PLATFORM_ATTRIBUTES
from profile_groups.db import AsyncSessionMaker
from tests.conftest import Api, Tenant
from tests.profiles.helpers import TIMESTAMP, assert_invalid, count_profiles, create, define

NOT_FOUND = {"detail": "Not found.", "error_code": "not_found"}


# Definitions -------------------------------------------------------------------------------


async def test_create_and_get_definition(api: Api) -> None:
    r = await api.post(
        "/custom-attributes/",
        json={"key": "toxicity_score", "data_type": "number", "description": "0 to 1"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"key", "data_type", "description", "created_at", "updated_at"}
    assert body["key"] == "toxicity_score" and body["data_type"] == "number"
    assert body["description"] == "0 to 1"
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])
    r = await api.get("/custom-attributes/toxicity_score/")
    assert r.status_code == 200 and r.json() == body
    r = await api.post("/custom-attributes/", json={"key": "team", "data_type": "string"})
    assert r.status_code == 201 and r.json()["description"] == ""


async def test_duplicate_key_is_409(api: Api) -> None:
    await define(api, "score", "number")
    r = await api.post("/custom-attributes/", json={"key": "score", "data_type": "string"})
    assert r.status_code == 409 and r.json()["error_code"] == "conflict"
    assert (await api.get("/custom-attributes/score/")).json()["data_type"] == "number"


@pytest.mark.parametrize(
    "key",
    ["", "Score", "1score", "_score", "score-x", "score x", "a" * 64, "scoré", 5, None],
)
async def test_bad_keys_are_400(api: Api, key: Any) -> None:
    r = await api.post("/custom-attributes/", json={"key": key, "data_type": "number"})
    assert_invalid(r, ["body", "key"])
    assert (await api.get("/custom-attributes/")).json()["count"] == 0


async def test_key_limits_accepted(api: Api) -> None:
    for key in ("a", "a" * 63, "a_1_b", "z9"):
        await define(api, key, "boolean")


@pytest.mark.parametrize(
    "key", ["total_comments_posted", "created_at", "nickname", "custom_id", "tier_upragde_count"]
)
async def test_platform_keys_are_refused(api: Api, key: str) -> None:
    r = await api.post("/custom-attributes/", json={"key": key, "data_type": "number"})
    assert_invalid(r, ["body", "key"])
    assert "platform" in r.json()["errors"][0]["msg"]


async def test_every_platform_key_is_refused(api: Api) -> None:
    for key in PLATFORM_ATTRIBUTES:
        r = await api.post("/custom-attributes/", json={"key": key, "data_type": "number"})
        assert r.status_code == 400, key
    assert (await api.get("/custom-attributes/")).json()["count"] == 0


async def test_bad_definition_bodies(api: Api) -> None:
    for body in (
        {"key": "k"},
        {"key": "k", "data_type": "integer"},
        {"key": "k", "data_type": "number", "description": "x" * 2001},
        {"key": "k", "data_type": "number", "extra": 1},
        {"data_type": "number"},
    ):
        assert_invalid(await api.post("/custom-attributes/", json=body))
    r = await api.post(
        "/custom-attributes/", json={"key": "k", "data_type": "number", "description": "x" * 2000}
    )
    assert r.status_code == 201


async def test_list_definitions_paginated(api: Api) -> None:
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        await define(api, key, "string")
    seen: list[str] = []
    r = await api.get("/custom-attributes/", params={"page_size": 2})
    while True:
        body = r.json()
        assert body["count"] == 5
        seen.extend(a["key"] for a in body["results"])
        if body["next"] is None:
            break
        r = await api.client.get(body["next"], headers=api.tenant.headers)
    assert sorted(seen) == keys and len(seen) == 5


async def test_patch_changes_only_the_description(api: Api) -> None:
    r = await api.post(
        "/custom-attributes/", json={"key": "score", "data_type": "number", "description": "a"}
    )
    before = r.json()
    r = await api.patch("/custom-attributes/score/", json={"description": "b"})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["description"] == "b" and after["data_type"] == "number"
    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] >= before["updated_at"]
    for body in (
        {"data_type": "string"},
        {"key": "other"},
        {"description": None},
        {"description": "x" * 2001},
        {"unknown": 1},
    ):
        assert_invalid(await api.patch("/custom-attributes/score/", json=body))
    r = await api.patch("/custom-attributes/score/", json={"data_type": "string"})
    assert "cannot be changed" in r.json()["detail"]
    assert (await api.get("/custom-attributes/score/")).json() == after
    r = await api.patch("/custom-attributes/nope/", json={"description": "x"})
    assert r.status_code == 404 and r.json() == NOT_FOUND


async def test_delete_definition_removes_values(api: Api) -> None:
    await define(api, "score", "number")
    await define(api, "team", "string")
    p = await create(api, custom_attributes={"score": 1, "team": "Reds"})
    r = await api.delete("/custom-attributes/score/")
    assert r.status_code == 204 and r.content == b""
    assert (await api.get("/custom-attributes/score/")).status_code == 404
    assert (await api.delete("/custom-attributes/score/")).status_code == 404
    got = (await api.get(f"/profiles/{p['id']}/")).json()
    assert got["custom_attributes"] == {"team": "Reds"}
    # Once deleted, the key is unknown; defined again with another type, it starts empty.
    r = await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"score": 2}})
    assert_invalid(r, ["body", "custom_attributes", "score"])
    await define(api, "score", "string")
    r = await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"score": "high"}})
    assert r.status_code == 200 and r.json()["custom_attributes"] == {
        "team": "Reds",
        "score": "high",
    }


async def test_definitions_are_per_application(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    api_a, api_b = Api(client, tenant), Api(client, other_tenant)
    await define(api_a, "score", "number")
    assert (await api_b.get("/custom-attributes/score/")).status_code == 404
    assert (await api_b.get("/custom-attributes/")).json()["count"] == 0
    assert (
        await api_b.patch("/custom-attributes/score/", json={"description": "x"})
    ).status_code == 404
    assert (await api_b.delete("/custom-attributes/score/")).status_code == 404
    # B has no such key: its profiles cannot use it.
    r = await api_b.post("/profiles/", json={"custom_attributes": {"score": 1}})
    assert_invalid(r, ["body", "custom_attributes", "score"])
    await define(api_b, "score", "string")
    assert (await api_a.get("/custom-attributes/score/")).json()["data_type"] == "number"
    # B's token on A's path.
    for method, path in (
        ("GET", "/custom-attributes/"),
        ("POST", "/custom-attributes/"),
        ("GET", "/custom-attributes/score/"),
        ("PATCH", "/custom-attributes/score/"),
        ("DELETE", "/custom-attributes/score/"),
    ):
        r = await client.request(method, tenant.base + path, headers=other_tenant.headers, json={})
        assert r.status_code == 403, (method, path)
        r = await client.request(method, tenant.base + path, json={})
        assert r.status_code == 401, (method, path)


# Values on profiles ------------------------------------------------------------------------


async def define_all(api: Api) -> None:
    await define(api, "score", "number")
    await define(api, "team", "string")
    await define(api, "vip", "boolean")
    await define(api, "seen_at", "datetime")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("score", 0),
        ("score", -3),
        ("score", 0.25),
        ("score", 10**15),
        ("team", ""),
        ("team", "x" * 2000),
        ("team", "Reds 100% _fans_"),
        ("vip", True),
        ("vip", False),
    ],
)
async def test_valid_values_are_stored_as_given(api: Api, key: str, value: Any) -> None:
    await define_all(api)
    p = await create(api, custom_attributes={key: value})
    assert p["custom_attributes"] == {key: value}
    assert (await api.get(f"/profiles/{p['id']}/")).json()["custom_attributes"] == {key: value}


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2025-04-28T12:16:49.670053Z", "2025-04-28T12:16:49.670053Z"),
        ("2025-04-28T12:16:49Z", "2025-04-28T12:16:49.000000Z"),
        ("2025-04-28T12:16:49", "2025-04-28T12:16:49.000000Z"),  # naive = UTC
        ("2025-04-28T14:16:49.5+02:00", "2025-04-28T12:16:49.500000Z"),
        ("2025-04-28T00:30:00-05:00", "2025-04-28T05:30:00.000000Z"),
        ("2025-04-28", "2025-04-28T00:00:00.000000Z"),
        ("0099-01-01T00:00:00Z", "0099-01-01T00:00:00.000000Z"),
    ],
)
async def test_datetime_values_are_normalized_to_utc(api: Api, given: str, stored: str) -> None:
    await define_all(api)
    p = await create(api, custom_attributes={"seen_at": given})
    assert p["custom_attributes"] == {"seen_at": stored}


async def test_stored_datetimes_cast_and_compare_in_sql(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    await define_all(api)
    early = await create(api, custom_attributes={"seen_at": "2025-01-01T10:00:00+09:00"})
    late = await create(api, custom_attributes={"seen_at": "2025-01-01T02:00:00"})
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT id::text FROM profiles "
                "WHERE (custom_attributes->>'seen_at')::timestamptz > '2025-01-01T01:30:00Z' "
                "ORDER BY (custom_attributes->>'seen_at')::timestamptz"
            )
        )
        assert [r[0] for r in rows] == [late["id"]]
        rows = await session.execute(
            text("SELECT id::text FROM profiles ORDER BY custom_attributes->>'seen_at'")
        )
        assert [r[0] for r in rows] == [early["id"], late["id"]]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("score", "1", "number"),
        ("score", True, "number"),
        ("score", [1], "number"),
        ("score", {"v": 1}, "number"),
        ("team", 5, "string"),
        ("team", "x" * 2001, "string"),
        ("team", False, "string"),
        ("vip", "true", "boolean"),
        ("vip", 1, "boolean"),
        ("seen_at", "yesterday", "datetime"),
        ("seen_at", 1714300000, "datetime"),
        ("seen_at", "2025-13-01T00:00:00Z", "datetime"),
        ("seen_at", True, "datetime"),
    ],
)
async def test_wrong_types_are_400_naming_key_and_type(
    api: Api, key: str, value: Any, expected: str
) -> None:
    await define_all(api)
    for method, path in (
        ("POST", "/profiles/"),
        ("PUT", f"/profiles/{uuid.uuid4()}/"),
    ):
        r = await api.request(method, path, json={"custom_attributes": {key: value}})
        assert_invalid(r, ["body", "custom_attributes", key])
        (error,) = r.json()["errors"]
        assert key in error["msg"] and expected in error["msg"], error
        assert key in r.json()["detail"]
    assert await count_profiles(api) == 0


async def test_non_finite_numbers_are_refused(api: Api) -> None:
    await define_all(api)
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        r = await api.post(
            "/profiles/",
            content=b'{"custom_attributes": {"score": ' + literal + b"}}",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400, literal
    assert await count_profiles(api) == 0


async def test_undefined_keys_are_400_and_every_error_is_reported(api: Api) -> None:
    await define_all(api)
    r = await api.post(
        "/profiles/",
        json={"custom_attributes": {"undefined_key": 1, "score": "x", "vip": True}},
    )
    assert_invalid(r)
    errors = {tuple(e["loc"]): e for e in r.json()["errors"]}
    assert set(errors) == {
        ("body", "custom_attributes", "undefined_key"),
        ("body", "custom_attributes", "score"),
    }
    assert "undefined_key" in errors[("body", "custom_attributes", "undefined_key")]["msg"]
    assert "not a defined" in errors[("body", "custom_attributes", "undefined_key")]["msg"]
    assert await count_profiles(api) == 0


async def test_null_means_unset(api: Api) -> None:
    await define_all(api)
    p = await create(api, custom_attributes={"score": None, "team": "Reds", "undefined": None})
    assert p["custom_attributes"] == {"team": "Reds"}
    r = await api.put(f"/profiles/{p['id']}/", json={"custom_attributes": {"team": None}})
    assert r.status_code == 200 and r.json()["custom_attributes"] == {}


async def test_patch_value_errors_change_nothing(api: Api) -> None:
    await define_all(api)
    p = await create(api, custom_attributes={"score": 1, "vip": True})
    r = await api.patch(
        f"/profiles/{p['id']}/",
        json={"nickname": "x", "custom_attributes": {"score": 2, "vip": "no", "team": None}},
    )
    assert_invalid(r, ["body", "custom_attributes", "vip"])
    assert (await api.get(f"/profiles/{p['id']}/")).json() == p


async def test_bulk_item_value_errors_are_per_item(api: Api) -> None:
    await define_all(api)
    r = await api.post(
        "/profiles/bulk/",
        json={
            "profiles": [
                {"custom_id": "ok", "custom_attributes": {"seen_at": "2025-01-01T00:00:00+01:00"}},
                {"custom_id": "bad", "custom_attributes": {"vip": "yes", "score": "x"}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] == 1
    ((error),) = body["errors"]
    assert error["index"] == 1
    assert "vip" in error["detail"] and "boolean" in error["detail"]
    assert "score" in error["detail"] and "number" in error["detail"]
    ok = (await api.get("/profile-by-custom-id/ok/")).json()
    assert ok["custom_attributes"] == {"seen_at": "2024-12-31T23:00:00.000000Z"}


async def test_delete_is_409_while_an_active_dynamic_group_uses_the_key(api: Api) -> None:
    await define(api, "toxicity_score", "number")
    await define(api, "unused", "number")
    p = await create(api, custom_attributes={"toxicity_score": 0.9})
    tree = {
        "operator": "AND",
        "children": [
            {
                "operator": "OR",
                "children": [
                    {"attribute": "toxicity_score", "condition": "greater_than", "value": 0.5}
                ],
            }
        ],
    }
    r = await api.post(
        "/profile-groups/",
        json={"name": "Toxic", "membership_type": "dynamic", "rule_tree": tree},
    )
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    r = await api.delete("/custom-attributes/toxicity_score/")
    assert r.status_code == 409, r.text
    assert r.json()["error_code"] == "conflict"
    assert "Toxic" in r.json()["detail"] and gid in r.json()["detail"]
    # Nothing changed: the definition and the profile's value are still there.
    assert (await api.get("/custom-attributes/toxicity_score/")).status_code == 200
    got = (await api.get(f"/profiles/{p['id']}/")).json()
    assert got["custom_attributes"] == {"toxicity_score": 0.9}
    # Other keys are free to go.
    assert (await api.delete("/custom-attributes/unused/")).status_code == 204
    # Once the group is inactive the key is no longer in use.
    assert (
        await api.patch(f"/profile-groups/{gid}/", json={"is_active": False})
    ).status_code == 200
    assert (await api.delete("/custom-attributes/toxicity_score/")).status_code == 204
