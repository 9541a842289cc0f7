"""SQL for attribute values over many profiles at once (docs/activity.md, docs/segmentation.md).

`AttributeContext` is the one place that knows how an attribute is stored. The rule compiler turns
conditions into boolean SQL over `ctx.value(...)`; a profile's values select the same
expressions for one profile. Either way the query reads

    profiles LEFT JOIN profile_activity LEFT JOIN <one materialized GROUP BY per window size>

in one set-based pass: all-time attributes come from the per-profile aggregates row, windowed ones
from a pre-aggregated scan of the application's events since `as_of - window_days`.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    FromClause,
    Numeric,
    Select,
    and_,
    any_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.selectable import NamedFromClause

from profile_groups.activity.event_types import Count, EventType, Sum, windowed
from profile_groups.attributes.registry import PLATFORM_ATTRIBUTES, AttributeDef, resolve
from profile_groups.kit.repository import uuid_array
from profile_groups.models import Profile
from profile_groups.models.activity import Event, ProfileActivity

Expr = ColumnElement[Any]
_PA = ProfileActivity


# Windowed attributes (docs/activity.md): the aggregate over the window's events that the event
# types' table names for each (activity/event_types.py), the same events as its all-time column.
def _window_aggregate(type_: EventType, aggregate: Count | Sum) -> Callable[[], Expr]:
    where = [Event.type == type_.name]
    if isinstance(aggregate, Count) and aggregate.when is not None:
        where.append(Event.properties[aggregate.when.property].astext == aggregate.when.value)
    if isinstance(aggregate, Sum):
        return lambda: func.sum(Event.value_num).filter(*where)
    return lambda: func.count().filter(*where)


_WINDOW_AGGREGATES: dict[str, Callable[[], Expr]] = {
    key: _window_aggregate(type_, aggregate) for key, (type_, aggregate) in windowed().items()
}
WINDOWED_KEYS = frozenset(_WINDOW_AGGREGATES)
# The event type each windowed attribute reads, so a window scans only the types its rules use.
_WINDOW_TYPES: dict[str, str] = {key: type_.name for key, (type_, _) in windowed().items()}
# Window sizes (days) -> the windowed attribute keys a query reads over each.
Windows = Mapping[int, Collection[str]]


def _num(expr: Any) -> Expr:
    """A count or sum as NUMERIC, 0 when the profile has no activity row (never NULL)."""
    return cast(func.coalesce(expr, 0), Numeric)


def _col(attr: InstrumentedAttribute[Any]) -> Expr:
    return attr.expression


def _cnt(col: InstrumentedAttribute[int]) -> Expr:
    return func.coalesce(col, 0)


def _later(at: Any, seq: Any, other_at: Any, other_seq: Any) -> Expr:
    """(at, seq) is later than (other_at, other_seq); NULL-safe: a missing one is never later."""
    return and_(
        at.is_not(None),
        or_(other_at.is_(None), tuple_(at, seq) > tuple_(other_at, other_seq)),
    )


def _streak(at: Any, seq: Any, value: Any) -> Expr:
    # Value of the latest streak activity, or 0 if a reset is later than it (0 if none).
    return cast(
        case(
            (at.is_(None), 0),
            (_later(_PA.reset_at, _PA.reset_seq, at, seq), 0),
            else_=value,
        ),
        Numeric,
    )


def _platform_expressions(as_of: Expr) -> dict[str, Callable[[], Expr]]:
    pa = _PA
    p = Profile

    def current_streak() -> Expr:
        return _streak(pa.last_streak_at, pa.streak_seq, pa.streak_value)

    def unclaimed() -> Expr:
        return _cnt(pa.quest_rewards_earned) - _cnt(pa.quest_rewards_claimed)

    return {
        "total_comments_posted": lambda: _num(pa.comments_posted),
        "total_comment_replies": lambda: _num(pa.comment_replies),
        "total_comments_reported": lambda: _num(pa.comments_reported),
        "last_comment_at": lambda: _col(pa.last_comment_at),
        "has_ever_commented": lambda: _cnt(pa.comments_posted) > 0,
        "total_reactions": lambda: _num(pa.reactions),
        "last_reaction_at": lambda: _col(pa.last_reaction_at),
        "has_ever_reacted": lambda: _cnt(pa.reactions) > 0,
        "total_polls_answered": lambda: _num(pa.polls_answered),
        "last_poll_answered_at": lambda: _col(pa.last_poll_at),
        "has_ever_answered_poll": lambda: _cnt(pa.polls_answered) > 0,
        "last_active_at": lambda: _col(pa.last_event_at),
        "created_at": lambda: _col(p.created_at),
        "nickname": lambda: _col(p.nickname),
        "custom_id": lambda: _col(p.custom_id),
        "has_social_connections": lambda: _cnt(pa.social_added) - _cnt(pa.social_removed) > 0,
        "total_active_quests": lambda: cast(
            func.greatest(
                0, _cnt(pa.quests_started) - _cnt(pa.quests_completed) - _cnt(pa.quests_failed)
            ),
            Numeric,
        ),
        "total_quests_completed": lambda: _num(pa.quests_completed),
        "total_failed_quests": lambda: _num(pa.quests_failed),
        # float8 division: the same IEEE result a client computes; 0 when none started.
        "quest_completion_rate": lambda: case(
            (
                _cnt(pa.quests_started) > 0,
                cast(pa.quests_completed, Float) / cast(pa.quests_started, Float),
            ),
            else_=cast(literal(0), Float),
        ),
        "completed_any_quest": lambda: _cnt(pa.quests_completed) > 0,
        "ever_started_quest": lambda: _cnt(pa.quests_started) > 0,
        "quest_rewards_earned": lambda: _num(pa.quest_rewards_earned),
        "quest_rewards_claimed": lambda: _num(pa.quest_rewards_claimed),
        "quest_rewards_unclaimed": lambda: cast(func.greatest(0, unclaimed()), Numeric),
        "has_unclaimed_quest_rewards": lambda: unclaimed() > 0,
        "last_quest_started_at": lambda: _col(pa.last_quest_started_at),
        "last_quest_completed_at": lambda: _col(pa.last_quest_completed_at),
        "current_streak_length": current_streak,
        "consecutive_streak_length": lambda: _streak(
            pa.consecutive_at, pa.consecutive_seq, pa.consecutive_value
        ),
        "periodic_streak_length": lambda: _streak(
            pa.periodic_at, pa.periodic_seq, pa.periodic_value
        ),
        "longest_streak_length": lambda: _num(pa.longest_streak),
        "first_streak_activity": lambda: _col(pa.first_streak_at),
        "last_streak_activity": lambda: _col(pa.last_streak_at),
        "streak_milestones_reached": lambda: _num(pa.streak_milestones),
        "streak_reset_count": lambda: _num(pa.streak_resets),
        "has_ever_started_streak": lambda: _cnt(pa.streak_activities) > 0,
        "is_streak_active": lambda: current_streak() > 0,
        "is_streak_frozen": lambda: _later(
            pa.frozen_at, pa.frozen_seq, pa.unfrozen_at, pa.unfrozen_seq
        ),
        "status_tier": lambda: _col(pa.tier_name),
        "current_tier_rank": lambda: _num(pa.tier_rank),
        "last_tier_change_at": lambda: _col(pa.tier_at),
        "tier_entry_date": lambda: _col(pa.tier_at),
        # Whole days from entering the tier to the evaluation time (never negative).
        "days_in_current_tier": lambda: cast(
            case(
                (pa.tier_at.is_(None), 0),
                else_=func.greatest(
                    0, func.floor(func.extract("epoch", as_of - pa.tier_at) / 86400)
                ),
            ),
            Numeric,
        ),
        "tier_upgrade_count": lambda: _num(pa.tier_upgrades),
        "tier_downgrade_count": lambda: _num(pa.tier_downgrades),
        "have_ever_upgraded_tier": lambda: _cnt(pa.tier_upgrades) > 0,
        "has_ever_reached_tier": lambda: _cnt(pa.tier_changes) > 0,
        "reward_balance": lambda: _num(pa.reward_earned_sum) - _num(pa.reward_spent_sum),
        "reward_balance_total_earned": lambda: _num(pa.reward_earned_sum),
        "reward_balance_total_spent": lambda: _num(pa.reward_spent_sum),
        "last_reward_earned_at": lambda: _col(pa.last_reward_earned_at),
        "has_earned_any_reward": lambda: _cnt(pa.rewards_earned) > 0,
        "reward_actions_triggered_total": lambda: _num(pa.reward_actions),
        "leaderboards_ranked_on": lambda: _num(pa.leaderboards_ranked_on),
        "is_ranked_on_leaderboard": lambda: _cnt(pa.leaderboards_ranked_on) > 0,
        "leaderboard_views_count": lambda: _num(pa.leaderboard_views),
    }


class AttributeContext:
    """Builds SQL reading attribute values for many profiles at once, as of `as_of`.

    Usage: call `value()` for every attribute the query needs, THEN `from_clause()` (it joins the
    window subqueries registered so far), and filter with `where()` (or use `select()`, which does
    both):

        ctx = AttributeContext(app_id, as_of, custom_defs)
        cond = ctx.value(defn, window_days=7) > 3
        stmt = ctx.select(ctx.profile.id).where(cond)
    """

    profile: type[Profile] = Profile
    activity: type[ProfileActivity] = ProfileActivity

    def __init__(
        self,
        application_id: UUID,
        as_of: datetime,
        custom: dict[str, AttributeDef],
        *,
        windows: Windows | None = None,
        profile_ids: Sequence[UUID] | None = None,
    ) -> None:
        """`windows` names the windowed keys the query will read (all of them when None), so each
        window aggregates only those, over only their event types. `profile_ids` restricts the
        query, windows included, to those profiles (incremental updates)."""
        self.application_id = application_id
        self.as_of = as_of
        self.custom = custom
        self._window_keys = windows
        self._profile_ids = list(profile_ids) if profile_ids is not None else None
        # One bound parameter; days_in_current_tier is measured from it.
        self.as_of_param: Expr = literal(as_of, DateTime(timezone=True))
        self._platform = _platform_expressions(self.as_of_param)
        assert set(self._platform) == set(PLATFORM_ATTRIBUTES)
        self._windows: dict[int, NamedFromClause] = {}

    # -- values -----------------------------------------------------------------------------------

    def value(self, attr: AttributeDef, window_days: int | None = None) -> Expr:
        """Typed SQL value of the attribute; NULL when it has no value.

        Numbers are NUMERIC (quest_completion_rate: float8), datetimes timestamptz, booleans
        boolean, strings text (returned raw: an empty string is "no value" only for is_empty).
        Platform numbers and booleans are never NULL; datetimes are NULL until the first event;
        custom attributes are NULL until set. `window_days` (attributes with supports_window)
        counts only events with occurred_at >= as_of - window_days x 24 h.
        """
        if attr.source == "custom":
            if window_days is not None:
                raise ValueError(f"{attr.key} does not support window_days")
            return self._custom(attr)
        key = resolve(attr.key)
        if window_days is None:
            return self._platform[key]()
        if key not in _WINDOW_AGGREGATES:
            raise ValueError(f"{key} does not support window_days")
        window = self._window(window_days)
        return _num(window.c[key])

    def _custom(self, attr: AttributeDef) -> Expr:
        raw = type_coerce(self.profile.custom_attributes, JSONB)[attr.key]
        text_value = raw.astext
        kind = func.jsonb_typeof(raw)
        # The jsonb type guard keeps one stray value from failing a whole evaluation.
        if attr.data_type == "number":
            return case((kind == "number", cast(text_value, Numeric)), else_=null())
        if attr.data_type == "boolean":
            return case((kind == "boolean", cast(text_value, Boolean)), else_=null())
        if attr.data_type == "datetime":
            # Stored normalized as UTC ISO 8601 strings (docs/profiles.md), so the cast is exact.
            return case((kind == "string", cast(text_value, DateTime(timezone=True))), else_=null())
        return case((kind == "string", text_value), else_=null())

    def _window(self, window_days: int) -> NamedFromClause:
        """The events of the last `window_days`, aggregated per profile (registered once per size).

        It aggregates the windowed attributes named for this size (all of them without
        `windows`), reading only their event types: a rule on comments does not aggregate
        reactions. Over all profiles it is materialized, so however the planner misjudges a
        never-analyzed table, the window is aggregated once and joined, never re-aggregated per
        profile. Restricted to a few profiles it is the opposite: a LATERAL aggregate of each
        profile's own events (an index range of the events' key), since the window of the whole
        application would read every event of the last `window_days` for a few thousand
        profiles.
        """
        found = self._windows.get(window_days)
        if found is not None:
            return found
        wanted = (
            self._window_keys.get(window_days, ())
            if self._window_keys is not None
            else _WINDOW_AGGREGATES
        )
        keys = sorted(wanted)
        cutoff = self.as_of - timedelta(days=window_days)
        where = [
            Event.application_id == self.application_id,
            Event.occurred_at >= cutoff,
            Event.type.in_(sorted({_WINDOW_TYPES[k] for k in keys})),
        ]
        aggregates = [_WINDOW_AGGREGATES[k]().label(k) for k in keys]
        name = f"activity_window_{window_days}"
        sub: NamedFromClause
        if self._profile_ids is not None:
            own = Event.profile_id == self.profile.id
            sub = select(*aggregates).where(*where, own).lateral(name)
        else:
            sub = (
                select(Event.profile_id, *aggregates)
                .where(*where)
                .group_by(Event.profile_id)
                .cte(name)
                .prefix_with("MATERIALIZED")
            )
        self._windows[window_days] = sub
        return sub

    # -- query scaffolding ------------------------------------------------------------------------

    def from_clause(self) -> FromClause:
        """profiles LEFT JOIN aggregates LEFT JOIN every window subquery registered so far."""
        p, pa = self.profile, self.activity
        on = [pa.application_id == p.application_id, pa.profile_id == p.id]
        if self._profile_ids is not None:
            # Restricted to a few profiles: say so on both sides, so each is an index lookup.
            on.append(pa.profile_id == any_(uuid_array(self._profile_ids)))
        joined: FromClause = p.__table__.outerjoin(pa.__table__, and_(*on))
        for sub in self._windows.values():
            on_ = true() if self._profile_ids is not None else sub.c.profile_id == p.id
            joined = joined.outerjoin(sub, on_)
        return joined

    def where(self) -> Expr:
        """The tenant filter every query over this context needs (and the profiles it is
        restricted to)."""
        tenant = self.profile.application_id == self.application_id
        if self._profile_ids is None:
            return tenant
        return and_(tenant, self.profile.id == any_(uuid_array(self._profile_ids)))

    def select(self, *columns: Any) -> Select[Any]:
        """`SELECT columns FROM from_clause() WHERE where()`; register values before calling."""
        return select(*columns).select_from(self.from_clause()).where(self.where())
