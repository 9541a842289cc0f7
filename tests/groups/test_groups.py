"""Profile groups: create/list/get/patch/delete, filters, is_active, tenancy."""

import argparse
from typing import Any

import httpx
from sqlalchemy import ClauseElement, Executable, Select, text
from sqlalchemy.ext.compiler import compiles

from profile_groups.applications.repository import ApplicationRepository
from profile_groups.cli import cmd_groups_activate
from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker
from profile_groups.groups.repositories.groups import GroupFilters, GroupRepository
from tests.conftest import Api, Tenant
from tests.factories import make_profiles


async def _group(api: Api, **body: Any) -> dict[str, Any]:
    r = await api.post("/profile-groups/", json={"name": "G", **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _assert_invalid(r: httpx.Response, loc: list[Any]) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "invalid"
    assert body["detail"]
    assert loc in [e["loc"] for e in body["errors"]], body


# Authentication and tenancy -----------------------------------------------------------------


async def test_missing_and_unknown_tokens_are_401(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    r = await client.get(f"{tenant.base}/profile-groups/")
    assert r.status_code == 401
    assert r.json()["error_code"] == "not_authenticated"
    r = await client.get(f"{tenant.base}/profile-groups/", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = await client.get(f"{tenant.base}/profile-groups/", headers={"Authorization": "Basic x"})
    assert r.status_code == 401


async def test_token_of_another_application_is_403(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    r = await client.get(f"{other_tenant.base}/profile-groups/", headers=tenant.headers)
    assert r.status_code == 403
    body = r.json()
    assert body["error_code"] == "permission_denied"
    assert "belongs to another application" in body["detail"]
    # An application that does not exist answers the same: nothing is revealed.
    r = await client.get("/api/v1/applications/nope/profile-groups/", headers=tenant.headers)
    assert r.status_code == 403
    assert r.json() == body


async def test_other_tenants_groups_are_invisible(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessionmaker: AsyncSessionMaker
) -> None:
    mine, theirs = Api(client, tenant), Api(client, other_tenant)
    g = await _group(theirs, custom_id="shared")
    (pid,) = await make_profiles(sessionmaker, other_tenant, 1, custom_ids=["p1"])
    await theirs.post(f"/profile-groups/{g['id']}/members/", json={"profile_ids": [pid]})

    assert (await mine.get(f"/profile-groups/{g['id']}/")).status_code == 404
    assert (await mine.get("/profile-group-by-custom-id/shared/")).status_code == 404
    assert (await mine.patch(f"/profile-groups/{g['id']}/", json={"name": "x"})).status_code == 404
    assert (await mine.delete(f"/profile-groups/{g['id']}/")).status_code == 404
    assert (await mine.get(f"/profile-groups/{g['id']}/members/")).status_code == 404
    assert (await mine.get(f"/profile-groups/{g['id']}/members/{pid}/")).status_code == 404
    assert (await mine.get(f"/profiles/{pid}/profile-groups/")).status_code == 404
    assert (await mine.get("/profile-groups/")).json()["count"] == 0
    # Their profile cannot be added to my group either.
    own = await _group(mine)
    r = await mine.post(f"/profile-groups/{own['id']}/members/", json={"profile_ids": [pid]})
    assert r.json() == {"successfully_added": [], "already_added": [], "invalid_ids": [pid]}
    r = await mine.post(f"/profile-groups/{own['id']}/members/", json={"custom_ids": ["p1"]})
    assert r.json()["invalid_ids"] == ["p1"]
    # And the same custom id is free in my application.
    assert (
        await mine.post("/profile-groups/", json={"name": "m", "custom_id": "shared"})
    ).status_code == 201
    assert (await theirs.get(f"/profile-groups/{g['id']}/")).json()["profile_count"] == 1


# Create ---------------------------------------------------------------------------------------


async def test_create_defaults(api: Api) -> None:
    g = await _group(api)
    assert g["is_active"] is True
    assert g["membership_type"] == "static"
    assert g["description"] == ""
    assert g["attributes"] == []
    assert g["profile_count"] == 0
    assert g["created_at"] == g["updated_at"]
    assert set(g) == {
        "id",
        "name",
        "description",
        "is_active",
        "custom_id",
        "attributes",
        "membership_type",
        "profile_count",
        "created_at",
        "updated_at",
    }


async def test_create_validation(api: Api) -> None:
    _assert_invalid(await api.post("/profile-groups/", json={}), ["body", "name"])
    _assert_invalid(await api.post("/profile-groups/", json={"name": ""}), ["body", "name"])
    _assert_invalid(await api.post("/profile-groups/", json={"name": "x" * 256}), ["body", "name"])
    _assert_invalid(
        await api.post("/profile-groups/", json={"name": "g", "description": "x" * 2001}),
        ["body", "description"],
    )
    _assert_invalid(
        await api.post("/profile-groups/", json={"name": "g", "custom_id": "x" * 256}),
        ["body", "custom_id"],
    )
    too_many = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    _assert_invalid(
        await api.post("/profile-groups/", json={"name": "g", "attributes": too_many}),
        ["body", "attributes"],
    )
    _assert_invalid(
        await api.post(
            "/profile-groups/", json={"name": "g", "attributes": [{"key": "k" * 201, "value": "v"}]}
        ),
        ["body", "attributes", 0, "key"],
    )
    _assert_invalid(
        await api.post(
            "/profile-groups/", json={"name": "g", "attributes": [{"key": "k", "value": "v" * 201}]}
        ),
        ["body", "attributes", 0, "value"],
    )
    dup = [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]
    _assert_invalid(
        await api.post("/profile-groups/", json={"name": "g", "attributes": dup}),
        ["body", "attributes"],
    )
    _assert_invalid(
        await api.post("/profile-groups/", json={"name": "g", "membership_type": "weird"}),
        ["body", "membership_type"],
    )
    _assert_invalid(
        await api.post("/profile-groups/", json={"name": "g", "colour": "red"}), ["body", "colour"]
    )
    r = await api.post("/profile-groups/", json={"name": "g", "membership_type": "dynamic"})
    assert r.status_code == 400
    r = await api.post(
        "/profile-groups/",
        json={"name": "g", "rule_tree": {"operator": "AND", "children": []}},
    )
    assert r.status_code == 400
    # Exactly 50 attributes and 200-char keys/values are fine.
    ok = [{"key": f"{i:0>200}", "value": "v" * 200} for i in range(50)]
    assert (
        await api.post("/profile-groups/", json={"name": "g", "attributes": ok})
    ).status_code == 201
    # Nothing but the last one was created.
    assert (await api.get("/profile-groups/")).json()["count"] == 1


async def test_bad_json_content_type_and_size(api: Api) -> None:
    r = await api.post(
        "/profile-groups/", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error_code"] == "invalid"
    assert "JSON" in r.json()["detail"]
    r = await api.post(
        "/profile-groups/", content=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    assert r.json()["error_code"] == "unsupported_media_type"
    big = b'{"name": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = await api.post(
        "/profile-groups/", content=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error_code"] == "too_large"
    assert (await api.get("/profile-groups/")).json()["count"] == 0


async def test_duplicate_custom_id_is_409(api: Api) -> None:
    await _group(api, custom_id="vip")
    r = await api.post("/profile-groups/", json={"name": "again", "custom_id": "vip"})
    assert r.status_code == 409
    assert r.json()["error_code"] == "conflict"
    other = await _group(api, custom_id="other")
    r = await api.patch(f"/profile-groups/{other['id']}/", json={"custom_id": "vip", "name": "n"})
    assert r.status_code == 409
    # The failed PATCH changed nothing.
    assert (await api.get(f"/profile-groups/{other['id']}/")).json() == other


# Get, lookup, patch, delete ---------------------------------------------------------------------


async def test_get_unknown_and_malformed_ids(api: Api) -> None:
    r = await api.get("/profile-groups/13a1fd98-24ca-4935-8791-5556586c0005/")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found.", "error_code": "not_found"}
    r = await api.get("/profile-groups/not-a-uuid/")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found.", "error_code": "not_found"}


async def test_lookup_by_custom_id(api: Api) -> None:
    g = await _group(api, custom_id="beta testers")
    r = await api.get("/profile-group-by-custom-id/beta testers/")
    assert r.status_code == 200
    assert r.json() == g
    assert (await api.get("/profile-group-by-custom-id/nobody/")).status_code == 404


async def test_patch(api: Api) -> None:
    g = await _group(api, attributes=[{"key": "a", "value": "1"}], description="d")
    r = await api.patch(
        f"/profile-groups/{g['id']}/",
        json={"attributes": [{"key": "b", "value": "2"}], "custom_id": "c1", "description": ""},
    )
    assert r.status_code == 200
    out = r.json()
    assert out["attributes"] == [{"key": "b", "value": "2"}]
    assert out["custom_id"] == "c1"
    assert out["description"] == ""
    assert out["name"] == "G"
    assert out["updated_at"] > g["updated_at"]
    r = await api.patch(f"/profile-groups/{g['id']}/", json={"custom_id": None})
    assert r.json()["custom_id"] is None

    r = await api.patch(f"/profile-groups/{g['id']}/", json={"membership_type": "dynamic"})
    _assert_invalid(r, ["body"])
    _assert_invalid(await api.patch(f"/profile-groups/{g['id']}/", json={"name": None}), ["body"])
    _assert_invalid(
        await api.patch(f"/profile-groups/{g['id']}/", json={"rule_tree": {"operator": "AND"}}),
        ["body", "rule_tree"],
    )
    assert (
        await api.patch(f"/profile-groups/{g['id']}/", json={"name": "x" * 256})
    ).status_code == 400
    r = await api.get(f"/profile-groups/{g['id']}/")
    assert r.json()["membership_type"] == "static"
    assert r.json()["name"] == "G"


async def test_delete_removes_group_and_memberships(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    g = await _group(api)
    pids = await make_profiles(sessionmaker, api.tenant, 3)
    await api.post(f"/profile-groups/{g['id']}/members/", json={"profile_ids": pids})
    assert (await api.delete(f"/profile-groups/{g['id']}/")).status_code == 204
    assert (await api.get(f"/profile-groups/{g['id']}/")).status_code == 404
    assert (await api.delete(f"/profile-groups/{g['id']}/")).status_code == 404
    async with sessionmaker() as session:
        rows = await session.execute(
            text("SELECT count(*) FROM group_memberships WHERE group_id = :g"), {"g": g["id"]}
        )
        assert rows.scalar_one() == 0
    assert (await api.get(f"/profiles/{pids[0]}/profile-groups/")).json()["count"] == 0


async def test_inactive_group_is_unavailable_until_activated(
    api: Api, sessionmaker: AsyncSessionMaker, settings: Settings
) -> None:
    g = await _group(api, custom_id="hidden")
    pids = await make_profiles(sessionmaker, api.tenant, 2)
    await api.post(f"/profile-groups/{g['id']}/members/", json={"profile_ids": pids})
    assert (
        await api.patch(f"/profile-groups/{g['id']}/", json={"is_active": False})
    ).status_code == 200

    gid = g["id"]
    for r in [
        await api.get(f"/profile-groups/{gid}/"),
        await api.get("/profile-group-by-custom-id/hidden/"),
        await api.patch(f"/profile-groups/{gid}/", json={"is_active": True}),
        await api.get(f"/profile-groups/{gid}/members/"),
        await api.get(f"/profile-groups/{gid}/members/{pids[0]}/"),
        await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": pids}),
        await api.delete(f"/profile-groups/{gid}/members/", json={"profile_ids": pids}),
        await api.delete(f"/profile-groups/{gid}/"),
    ]:
        assert r.status_code == 404, r.request.url
    assert (await api.get("/profile-groups/")).json()["count"] == 0
    assert (await api.get(f"/profiles/{pids[0]}/profile-groups/")).json()["count"] == 0

    # The CLI brings it back, memberships kept.
    await _activate(settings, gid)
    r = await api.get(f"/profile-groups/{gid}/")
    assert r.status_code == 200
    assert r.json()["is_active"] is True
    assert r.json()["profile_count"] == 2
    assert (await api.get(f"/profiles/{pids[0]}/profile-groups/")).json()["count"] == 1


async def _activate(settings: Settings, group_id: str) -> None:
    import asyncio

    # The CLI runs its own event loop, as it does from a shell.
    await asyncio.to_thread(
        cmd_groups_activate, argparse.Namespace(group_id=group_id, json=True), settings
    )


# Listing and filters --------------------------------------------------------------------------


async def test_list_filters(api: Api) -> None:
    a = await _group(
        api,
        name="VIP users",
        custom_id="vip",
        attributes=[{"key": "team", "value": "red"}, {"key": "tier", "value": "gold"}],
    )
    b = await _group(api, name="Beta 100%_club", attributes=[{"key": "team", "value": "blue"}])
    c = await _group(api, name="Moderation watchlist")

    async def names(query: str) -> list[str]:
        r = await api.get(f"/profile-groups/?{query}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["results"])
        return [g["name"] for g in body["results"]]

    assert await names("") == [c["name"], b["name"], a["name"]]  # newest first
    assert await names("membership_type=static") == [c["name"], b["name"], a["name"]]
    assert await names("membership_type=dynamic") == []
    assert await names("custom_id=vip") == [a["name"]]
    assert await names("name=vip") == [a["name"]]
    assert await names("name=USERS") == [a["name"]]
    assert await names("name=100%25_") == [b["name"]]
    assert await names("name=%25") == [b["name"]]
    assert await names("name=_c") == [b["name"]]
    assert await names("attribute=team:red") == [a["name"]]
    assert await names("attribute=team") == [b["name"], a["name"]]
    assert await names("attribute=team&attribute=tier:gold") == [a["name"]]
    assert await names("attribute=team:blue&attribute=tier:gold") == []
    assert await names("attribute=team:red&name=beta") == []
    assert await names("attribute=missing") == []
    r = await api.get("/profile-groups/?membership_type=weird")
    _assert_invalid(r, ["query", "membership_type"])
    _assert_invalid(await api.get("/profile-groups/?attribute=:x"), ["query", "attribute"])


async def test_list_pagination_keeps_filters(api: Api) -> None:
    for i in range(5):
        await _group(api, name=f"g{i}", attributes=[{"key": "k", "value": "v"}])
    await _group(api, name="other")
    r = await api.get("/profile-groups/?page_size=2&attribute=k:v")
    body = r.json()
    assert body["count"] == 5
    assert [g["name"] for g in body["results"]] == ["g4", "g3"]
    assert "attribute=k%3Av" in body["next"] and body["next"].startswith("http://testserver/")
    seen = [g["name"] for g in body["results"]]
    while body["next"]:
        body = (await api.client.get(body["next"], headers=api.tenant.headers)).json()
        seen += [g["name"] for g in body["results"]]
    assert seen == ["g4", "g3", "g2", "g1", "g0"]


class Explain(Executable, ClauseElement):
    """EXPLAIN of a statement as SQLAlchemy builds it, its parameters bound as in production."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + str(compiler.process(element.statement, **kw))


async def test_attribute_lookup_uses_the_gin_index(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    """The plan of the statement GroupRepository builds for `attribute=` filters, over an
    application with many groups of which one has the attribute."""
    async with sessionmaker() as session, session.begin():
        app = await ApplicationRepository(session).get_by_client_id(api.tenant.client_id)
        assert app is not None
        await session.execute(
            text(
                "INSERT INTO profile_groups (application_id, name, attributes) "
                "SELECT :app, 'g' || i, jsonb_build_array(jsonb_build_object('key', 'k' || i, "
                "'value', 'v')) FROM generate_series(1, 5000) i"
            ),
            {"app": app.id},
        )
        await session.execute(text("ANALYZE profile_groups"))
        stmt = GroupRepository(session).list_statement(
            app.id, GroupFilters(attributes=[("k42", "v"), ("k42", None)])
        )
        plan = "\n".join(row[0] for row in await session.execute(Explain(stmt)))
    assert "ix_profile_groups_attributes" in plan, plan


# Conventions ------------------------------------------------------------------------------------


async def test_trailing_slash_optional_without_redirect(api: Api) -> None:
    r1 = await api.post("/profile-groups", json={"name": "a"})
    r2 = await api.post("/profile-groups/", json={"name": "b"})
    assert r1.status_code == r2.status_code == 201
    gid = r1.json()["id"]
    assert (await api.get(f"/profile-groups/{gid}")).status_code == 200
    assert (await api.get(f"/profile-groups/{gid}/")).status_code == 200
    assert (await api.get("/profile-groups")).json()["count"] == 2


async def test_request_id_and_error_bodies(client: httpx.AsyncClient, api: Api) -> None:
    r = await api.get("/profile-groups/", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await api.get("/profile-groups/")
    assert len(r.headers["x-request-id"]) >= 16
    r = await client.get("/no/such/route")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found.", "error_code": "not_found"}
    assert "x-request-id" in r.headers
    r = await api.request("PUT", "/profile-groups/")
    assert r.status_code == 405
    assert r.json()["error_code"] == "method_not_allowed"
