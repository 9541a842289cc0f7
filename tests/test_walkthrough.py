"""The product page's walkthrough (../shared/seed/profile-groups.txt), request by request."""

import re

from profile_groups.db import AsyncSessionMaker
from tests.conftest import Api
from tests.factories import make_profiles

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def test_product_page_walkthrough(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    (horse,) = await make_profiles(sessionmaker, api.tenant, 1, nicknames=["Final Horse"])
    (other,) = await make_profiles(
        sessionmaker, api.tenant, 1, custom_ids=["111bb1aa-c1da-42d2-886e-c48b2bf803a8"]
    )

    # Creating a new profile group
    r = await api.post(
        "/profile-groups/",
        json={
            "name": "Group1",
            "is_active": True,
            "description": "Sample Profile Group",
            "attributes": [{"key": "key1", "value": "val1"}],
        },
    )
    assert r.status_code == 201
    group = r.json()
    assert UUID_RE.match(group["id"])
    assert group["name"] == "Group1"
    assert group["is_active"] is True
    assert group["description"] == "Sample Profile Group"
    assert group["profile_count"] == 0
    assert group["custom_id"] is None
    assert TIMESTAMP.match(group["created_at"])
    assert group["attributes"] == [{"key": "key1", "value": "val1"}]
    assert group["membership_type"] == "static"
    assert "ruleset" not in group
    gid = group["id"]

    # Listing profile groups in an app
    r = await api.get("/profile-groups/")
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 1
    assert page["next"] is None
    assert page["previous"] is None
    assert page["results"] == [group]

    # Listing dynamic groups: none yet
    r = await api.get("/profile-groups/?membership_type=dynamic")
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}

    # Updating a profile group's details
    r = await api.patch(
        f"/profile-groups/{gid}/", json={"name": "Group - edited", "is_active": True}
    )
    assert r.status_code == 200
    edited = r.json()
    assert edited["name"] == "Group - edited"
    assert edited["is_active"] is True
    assert edited["description"] == "Sample Profile Group"
    assert edited["profile_count"] == 0
    assert edited["custom_id"] is None
    assert edited["created_at"] == group["created_at"]
    assert edited["attributes"] == [{"key": "key1", "value": "val1"}]

    # Adding a member
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [horse]})
    assert r.status_code == 200
    assert r.json() == {"successfully_added": [horse], "already_added": [], "invalid_ids": []}

    # Or by custom id
    r = await api.post(
        f"/profile-groups/{gid}/members/",
        json={"custom_ids": ["111bb1aa-c1da-42d2-886e-c48b2bf803a8"]},
    )
    assert r.json() == {
        "successfully_added": ["111bb1aa-c1da-42d2-886e-c48b2bf803a8"],
        "already_added": [],
        "invalid_ids": [],
    }

    # Bulk adding: both are members already
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [horse, other]})
    assert r.json() == {
        "successfully_added": [],
        "already_added": [horse, other],
        "invalid_ids": [],
    }

    # Listing profile group members
    r = await api.get(f"/profile-groups/{gid}/members/")
    assert r.status_code == 200
    members = r.json()
    assert members["count"] == 2
    assert members["next"] is None and members["previous"] is None
    by_id = {m["id"]: m for m in members["results"]}
    assert by_id[horse]["nickname"] == "Final Horse"
    assert by_id[horse]["custom_id"] is None
    assert TIMESTAMP.match(by_id[horse]["membership_created_at"])
    assert set(by_id[horse]) == {"id", "nickname", "custom_id", "membership_created_at"}

    # Listing groups a profile is a member of
    r = await api.get(f"/profiles/{horse}/profile-groups/")
    assert r.status_code == 200
    groups = r.json()
    assert groups["count"] == 1 and groups["next"] is None and groups["previous"] is None
    (entry,) = groups["results"]
    assert entry["group_id"] == gid
    assert entry["group_name"] == "Group - edited"
    assert entry["profile_count"] == 2
    assert entry["is_active"] is True
    assert entry["created_at"] == group["created_at"]
    assert entry["custom_id"] is None
    assert entry["membership_type"] == "static"
    assert TIMESTAMP.match(entry["membership_created_at"])

    # Removing members (by profile id, then by custom id)
    r = await api.delete(f"/profile-groups/{gid}/members/", json={"profile_ids": [horse]})
    assert r.status_code == 204
    assert r.content == b""
    r = await api.delete(
        f"/profile-groups/{gid}/members/",
        json={"custom_ids": ["111bb1aa-c1da-42d2-886e-c48b2bf803a8"]},
    )
    assert r.status_code == 204
    r = await api.get(f"/profile-groups/{gid}/")
    assert r.json()["profile_count"] == 0

    # Changing is_active to false makes the group unavailable through the API
    r = await api.patch(f"/profile-groups/{gid}/", json={"is_active": False})
    assert r.status_code == 200
    assert r.json()["is_active"] is False
    r = await api.get(f"/profile-groups/{gid}/")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found.", "error_code": "not_found"}

    # Deleting a profile group (a second, active one) — without a trailing slash, as the page does
    r = await api.post("/profile-groups/", json={"name": "Doomed"})
    doomed = r.json()["id"]
    r = await api.request(
        "DELETE", f"/profile-groups/{doomed}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 204
    r = await api.get(f"/profile-groups/{doomed}/")
    assert r.status_code == 404
