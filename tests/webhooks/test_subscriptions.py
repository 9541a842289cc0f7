"""The subscriptions API (docs/webhooks.md): create, list, get, patch, delete, validation and
the refusal of non-public targets."""

import base64
import time
import uuid
from typing import Any

import jwt
import pytest

from tests.conftest import Api

HOOK = {"url": "https://hooks.example.com/pg", "events": ["group.members_changed"]}


async def _group(api: Api, name: str = "G") -> str:
    r = await api.post("/profile-groups/", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_create_shows_the_secret_once(papi: Api) -> None:
    group_id = await _group(papi)
    r = await papi.post(
        "/webhooks/", json={**HOOK, "group_ids": [group_id], "description": "VIP flow"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"][6:])) == 32
    assert body["events"] == ["group.members_changed"]
    assert body["group_ids"] == [group_id]
    assert body["is_active"] is True and body["disabled_reason"] is None
    assert body["created_at"].endswith("Z")

    got = await papi.get(f"/webhooks/{body['id']}/")
    assert got.status_code == 200
    assert "secret" not in got.json()
    listed = await papi.get("/webhooks/")
    assert listed.json()["count"] == 1
    assert "secret" not in listed.json()["results"][0]


async def test_list_is_paginated_newest_first(papi: Api) -> None:
    ids = [(await papi.post("/webhooks/", json=HOOK)).json()["id"] for _ in range(3)]
    page = await papi.get("/webhooks", params={"page_size": 2})
    assert page.status_code == 200
    assert page.json()["count"] == 3
    assert [w["id"] for w in page.json()["results"]] == ids[::-1][:2]
    rest = await papi.client.get(page.json()["next"], headers=papi.tenant.headers)
    assert [w["id"] for w in rest.json()["results"]] == [ids[0]]


async def test_patch_and_delete(papi: Api) -> None:
    hook = (await papi.post("/webhooks/", json=HOOK)).json()
    group_id = await _group(papi)
    r = await papi.patch(
        f"/webhooks/{hook['id']}/",
        json={"events": ["group.deleted", "group.deleted"], "group_ids": [group_id]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["group.deleted"]
    assert r.json()["group_ids"] == [group_id]
    r = await papi.patch(f"/webhooks/{hook['id']}/", json={"group_ids": None, "is_active": False})
    assert r.json()["group_ids"] is None and r.json()["is_active"] is False
    r = await papi.patch(f"/webhooks/{hook['id']}/", json={"url": None})
    assert r.status_code == 400
    assert (await papi.delete(f"/webhooks/{hook['id']}/")).status_code == 204
    assert (await papi.get(f"/webhooks/{hook['id']}/")).status_code == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**HOOK, "events": ["group.renamed"]}, ["body", "events", 0]),
        ({**HOOK, "events": []}, ["body", "events"]),
        ({**HOOK, "url": "ftp://example.com/x"}, ["body", "url"]),
        ({**HOOK, "url": "not a url"}, ["body", "url"]),
        ({**HOOK, "url": "https://user:pw@hooks.example.com/x"}, ["body", "url"]),
        ({**HOOK, "group_ids": ["not-a-uuid"]}, ["body", "group_ids", 0]),
        ({**HOOK, "description": 5}, ["body", "description"]),
        ({**HOOK, "secret": "whsec_x"}, ["body", "secret"]),
    ],
)
async def test_invalid_bodies(papi: Api, body: dict[str, Any], loc: list[Any]) -> None:
    r = await papi.post("/webhooks/", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "invalid"
    assert loc in [e["loc"] for e in r.json()["errors"]]


async def test_unknown_event_type_lists_the_allowed_ones(papi: Api) -> None:
    r = await papi.post("/webhooks/", json={**HOOK, "events": ["group.deleted", "nope"]})
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["body", "events", 1]
    for allowed in ("group.members_changed", "group.evaluation_failed", "group.deleted"):
        assert allowed in r.json()["detail"]


async def test_group_ids_must_be_the_applications(papi: Api, other_tenant: Any) -> None:
    other = Api(papi.client, other_tenant)
    foreign = await _group(other)
    mine = await _group(papi)
    r = await papi.post("/webhooks/", json={**HOOK, "group_ids": [mine, foreign]})
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["body", "group_ids", 1]
    # And another application's webhook is not found.
    hook = (await papi.post("/webhooks/", json=HOOK)).json()
    assert (await other.get(f"/webhooks/{hook['id']}/")).status_code == 404


async def test_no_token_and_profile_tokens(papi: Api) -> None:
    r = await papi.client.get(papi.tenant.base + "/webhooks/")
    assert r.status_code == 401
    profile_token = jwt.encode(
        {"iss": papi.tenant.client_id, "iat": int(time.time()), "profile_id": str(uuid.uuid4())},
        papi.tenant.client_secret,
        algorithm="HS256",
    )
    r = await papi.client.get(
        papi.tenant.base + "/webhooks/", headers={"Authorization": f"Bearer {profile_token}"}
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fc00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://localhost:9999/hook",
    ],
)
async def test_non_public_targets_are_refused(api: Api, url: str) -> None:
    """Without WEBHOOK_ALLOW_PRIVATE_TARGETS (the default app of the tests)."""
    r = await api.post("/webhooks/", json={**HOOK, "url": url})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["loc"] == ["body", "url"]
    assert "public" in r.json()["detail"]


async def test_patch_refuses_non_public_targets(api: Api, papi: Api) -> None:
    hook = (await papi.post("/webhooks/", json={**HOOK, "url": "http://127.0.0.1:1/x"})).json()
    r = await api.patch(f"/webhooks/{hook['id']}/", json={"url": "http://10.1.2.3/hook"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["body", "url"]


async def test_public_literal_targets_are_accepted(api: Api) -> None:
    r = await api.post("/webhooks/", json={**HOOK, "url": "https://93.184.215.14/hook"})
    assert r.status_code == 201, r.text


async def test_test_ping_and_retry_answer_202(papi: Api) -> None:
    hook = (await papi.post("/webhooks/", json=HOOK)).json()
    r = await papi.post(f"/webhooks/{hook['id']}/test/")
    assert r.status_code == 202, r.text
    ping = r.json()
    assert ping["type"] == "webhook.test" and ping["status"] == "pending"
    log = await papi.get(f"/webhooks/{hook['id']}/deliveries/")
    assert log.json()["count"] == 1
    assert set(log.json()["results"][0]) == {
        "id",
        "type",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
    }
    r = await papi.post(f"/webhooks/{hook['id']}/deliveries/{ping['id']}/retry/")
    assert r.status_code == 202
    missing = "00000000-0000-4000-8000-000000000000"
    r = await papi.post(f"/webhooks/{hook['id']}/deliveries/{missing}/retry/")
    assert r.status_code == 404
    # An inactive webhook sends no test.
    await papi.patch(f"/webhooks/{hook['id']}/", json={"is_active": False})
    assert (await papi.post(f"/webhooks/{hook['id']}/test/")).status_code == 409


async def test_rotate_secret(papi: Api) -> None:
    hook = (await papi.post("/webhooks/", json=HOOK)).json()
    r = await papi.post(f"/webhooks/{hook['id']}/rotate-secret/")
    assert r.status_code == 200
    assert r.json()["secret"].startswith("whsec_") and r.json()["secret"] != hook["secret"]
