"""The event types of the activity feature, each declared once (docs/activity.md).

An entry says what an event of its type must carry (`value`, `properties`) and which per-profile
aggregates of `profile_activity` it feeds. Ingestion's checks (`activity/service.py`), the
aggregate fold of the ingest statement (`activity/repository.py`) and the windowed attributes
(`attributes/expressions.py`) are all derived from this table, and
`tests/activity/test_event_types.py` checks it against `ProfileActivity` and the registry.

Adding an event type is one entry here (and its name in the contract's list of the test).
`events.type` is a plain VARCHAR(40) with no CHECK constraint or enum (migration 0002), so the
database takes any new name of up to 40 characters: a type that feeds no aggregate column (only
`last_event_at`) needs no migration. Each aggregate column is fed by one entry (the fold is keyed
by column), so a type that feeds aggregates brings new columns: on `ProfileActivity` and in an
Alembic migration; the attributes reading them are entries in `attributes/registry.py`, with
their expressions in `attributes/expressions.py`.
"""

from dataclasses import dataclass
from typing import Literal

# What `value` holds: "integer" >= 0 and "number" >= 0 (finite) are stored in events.value_num,
# "string" (1-255 characters) in events.value_text.
ValueKind = Literal["integer", "number", "string"]
# A property: one of `choices`; an "integer" that fits a bigint; an "id", a string of 1-255
# characters (an integer is accepted and stored as its decimal string).
PropertyKind = Literal["choice", "integer", "id"]

# Every event feeds this one: the profile's latest event of any type.
LAST_EVENT_AT = "last_event_at"


@dataclass(frozen=True)
class Value:
    kind: ValueKind
    meaning: str  # named in the rejection of an event without one: "(the amount)"


@dataclass(frozen=True)
class Property:
    name: str
    kind: PropertyKind
    choices: tuple[str, ...] = ()
    default: str | None = None  # stored when the property is absent; None: it is required


@dataclass(frozen=True)
class Match:
    """Only the events whose `properties[property]` is `value`."""

    property: str
    value: str


@dataclass(frozen=True)
class Count:
    column: str
    when: Match | None = None
    window: str | None = None  # the platform attribute counting the same events in a window


@dataclass(frozen=True)
class Sum:
    """The sum of the events' values."""

    column: str
    window: str | None = None  # the platform attribute summing the same events in a window


@dataclass(frozen=True)
class Latest:
    """Columns copied from the latest event (greatest (occurred_at, seq)) of the type.

    `at` and `seq` keep that event's time and seq, so a late older event never overwrites it.
    `values` are (column, source): None is the event's value, otherwise the named property. A
    group with `when` covers one value of a property; a type's group without `when` beside such
    groups is the latest of them (they must cover every value the property can take).
    """

    at: str
    seq: str
    values: tuple[tuple[str, str | None], ...] = ()
    when: Match | None = None


@dataclass(frozen=True)
class Distinct:
    """Distinct values of a property, kept in profile_leaderboards and counted in `column`."""

    column: str
    property: str


@dataclass(frozen=True)
class EventType:
    name: str
    category: str  # the attribute catalogue's category of the attributes it feeds
    value: Value | None = None  # None: takes no value (a stray one is ignored)
    properties: tuple[Property, ...] = ()  # checked; any other property is kept as metadata
    counts: tuple[Count, ...] = ()
    sums: tuple[Sum, ...] = ()
    last_at: tuple[str, ...] = ()  # latest occurred_at
    first_at: tuple[str, ...] = ()  # earliest occurred_at
    max_value: tuple[str, ...] = ()  # greatest value (0 before the first event)
    latest: tuple[Latest, ...] = ()
    distinct: Distinct | None = None


def _by_name(*types: EventType) -> dict[str, EventType]:
    return {t.name: t for t in types}


_STREAK_TYPE = Property("streak_type", "choice", ("consecutive", "periodic"), "consecutive")
_AMOUNT = Value("number", "the amount")

EVENT_TYPES: dict[str, EventType] = _by_name(
    EventType("comment_posted", "comments",
              counts=(Count("comments_posted", window="total_comments_posted"),),
              last_at=("last_comment_at",)),
    EventType("comment_replied", "comments",
              counts=(Count("comment_replies", window="total_comment_replies"),)),
    EventType("comment_reported", "comments",
              counts=(Count("comments_reported", window="total_comments_reported"),)),
    EventType("reaction_added", "reactions",
              counts=(Count("reactions", window="total_reactions"),),
              last_at=("last_reaction_at",)),
    EventType("poll_answered", "polls",
              counts=(Count("polls_answered", window="total_polls_answered"),),
              last_at=("last_poll_at",)),
    EventType("social_connection_added", "social", counts=(Count("social_added"),)),
    EventType("social_connection_removed", "social", counts=(Count("social_removed"),)),
    EventType("quest_started", "quests", counts=(Count("quests_started"),),
              last_at=("last_quest_started_at",)),
    EventType("quest_completed", "quests",
              counts=(Count("quests_completed", window="total_quests_completed"),),
              last_at=("last_quest_completed_at",)),
    EventType("quest_failed", "quests",
              counts=(Count("quests_failed", window="total_failed_quests"),)),
    EventType("quest_reward_earned", "quests",
              counts=(Count("quest_rewards_earned", window="quest_rewards_earned"),)),
    EventType("quest_reward_claimed", "quests",
              counts=(Count("quest_rewards_claimed", window="quest_rewards_claimed"),)),
    EventType("streak_activity", "streaks",
              value=Value("integer", "the streak length"),
              properties=(_STREAK_TYPE,),
              counts=(Count("streak_activities"),),
              first_at=("first_streak_at",),
              max_value=("longest_streak",),
              latest=(
                  Latest("last_streak_at", "streak_seq", (("streak_value", None),)),
                  Latest("consecutive_at", "consecutive_seq", (("consecutive_value", None),),
                         Match("streak_type", "consecutive")),
                  Latest("periodic_at", "periodic_seq", (("periodic_value", None),),
                         Match("streak_type", "periodic")),
              )),
    EventType("streak_milestone_reached", "streaks",
              counts=(Count("streak_milestones", window="streak_milestones_reached"),)),
    EventType("streak_reset", "streaks",
              counts=(Count("streak_resets", window="streak_reset_count"),),
              latest=(Latest("reset_at", "reset_seq"),)),
    EventType("streak_frozen", "streaks", latest=(Latest("frozen_at", "frozen_seq"),)),
    EventType("streak_unfrozen", "streaks", latest=(Latest("unfrozen_at", "unfrozen_seq"),)),
    EventType("tier_changed", "tiers",
              value=Value("string", "the new tier's name"),
              properties=(Property("rank", "integer"),
                          Property("direction", "choice", ("upgrade", "downgrade"))),
              counts=(
                  Count("tier_changes"),
                  Count("tier_upgrades", Match("direction", "upgrade"), "tier_upgrade_count"),
                  Count("tier_downgrades", Match("direction", "downgrade"),
                        "tier_downgrade_count"),
              ),
              latest=(Latest("tier_at", "tier_seq",
                             (("tier_name", None), ("tier_rank", "rank"))),)),
    EventType("reward_earned", "rewards", value=_AMOUNT,
              counts=(Count("rewards_earned"),),
              sums=(Sum("reward_earned_sum", window="reward_balance_total_earned"),),
              last_at=("last_reward_earned_at",)),
    EventType("reward_spent", "rewards", value=_AMOUNT,
              sums=(Sum("reward_spent_sum", window="reward_balance_total_spent"),)),
    EventType("reward_action_triggered", "rewards",
              counts=(Count("reward_actions", window="reward_actions_triggered_total"),)),
    EventType("leaderboard_viewed", "leaderboards",
              counts=(Count("leaderboard_views", window="leaderboard_views_count"),)),
    EventType("leaderboard_ranked", "leaderboards", properties=(Property("leaderboard_id", "id"),),
              distinct=Distinct("leaderboards_ranked_on", "leaderboard_id")),
)  # fmt: skip


def windowed() -> dict[str, tuple[EventType, Count | Sum]]:
    """Each windowed platform attribute's key -> the event type and aggregate it reads."""
    out: dict[str, tuple[EventType, Count | Sum]] = {}
    for t in EVENT_TYPES.values():
        aggregates: tuple[Count | Sum, ...] = (*t.counts, *t.sums)
        out |= {a.window: (t, a) for a in aggregates if a.window}
    return out
