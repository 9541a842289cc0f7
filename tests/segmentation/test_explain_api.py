"""GET /profile-groups/{id}/explain/{profile_id}/ and its custom-id form (docs/segmentation.md,
"Explain"): a dynamic group's tree annotated for one profile, a static group's membership, the
404s and the profile-token read policy."""

import uuid
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from profile_groups.db import AsyncSessionMaker
from profile_groups.groups.service import activate_group
from profile_groups.kit.repository import clock
from profile_groups.segmentation.service import check_tree, explain
from tests.activity.helpers import ago, new_profile, send
from tests.applications.test_profile_tokens import bearer, token
from tests.conftest import Api
from tests.factories import application_id
from tests.groups.helpers import create_dynamic, evaluate

NOT_FOUND = {"detail": "Not found.", "error_code": "not_found"}

TREE: dict[str, Any] = {
    "operator": "AND",
    "children": [
        {
            "operator": "OR",
            "children": [
                {
                    "attribute": "total_comments_posted",
                    "condition": "greater_than",
                    "value": 2,
                    "window_days": 7,
                },
                {"attribute": "has_ever_reacted", "condition": "is", "value": True},
            ],
        },
        {
            "operator": "OR",
            "children": [
                {"attribute": "score", "condition": "greater_than_or_equal", "value": 5},
                {"attribute": "nickname", "condition": "starts_with", "value": "al"},
                {"attribute": "last_comment_at", "condition": "within_last_x_days", "value": 3},
            ],
        },
    ],
}


async def _setup(api: Api, sessionmaker: AsyncSessionMaker) -> tuple[dict[str, Any], ...]:
    r = await api.post("/custom-attributes/", json={"key": "score", "data_type": "number"})
    assert r.status_code == 201, r.text
    alice = await new_profile(api, nickname="Alice", custom_id="alice")
    bob = await new_profile(api, nickname="", custom_id="bob", custom_attributes={"score": 1.5})
    # Three comments in the window (one 10 days ago does not count in it), none in 3 days.
    await send(
        api,
        *(
            {"type": "comment_posted", "profile_id": alice["id"], "occurred_at": ago(d)}
            for d in (4, 5, 6, 10)
        ),
    )
    group = await create_dynamic(api, None, sessionmaker, TREE)
    await evaluate(sessionmaker, group["id"])
    return alice, bob, group


def _leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "operator" in node:
        return [leaf for child in node["children"] for leaf in _leaves(child)]
    return [node]


async def test_dynamic_member_and_non_member(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    alice, bob, group = await _setup(api, sessionmaker)

    r = await api.get(f"/profile-groups/{group['id']}/explain/{alice['id']}/")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"as_of", "member", "matches", "tree"}
    assert body["as_of"].endswith("Z")
    assert body["member"] is True and body["matches"] is True
    tree = body["tree"]
    assert tree["operator"] == "AND" and tree["result"] is True
    assert [c["result"] for c in tree["children"]] == [True, True]
    leaves = _leaves(tree)
    # Each leaf as given, with the profile's value as the rule reads it and its result.
    assert leaves[0] == {
        "attribute": "total_comments_posted",
        "condition": "greater_than",
        "value": 2,
        "window_days": 7,
        "actual": 3,
        "result": True,
    }
    assert leaves[1] == {
        "attribute": "has_ever_reacted",
        "condition": "is",
        "value": True,
        "actual": False,
        "result": False,
    }
    assert "window_days" not in leaves[1]
    # No score: null, and a positive condition does not hold on a missing value.
    assert leaves[2]["actual"] is None and leaves[2]["result"] is False
    assert leaves[3]["actual"] == "Alice" and leaves[3]["result"] is True
    assert leaves[4]["actual"] == ago(4) and leaves[4]["result"] is False

    r = await api.get(f"/profile-groups/{group['id']}/explain/{bob['id']}/")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member"] is False and body["matches"] is False
    assert body["tree"]["result"] is False
    assert [c["result"] for c in body["tree"]["children"]] == [False, False]
    assert [(leaf["actual"], leaf["result"]) for leaf in _leaves(body["tree"])] == [
        (0, False),  # a count without events is 0, not null
        (False, False),
        (1.5, False),
        (None, False),  # an empty nickname is no value
        (None, False),  # no comment yet
    ]


async def test_matches_runs_ahead_of_membership(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    """`matches` is the tree now; `member` the stored membership, which follows it at the next
    update (here: the next evaluation, as no worker applies changes in this test)."""
    _, bob, group = await _setup(api, sessionmaker)
    await send(api, {"type": "reaction_added", "profile_id": bob["id"]})
    r = await api.patch(f"/profiles/{bob['id']}/", json={"custom_attributes": {"score": 5}})
    assert r.status_code == 200, r.text
    url = f"/profile-groups/{group['id']}/explain/{bob['id']}/"
    body = (await api.get(url)).json()
    assert body["matches"] is True and body["member"] is False
    assert _leaves(body["tree"])[2] == {
        "attribute": "score",
        "condition": "greater_than_or_equal",
        "value": 5,
        "actual": 5,
        "result": True,
    }
    await evaluate(sessionmaker, group["id"])
    body = (await api.get(url)).json()
    assert body["matches"] is True and body["member"] is True


async def test_negative_condition_on_a_missing_value(
    api: Api, sessionmaker: AsyncSessionMaker
) -> None:
    """A negative condition holds where the profile has no value, as in evaluations; a bare
    leaf is a whole tree."""
    profile = await new_profile(api)
    tree = {"attribute": "status_tier", "condition": "not_equals", "value": "Gold"}
    group = await create_dynamic(api, None, sessionmaker, tree)
    await evaluate(sessionmaker, group["id"])
    r = await api.get(f"/profile-groups/{group['id']}/explain/{profile['id']}/")
    assert r.status_code == 200, r.text
    assert r.json()["tree"] == {**tree, "actual": None, "result": True}
    assert r.json()["matches"] is True and r.json()["member"] is True


async def test_static_group(api: Api) -> None:
    inside = await new_profile(api, custom_id="in")
    outside = await new_profile(api)
    gid = (await api.post("/profile-groups/", json={"name": "Static"})).json()["id"]
    r = await api.post(f"/profile-groups/{gid}/members/", json={"profile_ids": [inside["id"]]})
    assert r.status_code == 200, r.text
    members = (await api.get(f"/profile-groups/{gid}/members/")).json()["results"]

    r = await api.get(f"/profile-groups/{gid}/explain/{inside['id']}/")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "member": True,
        "membership_created_at": members[0]["membership_created_at"],
    }
    r = await api.get(f"/profile-groups/{gid}/explain/profile-by-custom-id/in/")
    assert r.status_code == 200, r.text
    assert r.json()["member"] is True
    r = await api.get(f"/profile-groups/{gid}/explain/{outside['id']}/")
    assert r.status_code == 200, r.text
    assert r.json() == {"member": False, "membership_created_at": None}


async def test_by_custom_id(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    alice, _, group = await _setup(api, sessionmaker)
    by_id = (await api.get(f"/profile-groups/{group['id']}/explain/{alice['id']}/")).json()
    r = await api.get(f"/profile-groups/{group['id']}/explain/profile-by-custom-id/alice/")
    assert r.status_code == 200, r.text
    by_custom = r.json()
    assert by_custom["member"] is True and by_custom["matches"] is True
    assert {**by_custom, "as_of": None} == {**by_id, "as_of": None}
    r = await api.get(f"/profile-groups/{group['id']}/explain/profile-by-custom-id/nobody/")
    assert r.status_code == 404 and r.json() == NOT_FOUND


async def test_not_found(
    api: Api, sessionmaker: AsyncSessionMaker, other_tenant: Any, client: httpx.AsyncClient
) -> None:
    alice, _, group = await _setup(api, sessionmaker)
    gid, pid = group["id"], alice["id"]
    for path in (
        f"/profile-groups/{uuid.uuid4()}/explain/{pid}/",
        f"/profile-groups/{gid}/explain/{uuid.uuid4()}/",
        f"/profile-groups/{gid}/explain/not-a-uuid/",
        f"/profile-groups/not-a-uuid/explain/{pid}/",
        f"/profile-groups/{uuid.uuid4()}/explain/profile-by-custom-id/alice/",
    ):
        r = await api.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json() == NOT_FOUND, path
    # Another application's profile is an unknown one.
    other = Api(client, other_tenant)
    theirs = await new_profile(other, custom_id="alice")
    r = await api.get(f"/profile-groups/{gid}/explain/{theirs['id']}/")
    assert r.status_code == 404 and r.json() == NOT_FOUND
    # An inactive group is unavailable.
    r = await api.patch(f"/profile-groups/{gid}/", json={"is_active": False})
    assert r.status_code == 200, r.text
    r = await api.get(f"/profile-groups/{gid}/explain/{pid}/")
    assert r.status_code == 404 and r.json() == NOT_FOUND


async def test_rules_that_no_longer_validate(api: Api, sessionmaker: AsyncSessionMaker) -> None:
    """A custom attribute deleted while the group was inactive: the tree is not evaluated, as an
    evaluation would not evaluate it (409 naming the problem, with its path)."""
    alice, _, group = await _setup(api, sessionmaker)
    gid = group["id"]
    r = await api.patch(f"/profile-groups/{gid}/", json={"is_active": False})
    assert r.status_code == 200, r.text
    assert (await api.delete("/custom-attributes/score/")).status_code == 204
    async with sessionmaker() as session, session.begin():
        await activate_group(session, uuid.UUID(gid))
    r = await api.get(f"/profile-groups/{gid}/explain/{alice['id']}/")
    assert r.status_code == 409, r.text
    assert r.json()["error_code"] == "conflict"
    assert "rule_tree.children.1.children.0.attribute" in r.json()["detail"]


async def test_profile_token_policy(
    api: Api, sessionmaker: AsyncSessionMaker, client: httpx.AsyncClient
) -> None:
    alice, bob, group = await _setup(api, sessionmaker)
    base = f"{api.tenant.base}/profile-groups/{group['id']}/explain"
    for claims in ({"profile_id": alice["id"]}, {"custom_profile_id": "alice"}):
        headers = bearer(token(api.tenant, **claims))
        r = await client.get(f"{base}/{alice['id']}/", headers=headers)
        assert r.status_code == 200, (claims, r.text)
        assert r.json()["member"] is True
        r = await client.get(f"{base}/profile-by-custom-id/alice/", headers=headers)
        assert r.status_code == 200, (claims, r.text)
        # Another profile, existing or not, by id or custom id: 403, revealing nothing.
        for path in (
            f"{base}/{bob['id']}/",
            f"{base}/{uuid.uuid4()}/",
            f"{base}/not-a-uuid/",
            f"{base}/profile-by-custom-id/bob/",
            f"{base}/profile-by-custom-id/nobody/",
        ):
            r = await client.get(path, headers=headers)
            assert r.status_code == 403, (claims, path, r.text)
            assert r.json()["error_code"] == "permission_denied"
        # Its own profile in a group that does not exist: 404.
        r = await client.get(
            f"{api.tenant.base}/profile-groups/{uuid.uuid4()}/explain/{alice['id']}/",
            headers=headers,
        )
        assert r.status_code == 404 and r.json() == NOT_FOUND


async def test_one_statement_evaluates_the_whole_tree(
    api: Api, sessionmaker: AsyncSessionMaker, engine: AsyncEngine
) -> None:
    """Every node's result and every leaf's value, windows included, come from ONE statement."""
    alice, _, _ = await _setup(api, sessionmaker)
    app_id = await application_id(sessionmaker, api.tenant)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async with sessionmaker() as session:
        checked, errors = await check_tree(session, app_id, TREE)
        assert checked is not None, errors
        as_of = await clock(session)
        event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            explained = await explain(session, app_id, checked, TREE, uuid.UUID(alice["id"]), as_of)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert explained is not None and explained.matches is True
    assert len(statements) == 1, statements
