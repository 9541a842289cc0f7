"""The attribute catalogue and the registry behind it."""

from typing import Any

import httpx

from profile_groups.attributes.registry import (
    ALIASES,
    CATEGORIES,
    PLATFORM_ATTRIBUTES,
    conditions_for,
    resolve,
)
from tests.conftest import Api, Tenant

WINDOWED = {
    "total_comments_posted",
    "total_comment_replies",
    "total_comments_reported",
    "total_reactions",
    "total_polls_answered",
    "total_quests_completed",
    "total_failed_quests",
    "quest_rewards_earned",
    "quest_rewards_claimed",
    "streak_milestones_reached",
    "streak_reset_count",
    "tier_upgrade_count",
    "tier_downgrade_count",
    "reward_balance_total_earned",
    "reward_balance_total_spent",
    "reward_actions_triggered_total",
    "leaderboard_views_count",
}
ALL_TYPES = {
    "number": ["equals", "not_equals", "greater_than", "greater_than_or_equal", "less_than",
               "less_than_or_equal", "between", "in", "not_in", "is_empty", "is_not_empty"],
    "string": ["equals", "not_equals", "in", "not_in", "contains", "not_contains", "starts_with",
               "ends_with", "is_empty", "is_not_empty"],
    "datetime": ["equals", "not_equals", "greater_than", "greater_than_or_equal", "less_than",
                 "less_than_or_equal", "between", "before", "after", "within_last_x_days",
                 "not_within_last_x_days", "is_empty", "is_not_empty"],
    "boolean": ["is", "is_empty", "is_not_empty"],
}  # fmt: skip


async def all_pages(api: Api, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    items = list(body["results"])
    while body["next"]:
        response = await api.client.get(body["next"], headers=api.tenant.headers)
        assert response.status_code == 200
        body = response.json()
        items += body["results"]
    return items, int(body["count"])


def test_registry_matches_spec_types_and_windows() -> None:
    assert len(PLATFORM_ATTRIBUTES) == 57
    assert {k for k, a in PLATFORM_ATTRIBUTES.items() if a.supports_window} == WINDOWED
    for data_type, conditions in ALL_TYPES.items():
        assert list(conditions_for(data_type)) == conditions  # type: ignore[arg-type]
    for defn in PLATFORM_ATTRIBUTES.values():
        assert defn.source == "platform" and defn.category in CATEGORIES
        assert defn.conditions == conditions_for(defn.data_type)
    assert resolve("tier_upragde_count") == "tier_upgrade_count"
    assert resolve("total_reactions") == "total_reactions"
    assert all(target in PLATFORM_ATTRIBUTES for target in ALIASES.values())


async def test_list_every_platform_attribute(api: Api) -> None:
    items, count = await all_pages(api, "/profile-group-attributes/", page_size=1000)
    assert count == len(PLATFORM_ATTRIBUTES) == len(items)
    by_key = {item["key"]: item for item in items}
    assert set(by_key) == set(PLATFORM_ATTRIBUTES)
    item = by_key["total_comments_posted"]
    assert item == {
        "key": "total_comments_posted",
        "label": "Total comments posted",
        "description": "Number of comments the profile posted.",
        "category": "comments",
        "data_type": "number",
        "source": "platform",
        "conditions": ALL_TYPES["number"],
        "supports_window": True,
    }
    assert by_key["last_comment_at"]["data_type"] == "datetime"
    assert by_key["last_comment_at"]["supports_window"] is False
    assert by_key["status_tier"]["conditions"] == ALL_TYPES["string"]
    assert by_key["is_streak_frozen"]["conditions"] == ALL_TYPES["boolean"]
    assert by_key["created_at"]["category"] == "profile"
    assert by_key["last_active_at"]["category"] == "activity"
    assert by_key["has_social_connections"]["category"] == "social"
    assert by_key["leaderboards_ranked_on"]["category"] == "leaderboards"
    assert {i["key"] for i in items if i["supports_window"]} == WINDOWED


async def test_custom_attributes_are_listed(api: Api) -> None:
    for key, data_type in [("toxicity_score", "number"), ("a_flag", "boolean")]:
        r = await api.post(
            "/custom-attributes/",
            json={"key": key, "data_type": data_type, "description": f"{key} desc"},
        )
        assert r.status_code == 201, r.text
    items, count = await all_pages(api, "/profile-group-attributes/", page_size=1000)
    assert count == len(PLATFORM_ATTRIBUTES) + 2
    # Platform attributes first, then custom ones by key.
    assert [i["key"] for i in items[-2:]] == ["a_flag", "toxicity_score"]
    assert items[-1] == {
        "key": "toxicity_score",
        "label": "Toxicity score",
        "description": "toxicity_score desc",
        "category": "custom",
        "data_type": "number",
        "source": "custom",
        "conditions": ALL_TYPES["number"],
        "supports_window": False,
    }
    custom, count = await all_pages(api, "/profile-group-attributes/", source="custom")
    assert count == 2 and [i["key"] for i in custom] == ["a_flag", "toxicity_score"]
    tiers, count = await all_pages(api, "/profile-group-attributes/", category="tiers")
    assert count == 9 and all(i["category"] == "tiers" for i in tiers)
    r = await api.get("/profile-group-attributes/toxicity_score/")
    assert r.status_code == 200 and r.json()["source"] == "custom"
    # Deleting the definition removes it from the catalogue.
    assert (await api.delete("/custom-attributes/a_flag/")).status_code == 204
    assert (await api.get("/profile-group-attributes/a_flag/")).status_code == 404


async def test_custom_attributes_of_other_tenants_are_not_listed(
    api: Api, client: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    other = Api(client, other_tenant)
    r = await other.post("/custom-attributes/", json={"key": "secret", "data_type": "string"})
    assert r.status_code == 201
    _, count = await all_pages(api, "/profile-group-attributes/")
    assert count == len(PLATFORM_ATTRIBUTES)
    assert (await api.get("/profile-group-attributes/secret/")).status_code == 404


async def test_pagination_both_ways(api: Api) -> None:
    items, count = await all_pages(api, "/profile-group-attributes/", page_size=7)
    assert len(items) == count == len(PLATFORM_ATTRIBUTES)
    assert [i["key"] for i in items] == list(PLATFORM_ATTRIBUTES)
    # Walk back from the last page.
    first = (await api.get("/profile-group-attributes/", params={"page_size": 7})).json()
    assert first["previous"] is None
    page = (await api.client.get(first["next"], headers=api.tenant.headers)).json()
    back = (await api.client.get(page["previous"], headers=api.tenant.headers)).json()
    assert back["results"] == first["results"]
    assert back["count"] == count
    assert "page_size=7" in page["next"]


async def test_tampered_cursor_is_400(api: Api) -> None:
    r = await api.get("/profile-group-attributes/", params={"cursor": "garbage"})
    assert r.status_code == 400 and r.json()["error_code"] == "invalid"
    r = await api.get("/profile-group-attributes/", params={"page_size": 0})
    assert r.status_code == 400


async def test_get_one_and_alias_and_404(api: Api) -> None:
    r = await api.get("/profile-group-attributes/days_in_current_tier/")
    assert r.status_code == 200
    assert r.json()["data_type"] == "number" and r.json()["category"] == "tiers"
    r = await api.get("/profile-group-attributes/tier_upragde_count")  # no trailing slash
    assert r.status_code == 200 and r.json()["key"] == "tier_upgrade_count"
    assert r.json()["supports_window"] is True
    r = await api.get("/profile-group-attributes/total_coments_posted/")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found.", "error_code": "not_found"}


async def test_requires_auth(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get(f"{tenant.base}/profile-group-attributes/")
    assert r.status_code == 401


async def test_platform_keys_cannot_be_custom_keys(api: Api) -> None:
    r = await api.post(
        "/custom-attributes/", json={"key": "total_reactions", "data_type": "number"}
    )
    assert r.status_code == 400
