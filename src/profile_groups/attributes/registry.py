"""The attribute registry: every attribute usable in rules, defined once (docs/activity.md).

The catalogue routes, the rule validator, the rule compiler and a profile's values all read
from here, so an attribute cannot mean one thing in a rule and another on screen.
"""

from dataclasses import dataclass
from typing import Literal, get_args

DataType = Literal["number", "string", "boolean", "datetime"]
Source = Literal["platform", "custom"]
Category = Literal[
    "comments",
    "reactions",
    "polls",
    "activity",
    "profile",
    "social",
    "quests",
    "streaks",
    "tiers",
    "rewards",
    "leaderboards",
    "custom",
]
Condition = Literal[
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equal",
    "less_than",
    "less_than_or_equal",
    "between",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "before",
    "after",
    "within_last_x_days",
    "not_within_last_x_days",
    "is",
    "is_empty",
    "is_not_empty",
]

DATA_TYPES: tuple[DataType, ...] = get_args(DataType)
CATEGORIES: tuple[Category, ...] = get_args(Category)
CONDITIONS: tuple[Condition, ...] = get_args(Condition)

# Which data types each condition applies to (docs/segmentation.md); is_empty / is_not_empty
# apply to every type.
_APPLIES_TO: dict[Condition, frozenset[DataType]] = {
    "equals": frozenset({"number", "string", "datetime"}),
    "not_equals": frozenset({"number", "string", "datetime"}),
    "greater_than": frozenset({"number", "datetime"}),
    "greater_than_or_equal": frozenset({"number", "datetime"}),
    "less_than": frozenset({"number", "datetime"}),
    "less_than_or_equal": frozenset({"number", "datetime"}),
    "between": frozenset({"number", "datetime"}),
    "in": frozenset({"number", "string"}),
    "not_in": frozenset({"number", "string"}),
    "contains": frozenset({"string"}),
    "not_contains": frozenset({"string"}),
    "starts_with": frozenset({"string"}),
    "ends_with": frozenset({"string"}),
    "before": frozenset({"datetime"}),
    "after": frozenset({"datetime"}),
    "within_last_x_days": frozenset({"datetime"}),
    "not_within_last_x_days": frozenset({"datetime"}),
    "is": frozenset({"boolean"}),
    "is_empty": frozenset(DATA_TYPES),
    "is_not_empty": frozenset(DATA_TYPES),
}

# Rolling windows accept 1-365 days (docs/activity.md).
WINDOW_DAYS_MIN = 1
WINDOW_DAYS_MAX = 365


def conditions_for(data_type: DataType) -> tuple[Condition, ...]:
    """The conditions allowed on an attribute of this type, in the order of CONDITIONS."""
    return tuple(c for c in CONDITIONS if data_type in _APPLIES_TO[c])


@dataclass(frozen=True)
class AttributeDef:
    key: str
    label: str
    description: str
    category: Category
    data_type: DataType
    source: Source
    conditions: tuple[Condition, ...]
    supports_window: bool


def _p(
    key: str,
    data_type: DataType,
    category: Category,
    label: str,
    description: str,
    *,
    window: bool = False,
) -> AttributeDef:
    return AttributeDef(
        key=key,
        label=label,
        description=description,
        category=category,
        data_type=data_type,
        source="platform",
        conditions=conditions_for(data_type),
        supports_window=window,
    )


_N: DataType = "number"
_S: DataType = "string"
_B: DataType = "boolean"
_D: DataType = "datetime"

_PLATFORM: tuple[AttributeDef, ...] = (
    # comments
    _p("total_comments_posted", _N, "comments", "Total comments posted",
       "Number of comments the profile posted.", window=True),
    _p("total_comment_replies", _N, "comments", "Total comment replies",
       "Number of replies the profile posted to comments.", window=True),
    _p("total_comments_reported", _N, "comments", "Total comments reported",
       "Number of the profile's comments that were reported.", window=True),
    _p("last_comment_at", _D, "comments", "Last comment at",
       "When the profile last posted a comment."),
    _p("has_ever_commented", _B, "comments", "Has ever commented",
       "Whether the profile has posted at least one comment."),
    # reactions
    _p("total_reactions", _N, "reactions", "Total reactions",
       "Number of reactions the profile added.", window=True),
    _p("last_reaction_at", _D, "reactions", "Last reaction at",
       "When the profile last added a reaction."),
    _p("has_ever_reacted", _B, "reactions", "Has ever reacted",
       "Whether the profile has added at least one reaction."),
    # polls
    _p("total_polls_answered", _N, "polls", "Total polls answered",
       "Number of polls the profile answered.", window=True),
    _p("last_poll_answered_at", _D, "polls", "Last poll answered at",
       "When the profile last answered a poll."),
    _p("has_ever_answered_poll", _B, "polls", "Has ever answered a poll",
       "Whether the profile has answered at least one poll."),
    # activity
    _p("last_active_at", _D, "activity", "Last active at",
       "Time of the profile's latest event of any type (empty if none)."),
    # profile
    _p("created_at", _D, "profile", "Created at", "When the profile was created."),
    _p("nickname", _S, "profile", "Nickname", "The profile's nickname."),
    _p("custom_id", _S, "profile", "Custom id", "The profile's custom id."),
    # social
    _p("has_social_connections", _B, "social", "Has social connections",
       "Whether connections added outnumber connections removed."),
    # quests
    _p("total_active_quests", _N, "quests", "Active quests",
       "Quests started and neither completed nor failed (never below 0)."),
    _p("total_quests_completed", _N, "quests", "Quests completed",
       "Number of quests the profile completed.", window=True),
    _p("total_failed_quests", _N, "quests", "Quests failed",
       "Number of quests the profile failed.", window=True),
    _p("quest_completion_rate", _N, "quests", "Quest completion rate",
       "Quests completed divided by quests started (0-1); 0 when none started."),
    _p("completed_any_quest", _B, "quests", "Completed any quest",
       "Whether the profile has completed at least one quest."),
    _p("ever_started_quest", _B, "quests", "Ever started a quest",
       "Whether the profile has started at least one quest."),
    _p("quest_rewards_earned", _N, "quests", "Quest rewards earned",
       "Number of quest rewards the profile earned.", window=True),
    _p("quest_rewards_claimed", _N, "quests", "Quest rewards claimed",
       "Number of quest rewards the profile claimed.", window=True),
    _p("quest_rewards_unclaimed", _N, "quests", "Quest rewards unclaimed",
       "Quest rewards earned minus claimed (never below 0)."),
    _p("has_unclaimed_quest_rewards", _B, "quests", "Has unclaimed quest rewards",
       "Whether the profile has at least one unclaimed quest reward."),
    _p("last_quest_started_at", _D, "quests", "Last quest started at",
       "When the profile last started a quest."),
    _p("last_quest_completed_at", _D, "quests", "Last quest completed at",
       "When the profile last completed a quest."),
    # streaks
    _p("current_streak_length", _N, "streaks", "Current streak length",
       "Streak length of the latest streak activity; 0 if a streak reset came later or none."),
    _p("consecutive_streak_length", _N, "streaks", "Consecutive streak length",
       "As the current streak length, over consecutive streak activity only."),
    _p("periodic_streak_length", _N, "streaks", "Periodic streak length",
       "As the current streak length, over periodic streak activity only."),
    _p("longest_streak_length", _N, "streaks", "Longest streak length",
       "The longest streak length ever reported (0 if none)."),
    _p("first_streak_activity", _D, "streaks", "First streak activity",
       "Time of the profile's earliest streak activity."),
    _p("last_streak_activity", _D, "streaks", "Last streak activity",
       "Time of the profile's latest streak activity."),
    _p("streak_milestones_reached", _N, "streaks", "Streak milestones reached",
       "Number of streak milestones the profile reached.", window=True),
    _p("streak_reset_count", _N, "streaks", "Streak resets",
       "Number of times the profile's streak was reset.", window=True),
    _p("has_ever_started_streak", _B, "streaks", "Has ever started a streak",
       "Whether the profile has any streak activity."),
    _p("is_streak_active", _B, "streaks", "Streak is active",
       "Whether the current streak length is above 0."),
    _p("is_streak_frozen", _B, "streaks", "Streak is frozen",
       "Whether the latest of streak frozen / unfrozen is a freeze."),
    # tiers
    _p("status_tier", _S, "tiers", "Status tier",
       "Name of the profile's current tier (empty if none)."),
    _p("current_tier_rank", _N, "tiers", "Current tier rank",
       "Rank of the profile's current tier (0 if none)."),
    _p("last_tier_change_at", _D, "tiers", "Last tier change at",
       "When the profile's tier last changed."),
    _p("tier_entry_date", _D, "tiers", "Tier entry date",
       "When the profile entered its current tier."),
    _p("days_in_current_tier", _N, "tiers", "Days in current tier",
       "Whole days since the profile entered its current tier (0 if no tier)."),
    _p("tier_upgrade_count", _N, "tiers", "Tier upgrades",
       "Number of tier upgrades.", window=True),
    _p("tier_downgrade_count", _N, "tiers", "Tier downgrades",
       "Number of tier downgrades.", window=True),
    _p("have_ever_upgraded_tier", _B, "tiers", "Has ever upgraded tier",
       "Whether the profile has had at least one tier upgrade."),
    _p("has_ever_reached_tier", _B, "tiers", "Has ever reached a tier",
       "Whether the profile has had at least one tier change."),
    # rewards
    _p("reward_balance", _N, "rewards", "Reward balance",
       "Total rewards earned minus total rewards spent."),
    _p("reward_balance_total_earned", _N, "rewards", "Rewards earned",
       "Sum of reward amounts earned.", window=True),
    _p("reward_balance_total_spent", _N, "rewards", "Rewards spent",
       "Sum of reward amounts spent.", window=True),
    _p("last_reward_earned_at", _D, "rewards", "Last reward earned at",
       "When the profile last earned a reward."),
    _p("has_earned_any_reward", _B, "rewards", "Has earned any reward",
       "Whether the profile has earned at least one reward."),
    _p("reward_actions_triggered_total", _N, "rewards", "Reward actions triggered",
       "Number of reward actions the profile triggered.", window=True),
    # leaderboards
    _p("leaderboards_ranked_on", _N, "leaderboards", "Leaderboards ranked on",
       "Number of distinct leaderboards the profile was ranked on."),
    _p("is_ranked_on_leaderboard", _B, "leaderboards", "Is ranked on a leaderboard",
       "Whether the profile was ranked on at least one leaderboard."),
    _p("leaderboard_views_count", _N, "leaderboards", "Leaderboard views",
       "Number of times the profile viewed a leaderboard.", window=True),
)  # fmt: skip

PLATFORM_ATTRIBUTES: dict[str, AttributeDef] = {a.key: a for a in _PLATFORM}

# Misspelt keys accepted for compatibility with the product page.
ALIASES: dict[str, str] = {"tier_upragde_count": "tier_upgrade_count"}
# Platform keys and their aliases, which a custom attribute may not take.
PLATFORM_KEYS = frozenset(PLATFORM_ATTRIBUTES) | frozenset(ALIASES)


def resolve(key: str) -> str:
    """The canonical key of `key` (an alias resolves to its attribute; anything else unchanged)."""
    return ALIASES.get(key, key)


def custom_attribute_def(key: str, data_type: DataType, description: str) -> AttributeDef:
    return AttributeDef(
        key=key,
        label=key.replace("_", " ").capitalize(),
        description=description,
        category="custom",
        data_type=data_type,
        source="custom",
        conditions=conditions_for(data_type),
        supports_window=False,
    )
