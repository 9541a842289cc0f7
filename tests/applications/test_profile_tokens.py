"""Profile tokens (docs/api.md): HS256 JWTs that may read only their own groups and memberships."""

import time
import uuid
from typing import Any
from uuid import UUID

import httpx
import jwt
import pytest

from profile_groups.applications.service import revoke_token
from profile_groups.db import AsyncSessionMaker
from tests.conftest import Api, Tenant
from tests.profiles.helpers import create

FORBIDDEN = "permission_denied"


def token(tenant: Tenant, secret: str | None = None, **claims: Any) -> str:
    body: dict[str, Any] = {"iss": tenant.client_id, "iat": int(time.time())}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, secret or tenant.client_secret, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def setup_groups(api: Api) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Two profiles; `me` in groups G1 and G2, `other` in G2 and G3."""
    me = await create(api, custom_id="me")
    other = await create(api, custom_id="other")
    gids = []
    for name in ("G1", "G2", "G3"):
        gids.append((await api.post("/profile-groups/", json={"name": name})).json()["id"])
    for gid, members in ((gids[0], [me]), (gids[1], [me, other]), (gids[2], [other])):
        r = await api.post(
            f"/profile-groups/{gid}/members/", json={"profile_ids": [m["id"] for m in members]}
        )
        assert r.status_code == 200, r.text
    return me, other, gids


async def test_profile_token_reads_its_own_groups(api: Api, client: httpx.AsyncClient) -> None:
    me, other, gids = await setup_groups(api)
    base = api.tenant.base
    for claims in ({"profile_id": me["id"]}, {"custom_profile_id": "me"}):
        headers = bearer(token(api.tenant, **claims))
        r = await client.get(f"{base}/profiles/{me['id']}/profile-groups/", headers=headers)
        assert r.status_code == 200, (claims, r.text)
        assert r.json()["count"] == 2
        assert {g["group_id"] for g in r.json()["results"]} == {gids[0], gids[1]}
        r = await client.get(f"{base}/profile-by-custom-id/me/profile-groups/", headers=headers)
        assert r.status_code == 200, (claims, r.text)
        assert r.json()["count"] == 2
        # Someone else's groups, by id or custom id: 403.
        r = await client.get(f"{base}/profiles/{other['id']}/profile-groups/", headers=headers)
        assert r.status_code == 403 and r.json()["error_code"] == FORBIDDEN
        r = await client.get(f"{base}/profile-by-custom-id/other/profile-groups/", headers=headers)
        assert r.status_code == 403
        # An id naming no profile is not revealed as missing.
        r = await client.get(f"{base}/profiles/{uuid.uuid4()}/profile-groups/", headers=headers)
        assert r.status_code == 403
        r = await client.get(f"{base}/profile-by-custom-id/nobody/profile-groups/", headers=headers)
        assert r.status_code == 403


async def test_profile_token_checks_its_own_membership(api: Api, client: httpx.AsyncClient) -> None:
    me, other, gids = await setup_groups(api)
    base = api.tenant.base
    for claims in ({"profile_id": me["id"]}, {"custom_profile_id": "me"}):
        headers = bearer(token(api.tenant, **claims))
        r = await client.get(
            f"{base}/profile-groups/{gids[0]}/members/{me['id']}/", headers=headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["id"] == me["id"]
        # Not a member: 404, as for a producer.
        r = await client.get(
            f"{base}/profile-groups/{gids[2]}/members/{me['id']}/", headers=headers
        )
        assert r.status_code == 404
        for pid in (other["id"], str(uuid.uuid4()), "not-a-uuid"):
            r = await client.get(f"{base}/profile-groups/{gids[1]}/members/{pid}/", headers=headers)
            assert r.status_code == 403, (claims, pid, r.text)


async def test_profile_token_on_producer_routes_is_403(api: Api, client: httpx.AsyncClient) -> None:
    me, _, gids = await setup_groups(api)
    headers = bearer(token(api.tenant, profile_id=me["id"]))
    for method, path in (
        ("GET", "/profiles/"),
        ("POST", "/profiles/"),
        ("GET", f"/profiles/{me['id']}/"),
        ("PATCH", f"/profiles/{me['id']}/"),
        ("PUT", f"/profiles/{me['id']}/"),
        ("DELETE", f"/profiles/{me['id']}/"),
        ("GET", "/profile-by-custom-id/me/"),
        ("POST", "/profiles/bulk/"),
        ("GET", "/custom-attributes/"),
        ("POST", "/custom-attributes/"),
        ("GET", "/profile-groups/"),
        ("POST", "/profile-groups/"),
        ("GET", f"/profile-groups/{gids[0]}/"),
        ("GET", f"/profile-groups/{gids[0]}/members/"),
        ("POST", f"/profile-groups/{gids[0]}/members/"),
        ("DELETE", f"/profile-groups/{gids[0]}/"),
    ):
        r = await client.request(method, api.tenant.base + path, headers=headers, json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error_code"] == FORBIDDEN
    # Nothing changed.
    assert (await api.get(f"/profiles/{me['id']}/")).json() == me
    assert (await api.get(f"/profile-groups/{gids[0]}/")).status_code == 200


async def test_producer_token_still_reads_every_profile(api: Api) -> None:
    _me, other, gids = await setup_groups(api)
    r = await api.get(f"/profiles/{other['id']}/profile-groups/")
    assert r.status_code == 200 and r.json()["count"] == 2
    r = await api.get(f"/profile-groups/{gids[1]}/members/{other['id']}/")
    assert r.status_code == 200
    r = await api.get(f"/profiles/{uuid.uuid4()}/profile-groups/")
    assert r.status_code == 404
    r = await api.get(f"/profile-groups/{gids[1]}/members/not-a-uuid/")
    assert r.status_code == 404


def _bad_tokens(tenant: Tenant, profile_id: str) -> dict[str, str]:
    now = int(time.time())
    pid = profile_id
    return {
        "expired": token(tenant, profile_id=pid, exp=now - 120),
        "wrong secret": token(tenant, secret="x" * 64, profile_id=pid),
        "issued in the future": token(tenant, profile_id=pid, iat=now + 3600),
        "no iat": token(tenant, profile_id=pid, iat=None),
        "no iss": token(tenant, profile_id=pid, iss=None),
        "unknown iss": token(tenant, profile_id=pid, iss="no-such-client"),
        "no profile claim": token(tenant),
        "profile_id not a uuid": token(tenant, profile_id="abc"),
        "empty custom_profile_id": token(tenant, custom_profile_id=""),
        "alg none": jwt.encode(
            {"iss": tenant.client_id, "iat": now, "profile_id": pid}, None, algorithm="none"
        ),
        "HS512": jwt.encode(
            {"iss": tenant.client_id, "iat": now, "profile_id": pid},
            tenant.client_secret,
            algorithm="HS512",
        ),
        "tampered": token(tenant, profile_id=pid)[:-2] + "xx",
        "three dots": token(tenant, profile_id=pid) + ".x",
        "not base64": "a.b.c",
    }


async def test_bad_profile_tokens_are_401(api: Api, client: httpx.AsyncClient) -> None:
    me, _, gids = await setup_groups(api)
    paths = (
        f"/profiles/{me['id']}/profile-groups/",
        f"/profile-groups/{gids[0]}/members/{me['id']}/",
        "/profiles/",
    )
    for name, value in _bad_tokens(api.tenant, me["id"]).items():
        for path in paths:
            r = await client.get(api.tenant.base + path, headers=bearer(value))
            assert r.status_code == 401, (name, path, r.text)
            assert r.json()["error_code"] == "not_authenticated"


async def test_token_expiry_and_leeway(api: Api, client: httpx.AsyncClient) -> None:
    me, _, _ = await setup_groups(api)
    url = f"{api.tenant.base}/profiles/{me['id']}/profile-groups/"
    now = int(time.time())
    r = await client.get(url, headers=bearer(token(api.tenant, profile_id=me["id"], exp=now + 60)))
    assert r.status_code == 200
    r = await client.get(url, headers=bearer(token(api.tenant, profile_id=me["id"], exp=now - 120)))
    assert r.status_code == 401 and "expired" in r.json()["detail"].lower()
    # A few seconds of clock skew are tolerated.
    r = await client.get(url, headers=bearer(token(api.tenant, profile_id=me["id"], iat=now + 5)))
    assert r.status_code == 200


async def test_token_of_another_application_is_403(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    api_a = Api(client, tenant)
    me, _, gids = await setup_groups(api_a)
    # Issued (and correctly signed) by B, used on A's path, even naming A's profile.
    b_token = token(other_tenant, profile_id=me["id"])
    for path in (
        f"/profiles/{me['id']}/profile-groups/",
        f"/profile-groups/{gids[0]}/members/{me['id']}/",
    ):
        r = await client.get(tenant.base + path, headers=bearer(b_token))
        assert r.status_code == 403, r.text
        assert r.json()["error_code"] == FORBIDDEN
    # Claiming A as issuer but signed with B's secret: a forgery, 401.
    forged = token(tenant, secret=other_tenant.client_secret, profile_id=me["id"])
    r = await client.get(
        f"{tenant.base}/profiles/{me['id']}/profile-groups/", headers=bearer(forged)
    )
    assert r.status_code == 401
    # On B's own path, B's token sees nothing of A: A's profile does not exist there.
    r = await client.get(
        f"{other_tenant.base}/profiles/{me['id']}/profile-groups/", headers=bearer(b_token)
    )
    assert r.status_code == 404


async def test_token_with_both_claims_must_match_both(api: Api, client: httpx.AsyncClient) -> None:
    me, _other, _ = await setup_groups(api)
    base = api.tenant.base
    good = bearer(token(api.tenant, profile_id=me["id"], custom_profile_id="me"))
    r = await client.get(f"{base}/profiles/{me['id']}/profile-groups/", headers=good)
    assert r.status_code == 200
    mixed = bearer(token(api.tenant, profile_id=me["id"], custom_profile_id="other"))
    r = await client.get(f"{base}/profiles/{me['id']}/profile-groups/", headers=mixed)
    assert r.status_code == 403


async def test_own_profile_deleted_is_404(api: Api, client: httpx.AsyncClient) -> None:
    me, _, _ = await setup_groups(api)
    headers = bearer(token(api.tenant, profile_id=me["id"]))
    assert (await api.delete(f"/profiles/{me['id']}/")).status_code == 204
    r = await client.get(f"{api.tenant.base}/profiles/{me['id']}/profile-groups/", headers=headers)
    assert r.status_code == 404


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_bearer_scheme_is_case_insensitive(
    api: Api, client: httpx.AsyncClient, scheme: str
) -> None:
    me, _, _ = await setup_groups(api)
    value = token(api.tenant, profile_id=me["id"])
    r = await client.get(
        f"{api.tenant.base}/profiles/{me['id']}/profile-groups/",
        headers={"Authorization": f"{scheme} {value}"},
    )
    assert r.status_code == 200


async def test_revoked_producer_token_is_401(
    api: Api, client: httpx.AsyncClient, sessionmaker: AsyncSessionMaker
) -> None:
    assert (await api.get("/profiles/")).status_code == 200
    async with sessionmaker() as session, session.begin():
        await revoke_token(session, UUID(api.tenant.token_id))
    r = await api.get("/profiles/")
    assert r.status_code == 401 and r.json()["error_code"] == "not_authenticated"
