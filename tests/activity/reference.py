"""A plain-Python reference of docs/activity.md: attribute values from a list of events.

Written straight from the table, with no knowledge of how the service stores anything, so tests can
check the SQL derivation against it (the segmentation tests reuse it for rule evaluation).

Events are dicts as sent to POST /events/ for ONE profile, with `occurred_at` as an aware datetime,
in accept order (or with an explicit integer `seq`): "latest" is the greatest `occurred_at`, ties
going to the later-accepted event. `profile` is a dict with `created_at` (datetime), `nickname`,
`custom_id` and `custom_attributes`. Values come back as Python values: int / float / Decimal
numbers, aware datetimes, str, bool, or None for "no value" (see `as_json` for the API form).
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from profile_groups.attributes.registry import PLATFORM_ATTRIBUTES, AttributeDef

WINDOWED = frozenset(k for k, a in PLATFORM_ATTRIBUTES.items() if a.supports_window)


def _seq(events: Sequence[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    return [(int(e.get("seq", i)), e) for i, e in enumerate(events)]


def _of(events: Sequence[Mapping[str, Any]], *types: str) -> list[Mapping[str, Any]]:
    return [e for e in events if e["type"] in types]


def _latest(events: Sequence[Mapping[str, Any]], *types: str) -> tuple[Any, ...] | None:
    """(occurred_at, seq, event) of the latest event of these types, or None."""
    best: tuple[Any, ...] | None = None
    for seq, e in _seq(events):
        if e["type"] in types and (best is None or (e["occurred_at"], seq) > best[:2]):
            best = (e["occurred_at"], seq, e)
    return best


def _count(events: Sequence[Mapping[str, Any]], type_: str, direction: str | None = None) -> int:
    return sum(
        1
        for e in events
        if e["type"] == type_
        and (direction is None or (e.get("properties") or {}).get("direction") == direction)
    )


def _amount(events: Sequence[Mapping[str, Any]], type_: str) -> Decimal:
    return sum((Decimal(str(e["value"])) for e in _of(events, type_)), Decimal(0))


def _time(found: tuple[Any, ...] | None) -> datetime | None:
    return None if found is None else found[0]


def _streak_length(events: Sequence[Mapping[str, Any]], streak_type: str | None) -> int:
    activity = [
        e
        for e in _of(events, "streak_activity")
        if streak_type is None
        or (e.get("properties") or {}).get("streak_type", "consecutive") == streak_type
    ]
    # Latest among the filtered activities, keeping the seq of each event's original position.
    seqs = {id(e): s for s, e in _seq(events)}
    best = None
    for e in activity:
        key = (e["occurred_at"], seqs[id(e)])
        if best is None or key > best[0]:
            best = (key, e)
    if best is None:
        return 0
    reset = _latest(events, "streak_reset")
    if reset is not None and reset[:2] > best[0]:
        return 0
    return int(best[1]["value"])


def windowed_counts(
    events: Sequence[Mapping[str, Any]], as_of: datetime, window_days: int | None
) -> dict[str, Any]:
    """The attributes marked **w**, over the events of the window (all events without one)."""
    if window_days is not None:
        cutoff = as_of - timedelta(days=window_days)
        events = [e for e in events if e["occurred_at"] >= cutoff]
    return {
        "total_comments_posted": _count(events, "comment_posted"),
        "total_comment_replies": _count(events, "comment_replied"),
        "total_comments_reported": _count(events, "comment_reported"),
        "total_reactions": _count(events, "reaction_added"),
        "total_polls_answered": _count(events, "poll_answered"),
        "total_quests_completed": _count(events, "quest_completed"),
        "total_failed_quests": _count(events, "quest_failed"),
        "quest_rewards_earned": _count(events, "quest_reward_earned"),
        "quest_rewards_claimed": _count(events, "quest_reward_claimed"),
        "streak_milestones_reached": _count(events, "streak_milestone_reached"),
        "streak_reset_count": _count(events, "streak_reset"),
        "tier_upgrade_count": _count(events, "tier_changed", "upgrade"),
        "tier_downgrade_count": _count(events, "tier_changed", "downgrade"),
        "reward_balance_total_earned": _amount(events, "reward_earned"),
        "reward_balance_total_spent": _amount(events, "reward_spent"),
        "reward_actions_triggered_total": _count(events, "reward_action_triggered"),
        "leaderboard_views_count": _count(events, "leaderboard_viewed"),
    }


def _custom_value(defn: AttributeDef, raw: Any) -> Any:
    if raw is None:
        return None
    if defn.data_type == "datetime":
        parsed = datetime.fromisoformat(str(raw))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return raw


def reference_values(
    events: Sequence[Mapping[str, Any]],
    profile: Mapping[str, Any],
    as_of: datetime,
    custom_defs: Mapping[str, AttributeDef] | None = None,
) -> dict[str, Any]:
    """Every catalogue attribute's value for one profile (windowed ones without a window)."""
    ev = list(events)
    out: dict[str, Any] = {}
    counts = windowed_counts(ev, as_of, None)
    n = lambda t: _count(ev, t)  # noqa: E731

    out["total_comments_posted"] = counts["total_comments_posted"]
    out["total_comment_replies"] = counts["total_comment_replies"]
    out["total_comments_reported"] = counts["total_comments_reported"]
    out["last_comment_at"] = _time(_latest(ev, "comment_posted"))
    out["has_ever_commented"] = n("comment_posted") > 0
    out["total_reactions"] = counts["total_reactions"]
    out["last_reaction_at"] = _time(_latest(ev, "reaction_added"))
    out["has_ever_reacted"] = n("reaction_added") > 0
    out["total_polls_answered"] = counts["total_polls_answered"]
    out["last_poll_answered_at"] = _time(_latest(ev, "poll_answered"))
    out["has_ever_answered_poll"] = n("poll_answered") > 0
    out["last_active_at"] = max((e["occurred_at"] for e in ev), default=None)
    out["created_at"] = profile.get("created_at")
    out["nickname"] = profile.get("nickname")
    out["custom_id"] = profile.get("custom_id")
    out["has_social_connections"] = (
        n("social_connection_added") - n("social_connection_removed") > 0
    )
    started, completed, failed = n("quest_started"), n("quest_completed"), n("quest_failed")
    out["total_active_quests"] = max(0, started - completed - failed)
    out["total_quests_completed"] = completed
    out["total_failed_quests"] = failed
    out["quest_completion_rate"] = completed / started if started else 0
    out["completed_any_quest"] = completed > 0
    out["ever_started_quest"] = started > 0
    earned, claimed = n("quest_reward_earned"), n("quest_reward_claimed")
    out["quest_rewards_earned"] = earned
    out["quest_rewards_claimed"] = claimed
    out["quest_rewards_unclaimed"] = max(0, earned - claimed)
    out["has_unclaimed_quest_rewards"] = earned - claimed > 0
    out["last_quest_started_at"] = _time(_latest(ev, "quest_started"))
    out["last_quest_completed_at"] = _time(_latest(ev, "quest_completed"))
    out["current_streak_length"] = _streak_length(ev, None)
    out["consecutive_streak_length"] = _streak_length(ev, "consecutive")
    out["periodic_streak_length"] = _streak_length(ev, "periodic")
    streaks = _of(ev, "streak_activity")
    out["longest_streak_length"] = max((int(e["value"]) for e in streaks), default=0)
    out["first_streak_activity"] = min((e["occurred_at"] for e in streaks), default=None)
    out["last_streak_activity"] = max((e["occurred_at"] for e in streaks), default=None)
    out["streak_milestones_reached"] = counts["streak_milestones_reached"]
    out["streak_reset_count"] = counts["streak_reset_count"]
    out["has_ever_started_streak"] = len(streaks) > 0
    out["is_streak_active"] = out["current_streak_length"] > 0
    freeze = _latest(ev, "streak_frozen", "streak_unfrozen")
    out["is_streak_frozen"] = freeze is not None and freeze[2]["type"] == "streak_frozen"
    tier = _latest(ev, "tier_changed")
    out["status_tier"] = None if tier is None else tier[2]["value"]
    out["current_tier_rank"] = 0 if tier is None else int(tier[2]["properties"]["rank"])
    out["last_tier_change_at"] = _time(tier)
    out["tier_entry_date"] = _time(tier)
    out["days_in_current_tier"] = (
        0 if tier is None else max(0, int((as_of - tier[0]).total_seconds() // 86400))
    )
    out["tier_upgrade_count"] = counts["tier_upgrade_count"]
    out["tier_downgrade_count"] = counts["tier_downgrade_count"]
    out["have_ever_upgraded_tier"] = counts["tier_upgrade_count"] > 0
    out["has_ever_reached_tier"] = n("tier_changed") > 0
    out["reward_balance"] = (
        counts["reward_balance_total_earned"] - counts["reward_balance_total_spent"]
    )
    out["reward_balance_total_earned"] = counts["reward_balance_total_earned"]
    out["reward_balance_total_spent"] = counts["reward_balance_total_spent"]
    out["last_reward_earned_at"] = _time(_latest(ev, "reward_earned"))
    out["has_earned_any_reward"] = n("reward_earned") > 0
    out["reward_actions_triggered_total"] = counts["reward_actions_triggered_total"]
    boards = {str(e["properties"]["leaderboard_id"]) for e in _of(ev, "leaderboard_ranked")}
    out["leaderboards_ranked_on"] = len(boards)
    out["is_ranked_on_leaderboard"] = len(boards) > 0
    out["leaderboard_views_count"] = counts["leaderboard_views_count"]
    assert set(out) == set(PLATFORM_ATTRIBUTES)

    attrs = profile.get("custom_attributes") or {}
    for key, defn in (custom_defs or {}).items():
        out[key] = _custom_value(defn, attrs.get(key))
    return out


def as_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """The API's JSON form: numbers as int when integral, timestamps as `...Z` strings."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            out[key] = value
        elif isinstance(value, datetime):
            out[key] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif isinstance(value, Decimal | float | int):
            d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
            if d == d.to_integral_value():
                out[key] = int(d)
            else:
                out[key] = float(value) if isinstance(value, float) else float(d)
        else:
            out[key] = value
    return out
