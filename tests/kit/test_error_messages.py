"""Error messages in the service's own words (docs/api.md, "Error messages"): the token hints,
"did you mean" for unknown body fields, query values and event types, and no library wording."""

from typing import Any

import httpx
import pytest

from profile_groups.activity.event_types import EVENT_TYPES
from tests.conftest import Api, Tenant

# Phrases of pydantic and FastAPI that must never reach a client.
LIBRARY_WORDING = (
    "Value error",
    "Assertion failed",
    "Field required",
    "Input should",
    "Extra inputs",
    "validation error",
    "JSON decode error",
    "pydantic",
)


def assert_our_words(body: dict[str, Any]) -> None:
    texts = [body["detail"], *(item["msg"] for item in body.get("errors", []))]
    for text in texts:
        for phrase in LIBRARY_WORDING:
            assert phrase.lower() not in text.lower(), (phrase, text)
        assert text.endswith((".", "?")), text


async def test_no_authorization_header_says_what_to_send(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    r = await client.get(f"{tenant.base}/profile-groups/")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <token>" in r.json()["detail"]


@pytest.mark.parametrize("header", ["{token}", "Token {token}", "bearer:{token}"])
async def test_a_token_without_the_bearer_prefix_is_named(
    client: httpx.AsyncClient, tenant: Tenant, header: str
) -> None:
    headers = {"Authorization": header.format(token=tenant.token)}
    r = await client.get(f"{tenant.base}/profile-groups/", headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert body["error_code"] == "not_authenticated"
    assert "'Bearer ' prefix is missing" in body["detail"]


async def test_a_token_on_another_applications_path_says_so(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    r = await client.get(f"{other_tenant.base}/profiles/", headers=tenant.headers)
    assert r.status_code == 403
    assert r.json()["error_code"] == "permission_denied"
    assert "This token belongs to another application" in r.json()["detail"]


async def test_an_unknown_body_field_suggests_the_field_meant(api: Api) -> None:
    r = await api.post("/profile-groups/", json={"name": "G", "desciption": "x"})
    assert r.status_code == 400
    body = r.json()
    assert body["errors"] == [
        {
            "loc": ["body", "desciption"],
            "msg": "Unknown field 'desciption'; did you mean 'description'?",
            "type": "extra_forbidden",
        }
    ]
    assert "did you mean 'description'?" in body["detail"]
    assert_our_words(body)


async def test_an_unknown_nested_field_suggests_within_its_object(api: Api) -> None:
    r = await api.post(
        "/profile-groups/", json={"name": "G", "attributes": [{"kye": "a", "value": "b"}]}
    )
    assert r.status_code == 400
    errors = {tuple(e["loc"]): e for e in r.json()["errors"]}
    assert "did you mean 'key'?" in errors[("body", "attributes", 0, "kye")]["msg"]
    assert errors[("body", "attributes", 0, "key")]["msg"] == "This field is required."


async def test_an_unknown_field_like_none_lists_the_allowed_ones(api: Api) -> None:
    r = await api.patch("/custom-attributes/score/", json={"zzz": 1})
    # The attribute does not exist, but the body is checked first.
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["msg"] == "Unknown field 'zzz'. Allowed: 'description'."


async def test_an_unknown_query_value_suggests_the_value_meant(api: Api) -> None:
    r = await api.get("/profile-groups/", params={"membership_type": "dinamic"})
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["loc"] == ["query", "membership_type"]
    assert error["msg"] == "Expected 'static' or 'dynamic'; did you mean 'dynamic'?"


async def test_an_unknown_event_type_suggests_the_type_meant(api: Api) -> None:
    events = [
        {"type": "coment_posted", "custom_id": "u1"},
        {"type": "xyzzy", "custom_id": "u1"},
        {"type": "comment_posted", "custom_id": "u1", "ocurred_at": "2025-01-01T00:00:00Z"},
    ]
    r = await api.post("/events/", json={"events": events})
    assert r.status_code == 200
    details = [item["detail"] for item in r.json()["rejected"]]
    assert details[0] == "Unknown event type 'coment_posted'; did you mean 'comment_posted'?"
    # Nothing close: where the allowed types are listed (too many to spell out).
    assert details[1].startswith("Unknown event type 'xyzzy'.")
    assert f"{len(EVENT_TYPES)} allowed values are listed in" in details[1]
    assert details[2] == "Unknown field 'ocurred_at'; did you mean 'occurred_at'?"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "loc", "msg"),
    [
        ("POST", "/profile-groups/", {"json": {}}, ["body", "name"], "This field is required."),
        ("POST", "/profile-groups/", {"json": {"name": 5}}, ["body", "name"], "Expected a string."),
        ("POST", "/profile-groups/", {"json": {"name": ""}}, ["body", "name"],
         "Must be at least 1 character long."),
        ("POST", "/profile-groups/", {"json": {"name": "G", "is_active": "yes"}},
         ["body", "is_active"], "Expected true or false."),
        ("POST", "/profile-groups/", {"json": {"name": "G", "membership_type": "dynamic"}},
         ["body"], "A dynamic group requires a 'rule_tree'."),
        ("POST", "/profile-groups/", {}, ["body"], "A JSON request body is required."),
        ("POST", "/profile-groups/", {"json": ["G"]}, ["body"], "Expected a JSON object."),
        ("GET", "/profile-groups/", {"params": {"page_size": "abc"}}, ["query", "page_size"],
         "Expected an integer."),
        ("GET", "/profile-groups/", {"params": {"page_size": "0"}}, ["query", "page_size"],
         "Must be 1 or more."),
        ("POST", "/profile-groups/preview/", {"json": {"rule_tree": {"operator": "AND"}}},
         ["body", "rule_tree", "children"], "This field is required."),
        ("POST", "/profile-groups/preview/", {"json": {"rule_tree": []}}, ["body", "rule_tree"],
         "Expected a JSON object."),
        ("POST", "/events/", {"json": {"events": [{}] * 1001}}, ["body", "events"],
         "Expected at most 1000 items (got 1001)."),
    ],
)  # fmt: skip
async def test_validation_errors_are_in_our_words(
    api: Api, method: str, path: str, kwargs: dict[str, Any], loc: list[Any], msg: str
) -> None:
    r = await api.request(method, path, **kwargs)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "invalid"
    assert {"loc": loc, "msg": msg} in [{"loc": e["loc"], "msg": e["msg"]} for e in body["errors"]]
    assert_our_words(body)


async def test_malformed_json_is_in_our_words(api: Api) -> None:
    r = await api.post(
        "/profile-groups/", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["detail"] == "Malformed JSON in request body."
    assert_our_words(r.json())


async def test_bulk_item_errors_are_in_our_words(api: Api) -> None:
    items = [{"custom_id": 5}, {"custom_id": "a", "nicknam": "x"}, {"nickname": "y"}]
    r = await api.post("/profiles/bulk/", json={"profiles": items})
    assert r.status_code == 200
    details = {e["index"]: e["detail"] for e in r.json()["errors"]}
    assert details[0] == "custom_id: Expected a string."
    assert details[1] == "nicknam: Unknown field 'nicknam'; did you mean 'nickname'?"
    assert details[2] == "Each item needs an 'id' or a 'custom_id'."
    for detail in details.values():
        assert not any(p.lower() in detail.lower() for p in LIBRARY_WORDING), detail
