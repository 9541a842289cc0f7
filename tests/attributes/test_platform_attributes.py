"""Every platform attribute of docs/activity.md: events in through POST /events/, values out through
GET /profiles/{id}/attributes/, edge cases of each derivation included. Every check also
compares the whole value set with the plain-Python reference (tests/activity/reference.py)."""

from typing import Any

from profile_groups.attributes.registry import PLATFORM_ATTRIBUTES
from tests.activity.helpers import ago, check, new_profile, send, values
from tests.conftest import Api


def ev(type_: str, profile: dict[str, Any], when: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "profile_id": profile["id"], "occurred_at": when, **extra}


def tier(p: dict[str, Any], when: str, name: str, rank: int, direction: str) -> dict[str, Any]:
    return ev(
        "tier_changed", p, when, value=name, properties={"rank": rank, "direction": direction}
    )


async def test_defaults_before_any_event(api: Api) -> None:
    profile = await new_profile(api, custom_id="u1", nickname="Nick")
    got = await check(api, profile, [])
    assert set(got) == set(PLATFORM_ATTRIBUTES)
    for key, defn in PLATFORM_ATTRIBUTES.items():
        if defn.data_type == "number":
            assert got[key] == 0, key
        elif defn.data_type == "boolean":
            assert got[key] is False, key
    assert got["last_active_at"] is None
    assert got["last_comment_at"] is None
    assert got["status_tier"] is None
    assert got["nickname"] == "Nick" and got["custom_id"] == "u1"
    assert got["created_at"] == profile["created_at"]


async def test_comments_reactions_polls(api: Api) -> None:
    p = await new_profile(api)
    events = [
        ev("comment_posted", p, ago(3)),
        ev("comment_posted", p, ago(1)),
        ev("comment_posted", p, ago(2)),  # out of order: last_comment_at stays at ago(1)
        ev("comment_replied", p, ago(2)),
        ev("comment_reported", p, ago(2)),
        ev("reaction_added", p, ago(5)),
        ev("poll_answered", p, ago(4)),
        ev("poll_answered", p, ago(6)),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["total_comments_posted"] == 3
    assert got["total_comment_replies"] == 1
    assert got["total_comments_reported"] == 1
    assert got["last_comment_at"] == ago(1)
    assert got["has_ever_commented"] is True
    assert got["total_reactions"] == 1 and got["has_ever_reacted"] is True
    assert got["last_reaction_at"] == ago(5)
    assert got["total_polls_answered"] == 2 and got["has_ever_answered_poll"] is True
    assert got["last_poll_answered_at"] == ago(4)
    assert got["last_active_at"] == ago(1)


async def test_replies_and_reports_do_not_count_as_comments(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("comment_replied", p, ago(1)), ev("comment_reported", p, ago(1))]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["has_ever_commented"] is False and got["last_comment_at"] is None
    assert got["last_active_at"] == ago(1)


async def test_last_active_at_counts_every_type(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("comment_posted", p, ago(10)), ev("leaderboard_viewed", p, ago(0, hours=1))]
    await send(api, *events)
    assert (await check(api, p, events))["last_active_at"] == ago(0, hours=1)


async def test_profile_fields(api: Api) -> None:
    p = await new_profile(
        api, custom_id="c-1", nickname="Final Horse", created_at="2024-01-02T03:04:05.000006Z"
    )
    got = await check(api, p, [])
    assert got["created_at"] == "2024-01-02T03:04:05.000006Z"
    assert got["nickname"] == "Final Horse" and got["custom_id"] == "c-1"
    bare = await new_profile(api)
    got = await check(api, bare, [])
    assert got["nickname"] is None and got["custom_id"] is None


async def test_social_connections(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("social_connection_added", p, ago(3))]
    await send(api, *events)
    assert (await check(api, p, events))["has_social_connections"] is True
    more = [ev("social_connection_removed", p, ago(2))]
    await send(api, *more)
    assert (await check(api, p, events + more))["has_social_connections"] is False
    # More removals than additions never go "below" false; one more add still nets zero.
    extra = [ev("social_connection_removed", p, ago(1)), ev("social_connection_added", p, ago(1))]
    await send(api, *extra)
    assert (await check(api, p, events + more + extra))["has_social_connections"] is False


async def test_quests(api: Api) -> None:
    p = await new_profile(api)
    events = [
        ev("quest_started", p, ago(5)),
        ev("quest_started", p, ago(4)),
        ev("quest_started", p, ago(3)),
        ev("quest_completed", p, ago(2)),
        ev("quest_failed", p, ago(1)),
        ev("quest_reward_earned", p, ago(2)),
        ev("quest_reward_earned", p, ago(2)),
        ev("quest_reward_claimed", p, ago(1)),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["total_active_quests"] == 1
    assert got["total_quests_completed"] == 1 and got["total_failed_quests"] == 1
    assert got["quest_completion_rate"] == 1 / 3
    assert got["completed_any_quest"] is True and got["ever_started_quest"] is True
    assert got["quest_rewards_earned"] == 2 and got["quest_rewards_claimed"] == 1
    assert got["quest_rewards_unclaimed"] == 1 and got["has_unclaimed_quest_rewards"] is True
    assert got["last_quest_started_at"] == ago(3)
    assert got["last_quest_completed_at"] == ago(2)


async def test_quest_counts_never_go_negative(api: Api) -> None:
    p = await new_profile(api)
    # Completions without starts (e.g. starts before the integration): no division by zero,
    # no negative active quests or unclaimed rewards.
    events = [
        ev("quest_completed", p, ago(2)),
        ev("quest_failed", p, ago(2)),
        ev("quest_reward_claimed", p, ago(1)),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["total_active_quests"] == 0
    assert got["quest_completion_rate"] == 0
    assert got["ever_started_quest"] is False and got["completed_any_quest"] is True
    assert got["quest_rewards_unclaimed"] == 0 and got["has_unclaimed_quest_rewards"] is False


async def test_streak_current_longest_first_last(api: Api) -> None:
    p = await new_profile(api)
    events = [
        ev("streak_activity", p, ago(5), value=1),
        ev("streak_activity", p, ago(4), value=2),
        ev("streak_activity", p, ago(3), value=7),
        ev("streak_activity", p, ago(1), value=3),
        ev("streak_milestone_reached", p, ago(3)),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["current_streak_length"] == 3 and got["longest_streak_length"] == 7
    assert got["first_streak_activity"] == ago(5) and got["last_streak_activity"] == ago(1)
    assert got["has_ever_started_streak"] is True and got["is_streak_active"] is True
    assert got["streak_milestones_reached"] == 1
    assert got["consecutive_streak_length"] == 3 and got["periodic_streak_length"] == 0


async def test_streak_reset_after_activity_then_new_activity(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("streak_activity", p, ago(3), value=4), ev("streak_reset", p, ago(2))]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["current_streak_length"] == 0 and got["is_streak_active"] is False
    assert got["longest_streak_length"] == 4 and got["streak_reset_count"] == 1
    assert got["consecutive_streak_length"] == 0
    more = [ev("streak_activity", p, ago(1), value=1)]
    await send(api, *more)
    got = await check(api, p, events + more)
    assert got["current_streak_length"] == 1 and got["is_streak_active"] is True


async def test_streak_reset_older_than_activity_does_not_reset(api: Api) -> None:
    p = await new_profile(api)
    # The reset arrives last but happened before the latest activity.
    events = [ev("streak_activity", p, ago(1), value=5), ev("streak_reset", p, ago(2))]
    await send(api, *events)
    assert (await check(api, p, events))["current_streak_length"] == 5


async def test_streak_value_zero_is_not_active(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("streak_activity", p, ago(1), value=0)]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["has_ever_started_streak"] is True and got["is_streak_active"] is False


async def test_streak_types(api: Api) -> None:
    p = await new_profile(api)
    events = [
        ev("streak_activity", p, ago(4), value=10, properties={"streak_type": "consecutive"}),
        ev("streak_activity", p, ago(3), value=2, properties={"streak_type": "periodic"}),
        ev("streak_activity", p, ago(2), value=11),  # consecutive by default
        ev("streak_activity", p, ago(5), value=9, properties={"streak_type": "periodic"}),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["consecutive_streak_length"] == 11
    assert got["periodic_streak_length"] == 2
    assert got["current_streak_length"] == 11
    # A reset after both zeroes both.
    more = [ev("streak_reset", p, ago(1))]
    await send(api, *more)
    got = await check(api, p, events + more)
    assert got["consecutive_streak_length"] == 0 and got["periodic_streak_length"] == 0


async def test_streak_frozen_then_unfrozen(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("streak_frozen", p, ago(3))]
    await send(api, *events)
    assert (await check(api, p, events))["is_streak_frozen"] is True
    more = [ev("streak_unfrozen", p, ago(2))]
    await send(api, *more)
    assert (await check(api, p, events + more))["is_streak_frozen"] is False
    # A late-arriving older freeze does not refreeze.
    late = [ev("streak_frozen", p, ago(4))]
    await send(api, *late)
    assert (await check(api, p, events + more + late))["is_streak_frozen"] is False
    again = [ev("streak_frozen", p, ago(1))]
    await send(api, *again)
    assert (await check(api, p, events + more + late + again))["is_streak_frozen"] is True


async def test_tiers_downgrade_then_upgrade(api: Api) -> None:
    p = await new_profile(api)
    events = [
        tier(p, ago(30), "Silver", 2, "upgrade"),
        tier(p, ago(20), "Gold", 3, "upgrade"),
        tier(p, ago(10), "Silver", 2, "downgrade"),
        tier(p, ago(2, hours=12), "Gold", 3, "upgrade"),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["status_tier"] == "Gold" and got["current_tier_rank"] == 3
    assert got["last_tier_change_at"] == ago(2, hours=12) == got["tier_entry_date"]
    assert got["days_in_current_tier"] == 2
    assert got["tier_upgrade_count"] == 3 and got["tier_downgrade_count"] == 1
    assert got["have_ever_upgraded_tier"] is True and got["has_ever_reached_tier"] is True


async def test_tier_downgrade_only_and_out_of_order(api: Api) -> None:
    p = await new_profile(api)
    events = [
        tier(p, ago(1), "Bronze", 1, "downgrade"),
        tier(p, ago(9), "Platinum", 4, "downgrade"),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["status_tier"] == "Bronze" and got["current_tier_rank"] == 1
    assert got["have_ever_upgraded_tier"] is False and got["has_ever_reached_tier"] is True
    assert got["days_in_current_tier"] == 1


async def test_tier_tie_goes_to_later_accepted(api: Api) -> None:
    p = await new_profile(api)
    when = ago(1)
    first = [tier(p, when, "A", 1, "upgrade")]
    second = [tier(p, when, "B", 2, "upgrade")]
    await send(api, *first)
    await send(api, *second)
    got = await check(api, p, first + second)
    assert got["status_tier"] == "B" and got["current_tier_rank"] == 2


async def test_tier_upgrade_alias_in_catalogue_values(api: Api) -> None:
    p = await new_profile(api)
    got = await values(api, p["id"])
    # The alias is accepted in rules and the catalogue; values are listed under the real key.
    assert "tier_upgrade_count" in got["values"] and "tier_upragde_count" not in got["values"]


async def test_rewards_balance_after_spending(api: Api) -> None:
    p = await new_profile(api)
    events = [
        ev("reward_earned", p, ago(5), value=100),
        ev("reward_earned", p, ago(3), value=20.5),
        ev("reward_spent", p, ago(2), value=70.25),
        ev("reward_spent", p, ago(1), value=0),
        ev("reward_action_triggered", p, ago(1)),
    ]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["reward_balance"] == 50.25
    assert got["reward_balance_total_earned"] == 120.5
    assert got["reward_balance_total_spent"] == 70.25
    assert got["last_reward_earned_at"] == ago(3)
    assert got["has_earned_any_reward"] is True
    assert got["reward_actions_triggered_total"] == 1


async def test_reward_balance_can_be_negative(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("reward_spent", p, ago(1), value=5)]
    await send(api, *events)
    got = await check(api, p, events)
    assert got["reward_balance"] == -5 and got["has_earned_any_reward"] is False


async def test_distinct_leaderboards(api: Api) -> None:
    p = await new_profile(api)
    events = [
        ev("leaderboard_ranked", p, ago(3), properties={"leaderboard_id": "weekly"}),
        ev("leaderboard_ranked", p, ago(2), properties={"leaderboard_id": "weekly"}),
        ev("leaderboard_ranked", p, ago(1), properties={"leaderboard_id": "monthly"}),
        ev("leaderboard_viewed", p, ago(1)),
        ev("leaderboard_viewed", p, ago(1)),
    ]
    await send(api, *events[:2])
    await send(api, *events[2:])
    got = await check(api, p, events)
    assert got["leaderboards_ranked_on"] == 2 and got["is_ranked_on_leaderboard"] is True
    assert got["leaderboard_views_count"] == 2
    # Another batch naming a known board again changes nothing.
    again = [ev("leaderboard_ranked", p, ago(0), properties={"leaderboard_id": "monthly"})]
    await send(api, *again)
    assert (await check(api, p, events + again))["leaderboards_ranked_on"] == 2


async def test_leaderboards_are_per_profile(api: Api) -> None:
    a, b = await new_profile(api), await new_profile(api)
    await send(
        api,
        ev("leaderboard_ranked", a, ago(1), properties={"leaderboard_id": "x"}),
        ev("leaderboard_ranked", b, ago(1), properties={"leaderboard_id": "x"}),
    )
    assert (await values(api, a["id"]))["values"]["leaderboards_ranked_on"] == 1
    assert (await values(api, b["id"]))["values"]["leaderboards_ranked_on"] == 1


async def test_out_of_order_batches_give_same_values(api: Api) -> None:
    a, b = await new_profile(api), await new_profile(api)

    def story(p: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            ev("streak_activity", p, ago(5), value=3),
            ev("streak_reset", p, ago(4)),
            ev("streak_activity", p, ago(3), value=1),
            tier(p, ago(6), "Gold", 3, "upgrade"),
            tier(p, ago(2), "Silver", 2, "downgrade"),
            ev("streak_frozen", p, ago(2)),
            ev("streak_unfrozen", p, ago(1)),
            ev("reward_earned", p, ago(1), value=9),
        ]

    forward, backward = story(a), story(b)
    for event in forward:
        await send(api, event)
    await send(api, *reversed(backward))
    va = (await values(api, a["id"]))["values"]
    vb = (await values(api, b["id"]))["values"]
    for key in ("nickname", "custom_id", "created_at"):
        va.pop(key), vb.pop(key)
    assert va == vb
    assert va["current_streak_length"] == 1 and va["status_tier"] == "Silver"
    assert va["is_streak_frozen"] is False


async def test_duplicate_event_ids_across_batches_count_once(api: Api) -> None:
    p = await new_profile(api)
    e1 = ev("reward_earned", p, ago(2), value=10, id="r-1")
    e2 = ev("comment_posted", p, ago(1), id="c-1")
    assert (await send(api, e1, e2))["accepted"] == 2
    assert (await send(api, e1, e2)) == {"accepted": 0, "duplicates": 2, "rejected": []}
    # Same id with different content: still the first one counts (the id is the identity).
    changed = {**e1, "value": 999}
    assert (await send(api, changed))["duplicates"] == 1
    got = await check(api, p, [e1, e2])
    assert got["reward_balance"] == 10 and got["total_comments_posted"] == 1


async def test_windowed_attributes_shown_without_window(api: Api) -> None:
    p = await new_profile(api)
    events = [ev("comment_posted", p, ago(300)), ev("comment_posted", p, ago(1))]
    await send(api, *events)
    assert (await check(api, p, events))["total_comments_posted"] == 2


async def test_events_by_custom_id(api: Api) -> None:
    p = await new_profile(api, custom_id="player-7")
    await send(api, {"type": "comment_posted", "custom_id": "player-7", "occurred_at": ago(1)})
    assert (await values(api, p["id"]))["values"]["total_comments_posted"] == 1


async def test_event_without_time_is_now(api: Api) -> None:
    p = await new_profile(api)
    await send(api, {"type": "reaction_added", "profile_id": p["id"]})
    got = (await values(api, p["id"]))["values"]
    assert got["last_reaction_at"] is not None and got["last_reaction_at"] > ago(0, minutes=1)


async def test_custom_attributes_in_values(api: Api) -> None:
    for key, data_type in [
        ("toxicity_score", "number"),
        ("team", "string"),
        ("is_vip", "boolean"),
        ("renewal_at", "datetime"),
        ("unset_one", "string"),
    ]:
        r = await api.post("/custom-attributes/", json={"key": key, "data_type": data_type})
        assert r.status_code == 201, r.text
    p = await new_profile(
        api,
        custom_attributes={
            "toxicity_score": 0.4,
            "team": "Reds",
            "is_vip": True,
            "renewal_at": "2025-06-01T10:00:00Z",
        },
    )
    got = await values(api, p["id"])
    assert got["values"]["toxicity_score"] == 0.4
    assert got["values"]["team"] == "Reds"
    assert got["values"]["is_vip"] is True
    assert got["values"]["renewal_at"] == "2025-06-01T10:00:00.000000Z"
    assert got["values"]["unset_one"] is None


async def test_values_of_unknown_profile_is_404(api: Api) -> None:
    r = await api.get("/profiles/6b1b3f5e-0000-4000-8000-000000000000/attributes/")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found.", "error_code": "not_found"}
    r = await api.get("/profiles/not-a-uuid/attributes/")
    assert r.status_code == 404


async def test_values_are_tenant_scoped(api: Api, client: Any, other_tenant: Any) -> None:
    p = await new_profile(api)
    r = await client.get(
        f"{other_tenant.base}/profiles/{p['id']}/attributes/", headers=other_tenant.headers
    )
    assert r.status_code == 404
    r = await client.get(f"{api.tenant.base}/profiles/{p['id']}/attributes/")
    assert r.status_code == 401
