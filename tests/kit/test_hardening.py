"""Regression tests for the request conventions of docs/api.md that once answered a 500 or
answered wrongly (issue 10, items 1-5, 8 and 10): text in paths and queries, unknown query
parameters, strict body types, bodies without Content-Type, 401/405 headers, deep JSON, cursors
bound to their list, numbers too big for a double, edge timestamps, every "database unavailable"
state and one snapshot per list."""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from profile_groups.app import create_app
from profile_groups.config import Settings
from profile_groups.kit.routing import BAD_TEXT, MAX_JSON_DEPTH
from profile_groups.kit.state import SessionDep
from tests.activity.helpers import new_profile
from tests.conftest import Api, Tenant
from tests.profiles.helpers import assert_invalid, create, define

UUID_0 = "00000000-0000-4000-8000-000000000000"


# 1. NUL in a path or a query --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        ("/profile-groups/?name=a%00b", ["query", "name"]),
        ("/profile-groups/?custom_id=%00", ["query", "custom_id"]),
        ("/profile-groups/?attribute=k%00:v", ["query", "attribute"]),
        ("/profiles/?custom_id=a%00", ["query", "custom_id"]),
        ("/profile-by-custom-id/a%00b/", ["path", "custom_id"]),
        ("/profile-by-custom-id/a%00b/profile-groups/", ["path", "custom_id"]),
        ("/profile-group-by-custom-id/a%00b/", ["path", "custom_id"]),
        ("/custom-attributes/a%00b/", ["path", "key"]),
        ("/profile-group-attributes/a%00b/", ["path", "key"]),
        (f"/profile-groups/{UUID_0}/members/a%00b/", ["path", "profile_id"]),
    ],
)
async def test_nul_in_a_path_or_query_is_a_400_naming_it(
    api: Api, path: str, loc: list[str]
) -> None:
    r = await api.get(path)
    assert_invalid(r, loc)
    assert r.json()["detail"] == BAD_TEXT


async def test_nul_in_a_query_of_a_write_is_a_400(api: Api) -> None:
    r = await api.delete("/custom-attributes/a%00b/")
    assert_invalid(r, ["path", "key"])
    r = await api.patch("/custom-attributes/k%00/", json={"description": "x"})
    assert_invalid(r, ["path", "key"])


# 10. Conventions ----------------------------------------------------------------------------


async def test_unknown_query_parameters_are_a_400_naming_them(api: Api) -> None:
    r = await api.get("/profile-groups/?membership_typ=dynamic")
    assert_invalid(r, ["query", "membership_typ"])
    detail = r.json()["detail"]
    assert "membership_typ" in detail
    # The allowed ones are named too, the pagination parameters included.
    for name in ("membership_type", "name", "attribute", "custom_id", "page_size", "cursor"):
        assert name in detail
    r = await api.get(f"/profiles/{UUID_0}/?x=1")
    assert_invalid(r, ["query", "x"])
    r = await api.post("/profiles/?dry_run=1", json={})
    assert_invalid(r, ["query", "dry_run"])
    assert (await api.get("/profiles/")).json()["count"] == 0
    # Defined parameters are accepted, repeated ones too.
    r = await api.get("/profile-groups/?attribute=a&attribute=b:c&page_size=5")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/profile-groups/", {"name": "g", "is_active": "yes"}, ["body", "is_active"]),
        ("/profile-groups/", {"name": "g", "is_active": 0}, ["body", "is_active"]),
        ("/profile-groups/", {"name": 5}, ["body", "name"]),
        (
            "/profile-groups/preview/",
            {
                "rule_tree": {
                    "attribute": "total_comments_posted",
                    "condition": "greater_than",
                    "value": 1,
                },
                "sample_size": True,
            },
            ["body", "sample_size"],
        ),
        (
            "/profile-groups/preview/",
            {"rule_tree": {}, "sample_size": "3"},
            ["body", "sample_size"],
        ),
        ("/profiles/", {"nickname": 1}, ["body", "nickname"]),
        ("/profiles/", {"id": 1}, ["body", "id"]),
        ("/profiles/", {"created_at": 0}, ["body", "created_at"]),
        ("/custom-attributes/", {"key": "k", "data_type": "number", "description": 1}, None),
    ],
)
async def test_body_types_are_strict(
    api: Api, path: str, body: dict[str, Any], loc: list[Any] | None
) -> None:
    assert_invalid(await api.post(path, json=body), loc)


async def test_strict_bodies_still_read_uuids_and_timestamps_from_strings(api: Api) -> None:
    p = await create(api, id=UUID_0, created_at="2024-01-02T03:04:05+01:00")
    assert p["id"] == UUID_0
    assert p["created_at"] == "2024-01-02T02:04:05.000000Z"
    r = await api.post("/profile-groups/", json={"name": "g", "is_active": False})
    assert r.status_code == 201, r.text


async def test_a_body_without_content_type_is_json(api: Api) -> None:
    r = await api.post("/profiles/", content=b'{"custom_id": "no-type"}')
    assert r.status_code == 201, r.text
    assert r.json()["custom_id"] == "no-type"
    r = await api.post("/profiles/", content=b"{", headers={})
    assert_invalid(r)
    r = await api.post("/profiles/", content=b"a=b", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "application/json" in r.json()["detail"]


async def test_401_names_the_bearer_scheme(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for headers in ({}, {"Authorization": "Bearer pgt_unknown"}, {"Authorization": "Basic x"}):
        r = await client.get(f"{tenant.base}/profiles/", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error_code"] == "not_authenticated"


async def test_405_lists_every_allowed_method(api: Api) -> None:
    r = await api.put("/profile-groups/")
    assert r.status_code == 405
    assert r.json()["error_code"] == "method_not_allowed"
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    r = await api.post(f"/profile-groups/{UUID_0}/")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 5, 600, 5000])
async def test_json_nested_past_the_limit_is_a_400_with_a_loc(api: Api, depth: int) -> None:
    body = b'{"rule_tree": ' + b"[" * depth + b"]" * depth + b"}"
    r = await api.post("/profile-groups/preview/", content=body, headers=JSON)
    assert_invalid(r, ["body"])
    assert str(MAX_JSON_DEPTH) in r.json()["detail"]


JSON = {"Content-Type": "application/json"}


# 2. Cursors ---------------------------------------------------------------------------------


async def _next_cursor(api: Api, path: str) -> str:
    r = await api.get(path)
    assert r.status_code == 200, r.text
    nxt = r.json()["next"]
    assert nxt, r.json()
    return str(httpx.URL(nxt).params["cursor"])


async def test_a_cursor_only_works_on_its_own_list(
    api: Api, client: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    for key in ("a1", "a2"):
        await define(api, key, "number")
    for _ in range(2):
        await create(api)
    other = Api(client, other_tenant)
    for _ in range(2):
        await create(other)
    attributes_cursor = await _next_cursor(api, "/custom-attributes/?page_size=1")
    profiles_cursor = await _next_cursor(api, "/profiles/?page_size=1")
    catalogue_cursor = await _next_cursor(api, "/profile-group-attributes/?page_size=1")
    # Its own list takes it.
    assert (await api.get(f"/profiles/?cursor={profiles_cursor}")).status_code == 200
    # Another list of the same application, or the same list of another application: 400.
    for path in (
        f"/profiles/?cursor={attributes_cursor}",
        f"/profiles/?cursor={catalogue_cursor}",
        f"/custom-attributes/?cursor={profiles_cursor}",
        f"/profile-group-attributes/?cursor={profiles_cursor}",
        f"/profile-groups/?cursor={profiles_cursor}",
    ):
        assert_invalid(await api.get(path), ["query", "cursor"])
    assert_invalid(await other.get(f"/profiles/?cursor={profiles_cursor}"), ["query", "cursor"])


async def test_a_members_cursor_is_bound_to_its_group(api: Api) -> None:
    groups = []
    for name in ("g1", "g2"):
        r = await api.post("/profile-groups/", json={"name": name})
        groups.append(r.json()["id"])
    ids = [(await create(api))["id"] for _ in range(3)]
    for g in groups:
        r = await api.post(f"/profile-groups/{g}/members/", json={"profile_ids": ids})
        assert r.status_code == 200, r.text
    cursor = await _next_cursor(api, f"/profile-groups/{groups[0]}/members/?page_size=1")
    assert (await api.get(f"/profile-groups/{groups[0]}/members/?cursor={cursor}")).is_success
    r = await api.get(f"/profile-groups/{groups[1]}/members/?cursor={cursor}")
    assert_invalid(r, ["query", "cursor"])
    r = await api.get(f"/profiles/{ids[0]}/profile-groups/?cursor={cursor}")
    assert_invalid(r, ["query", "cursor"])


def test_a_cursor_key_of_the_wrong_type_never_reaches_sql() -> None:
    from datetime import UTC, datetime
    from uuid import uuid4

    from starlette.datastructures import URL

    from profile_groups.kit.cursor import CursorCodec
    from profile_groups.kit.errors import BadRequest
    from profile_groups.kit.pagination import PageRequest

    codec = CursorCodec(b"k" * 32)
    now = datetime.now(UTC)
    for key in ([now, "not-a-uuid"], [now, 1], ["x", uuid4()], [now, True], [now]):
        page = PageRequest(20, codec.encode(key, True, "b"), URL("http://t/"), codec, "b")
        with pytest.raises(BadRequest):
            page.boundary([datetime, type(uuid4())])
    good = PageRequest(20, codec.encode([now, uuid4()], True, "b"), URL("http://t/"), codec, "b")
    assert good.boundary([datetime, type(uuid4())])[0] is not None


def test_the_published_cursor_secret_is_refused() -> None:
    from pydantic import ValidationError

    for secret in ("profile-groups-cursor", "short"):
        with pytest.raises(ValidationError):
            Settings(CURSOR_SECRET=secret)
    assert Settings(CURSOR_SECRET="x" * 16).CURSOR_SECRET is not None


def test_run_generates_one_cursor_secret_per_data_dir(tmp_path: Any) -> None:
    from profile_groups.cli import _with_cursor_secret

    first = _with_cursor_secret(Settings(DATA_DIR=tmp_path))
    again = _with_cursor_secret(Settings(DATA_DIR=tmp_path))
    assert first.CURSOR_SECRET is not None and again.CURSOR_SECRET is not None
    assert first.CURSOR_SECRET.get_secret_value() == again.CURSOR_SECRET.get_secret_value()
    assert len(first.CURSOR_SECRET.get_secret_value()) >= 32
    assert (tmp_path / "cursor_secret").stat().st_mode & 0o777 == 0o600
    other = _with_cursor_secret(Settings(DATA_DIR=tmp_path / "other"))
    assert other.CURSOR_SECRET != first.CURSOR_SECRET
    # A secret that is set wins.
    assert _with_cursor_secret(Settings(DATA_DIR=tmp_path, CURSOR_SECRET="y" * 20)).CURSOR_SECRET


# 3. Integers too big for a double -----------------------------------------------------------

HUGE = 10**400


async def test_an_integer_too_big_for_a_double_is_refused_not_a_500(api: Api) -> None:
    await define(api, "score", "number")
    huge = b"1" + b"0" * 400
    r = await api.post(
        "/profiles/", content=b'{"custom_attributes": {"score": ' + huge + b"}}", headers=JSON
    )
    assert_invalid(r, ["body", "custom_attributes", "score"])
    p = await create(api, custom_id="p1")
    r = await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"score": HUGE}})
    assert_invalid(r, ["body", "custom_attributes", "score"])
    # In a bulk upsert it is that item's rejection; the other items are kept.
    r = await api.post(
        "/profiles/bulk/",
        json={
            "profiles": [
                {"custom_id": "big", "custom_attributes": {"score": HUGE}},
                {"custom_id": "fine", "custom_attributes": {"score": 10**300}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1
    assert [e["index"] for e in r.json()["errors"]] == [0]


async def test_an_event_value_too_big_for_a_double_is_that_events_rejection(api: Api) -> None:
    p = await new_profile(api)
    events = [
        {"type": "reward_earned", "profile_id": p["id"], "value": HUGE},
        {"type": "reward_spent", "profile_id": p["id"], "value": HUGE},
        {"type": "streak_activity", "profile_id": p["id"], "value": HUGE},
        {"type": "reward_earned", "profile_id": p["id"], "value": 5},
    ]
    r = await api.post("/events/", json={"events": events})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    assert [e["index"] for e in r.json()["rejected"]] == [0, 1, 2]


# 4. Edge timestamps -------------------------------------------------------------------------

EDGES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("edge", EDGES)
async def test_a_timestamp_out_of_range_in_utc_is_a_400(api: Api, edge: str) -> None:
    assert_invalid(await api.post("/profiles/", json={"created_at": edge}), ["body", "created_at"])
    assert_invalid(await api.put(f"/profiles/{UUID_0}/", json={"created_at": edge}))
    p = await create(api)
    r = await api.patch(f"/profiles/{p['id']}/", json={"created_at": edge})
    assert_invalid(r, ["body", "created_at"])
    r = await api.post("/profiles/bulk/", json={"profiles": [{"id": UUID_0, "created_at": edge}]})
    assert r.status_code == 200, r.text
    assert [e["index"] for e in r.json()["errors"]] == [0]
    await define(api, "seen", "datetime")
    r = await api.patch(f"/profiles/{p['id']}/", json={"custom_attributes": {"seen": edge}})
    assert_invalid(r, ["body", "custom_attributes", "seen"])
    r = await api.post(
        "/events/",
        json={"events": [{"type": "comment_posted", "profile_id": p["id"], "occurred_at": edge}]},
    )
    assert r.status_code == 200 and r.json()["rejected"][0]["index"] == 0, r.text


async def test_the_extreme_representable_timestamps_are_accepted(api: Api) -> None:
    p = await create(api, created_at="0001-01-01T00:00:00Z")
    assert p["created_at"] == "0001-01-01T00:00:00.000000Z"
    p = await create(api, created_at="9999-12-31T23:59:59.999999Z")
    assert p["created_at"] == "9999-12-31T23:59:59.999999Z"


# 5. Every "database unavailable" state ------------------------------------------------------


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "error",
    [
        DBAPIError("stmt", {}, _Orig("57P03")),  # cannot_connect_now (starting, stopping)
        DBAPIError("stmt", {}, _Orig("57P01")),  # admin_shutdown
        DBAPIError("stmt", {}, _Orig("08006")),  # connection_failure
        DBAPIError("stmt", {}, _Orig("53300")),  # too_many_connections
        DBAPIError("stmt", {}, _Orig("57014")),  # statement_timeout
        PoolTimeoutError("QueuePool limit reached"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
        FileNotFoundError("/tmp/.s.PGSQL.5432"),
    ],
)
async def test_every_database_unavailable_state_is_a_503(
    settings: Settings, error: Exception
) -> None:
    app = create_app(settings)
    router = APIRouter()

    @router.get("/down")
    async def down() -> None:
        raise error

    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/down")
    assert r.status_code == 503, r.text
    assert r.json()["error_code"] == "unavailable"
    assert r.headers["retry-after"]


async def test_a_real_cannot_connect_now_is_a_503(settings: Settings) -> None:
    """A server that answers every startup with SQLSTATE 57P03, as PostgreSQL does while it
    starts or shuts down."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(8)
        msg = b"SFATAL\x00VFATAL\x00C57P03\x00Mthe database system is starting up\x00\x00"
        writer.write(b"E" + (len(msg) + 4).to_bytes(4, "big") + msg)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres?ssl=disable"
    app = create_app(settings.model_copy(update={"DATABASE_URL": url}))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                r = await c.get(
                    "/api/v1/applications/x/profiles/",
                    headers={"Authorization": "Bearer pgt_x"},
                )
    finally:
        server.close()
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"]


# 8. One snapshot per list -------------------------------------------------------------------


async def test_a_read_runs_in_one_read_only_snapshot(settings: Settings) -> None:
    app = create_app(settings)
    router = APIRouter()

    @router.api_route("/tx", methods=["GET", "POST"])
    async def tx(session: SessionDep) -> list[str]:
        rows = [
            await session.scalar(text("SHOW transaction_isolation")),
            await session.scalar(text("SHOW transaction_read_only")),
        ]
        return [str(r) for r in rows]

    app.include_router(router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/tx")).json() == ["repeatable read", "on"]
            assert (await c.post("/tx")).json() == ["read committed", "off"]


async def test_a_lists_count_matches_its_results_under_concurrent_writes(api: Api) -> None:
    r = await api.post("/profile-groups/", json={"name": "busy"})
    group = r.json()["id"]
    ids = [(await create(api))["id"] for _ in range(60)]
    stop = asyncio.Event()

    async def churn() -> None:
        for round_ in range(40):
            if stop.is_set():
                return
            batch = ids[(round_ * 7) % 50 : (round_ * 7) % 50 + 10]
            await api.post(f"/profile-groups/{group}/members/", json={"profile_ids": batch})
            await api.delete(f"/profile-groups/{group}/members/", json={"profile_ids": batch[:5]})

    writer = asyncio.create_task(churn())
    mismatches = []
    try:
        for _ in range(40):
            r = await api.get(f"/profile-groups/{group}/members/?page_size=1000")
            assert r.status_code == 200, r.text
            page = r.json()
            if page["count"] != len(page["results"]):
                mismatches.append((page["count"], len(page["results"])))
            r = await api.get(f"/profiles/{ids[0]}/profile-groups/?page_size=1000")
            page = r.json()
            if page["count"] != len(page["results"]):
                mismatches.append((page["count"], len(page["results"])))
    finally:
        stop.set()
        await writer
    assert mismatches == []
