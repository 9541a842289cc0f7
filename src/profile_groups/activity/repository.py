"""Every SQL statement of event ingestion and retention.

A batch is written by ONE statement: the events (idempotent on the client id), the distinct
leaderboards, and the per-profile aggregates folded in with INSERT ... ON CONFLICT DO UPDATE. Each
aggregate is an order-independent fold (count, sum, min, max, and "latest" values kept with their
(occurred_at, seq) so an older event arriving late never overwrites a newer one).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    Numeric,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import text_array, uuid_array
from profile_groups.models import Profile
from profile_groups.models.activity import Event, ProfileActivity, ProfileLeaderboard


@dataclass(frozen=True)
class NewEvent:
    profile_id: UUID
    type: str
    occurred_at: datetime
    value_num: Decimal | None
    value_text: str | None
    properties: dict[str, Any] | None
    client_event_id: str | None


def _array(values: Sequence[Any], item_type: Any) -> Any:
    return bindparam(None, list(values), type_=ARRAY(item_type))


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def resolve_profiles(
        self, application_id: UUID, ids: Sequence[UUID], custom_ids: Sequence[str]
    ) -> tuple[set[UUID], dict[str, UUID]]:
        """Existing profile ids among `ids`, and custom id -> id among `custom_ids`."""
        if not ids and not custom_ids:
            return set(), {}
        by_id = select(Profile.id, Profile.custom_id, literal(True).label("by_id")).where(
            Profile.application_id == application_id, Profile.id == func.any(uuid_array(ids))
        )
        by_custom = select(Profile.id, Profile.custom_id, literal(False).label("by_id")).where(
            Profile.application_id == application_id,
            Profile.custom_id == func.any(text_array(custom_ids)),
        )
        found_ids: set[UUID] = set()
        found_custom: dict[str, UUID] = {}
        for row in await self.session.execute(union_all(by_id, by_custom)):
            if row.by_id:
                found_ids.add(row.id)
            elif row.custom_id is not None:
                found_custom[row.custom_id] = row.id
        return found_ids, found_custom

    async def insert_events(self, application_id: UUID, events: Sequence[NewEvent]) -> int:
        """Insert events and fold them into the aggregates; returns how many were new."""
        stmt = _ingest_statement(application_id, events)
        return int((await self.session.execute(stmt)).scalar_one())

    async def prune(self, cutoff: datetime, batch_size: int) -> int:
        """Delete up to `batch_size` raw events that occurred before `cutoff`."""
        doomed = (
            select(Event.application_id, Event.profile_id, Event.seq)
            .where(Event.occurred_at < cutoff)
            .limit(batch_size)
        )
        stmt = delete(Event).where(
            tuple_(Event.application_id, Event.profile_id, Event.seq).in_(doomed)
        )
        result = await self.session.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]


def _ingest_statement(application_id: UUID, events: Sequence[NewEvent]) -> Any:
    app = literal(application_id, PG_UUID(as_uuid=True))
    rows = (
        func.unnest(
            _array(range(len(events)), Integer),
            uuid_array([e.profile_id for e in events]),
            text_array([e.type for e in events]),
            _array([e.occurred_at for e in events], DateTime(timezone=True)),
            _array([e.value_num for e in events], Numeric),
            _array([e.value_text for e in events], Text),
            _array([e.properties for e in events], JSONB),
            _array([e.client_event_id for e in events], String),
        )
        .table_valued(
            column("ord", Integer),
            column("profile_id", PG_UUID(as_uuid=True)),
            column("type", String),
            column("occurred_at", DateTime(timezone=True)),
            column("value_num", Numeric),
            column("value_text", Text),
            column("properties", JSONB),
            column("client_event_id", String),
        )
        .render_derived(name="r")
    )

    # 1. The events. `seq` is assigned in batch order, so ties inside a batch go to the later item.
    ins = (
        insert(Event)
        .from_select(
            [
                "application_id",
                "profile_id",
                "type",
                "occurred_at",
                "value_num",
                "value_text",
                "properties",
                "client_event_id",
            ],
            select(
                app,
                rows.c.profile_id,
                rows.c.type,
                rows.c.occurred_at,
                rows.c.value_num,
                rows.c.value_text,
                rows.c.properties,
                rows.c.client_event_id,
            ).order_by(rows.c.ord),
        )
        .on_conflict_do_nothing(
            index_elements=[Event.application_id, Event.client_event_id],
            index_where=Event.client_event_id.is_not(None),
        )
        .returning(
            Event.seq,
            Event.profile_id,
            Event.type,
            Event.occurred_at,
            Event.value_num,
            Event.value_text,
            Event.properties,
        )
        .cte("ins")
    )

    # 2. Distinct leaderboards; the rows that are new raise leaderboards_ranked_on.
    board = ins.c.properties["leaderboard_id"].astext
    lb = (
        insert(ProfileLeaderboard)
        .from_select(
            ["application_id", "profile_id", "leaderboard_id"],
            select(app, ins.c.profile_id, board)
            .where(ins.c.type == "leaderboard_ranked")
            .distinct()
            .order_by(ins.c.profile_id, board),
        )
        .on_conflict_do_nothing()
        .returning(ProfileLeaderboard.profile_id)
        .cte("lb")
    )
    lbc = select(lb.c.profile_id, func.count().label("n")).group_by(lb.c.profile_id).cte("lbc")

    # 3. The batch's aggregates per profile.
    agg = select(ins.c.profile_id, *_batch_aggregates(ins)).group_by(ins.c.profile_id).cte("agg")

    # 4. Fold them into the stored aggregates. Rows are locked in profile order so concurrent
    #    batches over the same profiles queue instead of deadlocking.
    names = [c.name for c in agg.c if c.name != "profile_id"]
    source = (
        select(app, agg.c.profile_id, *(agg.c[n] for n in names), func.coalesce(lbc.c.n, 0))
        .select_from(agg.outerjoin(lbc, lbc.c.profile_id == agg.c.profile_id))
        .order_by(agg.c.profile_id)
    )
    upsert = insert(ProfileActivity).from_select(
        ["application_id", "profile_id", *names, "leaderboards_ranked_on"], source
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=[ProfileActivity.application_id, ProfileActivity.profile_id],
        set_=_fold(upsert.excluded),
    )
    up = upsert.returning(ProfileActivity.profile_id).cte("up")

    return select(func.count()).select_from(ins).add_cte(up)


# -- aggregates --------------------------------------------------------------------------------

_COUNTS: dict[str, tuple[str, str | None]] = {
    # aggregate column: (event type, tier direction)
    "comments_posted": ("comment_posted", None),
    "comment_replies": ("comment_replied", None),
    "comments_reported": ("comment_reported", None),
    "reactions": ("reaction_added", None),
    "polls_answered": ("poll_answered", None),
    "social_added": ("social_connection_added", None),
    "social_removed": ("social_connection_removed", None),
    "quests_started": ("quest_started", None),
    "quests_completed": ("quest_completed", None),
    "quests_failed": ("quest_failed", None),
    "quest_rewards_earned": ("quest_reward_earned", None),
    "quest_rewards_claimed": ("quest_reward_claimed", None),
    "streak_activities": ("streak_activity", None),
    "streak_milestones": ("streak_milestone_reached", None),
    "streak_resets": ("streak_reset", None),
    "tier_changes": ("tier_changed", None),
    "tier_upgrades": ("tier_changed", "upgrade"),
    "tier_downgrades": ("tier_changed", "downgrade"),
    "rewards_earned": ("reward_earned", None),
    "reward_actions": ("reward_action_triggered", None),
    "leaderboard_views": ("leaderboard_viewed", None),
}
_SUMS = {"reward_earned_sum": "reward_earned", "reward_spent_sum": "reward_spent"}
_LAST_TIMES = {
    "last_comment_at": "comment_posted",
    "last_reaction_at": "reaction_added",
    "last_poll_at": "poll_answered",
    "last_quest_started_at": "quest_started",
    "last_quest_completed_at": "quest_completed",
    "last_reward_earned_at": "reward_earned",
}
# "Latest" groups: (time column, seq column, {value column: kind}) and which events they fold.
_LATEST: list[tuple[str, str, dict[str, str], str, str | None]] = [
    ("last_streak_at", "streak_seq", {"streak_value": "num"}, "streak_activity", None),
    ("consecutive_at", "consecutive_seq", {"consecutive_value": "num"}, "streak_activity",
     "consecutive"),
    ("periodic_at", "periodic_seq", {"periodic_value": "num"}, "streak_activity", "periodic"),
    ("reset_at", "reset_seq", {}, "streak_reset", None),
    ("frozen_at", "frozen_seq", {}, "streak_frozen", None),
    ("unfrozen_at", "unfrozen_seq", {}, "streak_unfrozen", None),
    ("tier_at", "tier_seq", {"tier_name": "text", "tier_rank": "rank"}, "tier_changed", None),
]  # fmt: skip


def _batch_aggregates(ins: Any) -> list[ColumnElement[Any]]:
    t = ins.c.type

    def where(type_: str, direction: str | None = None) -> ColumnElement[bool]:
        if direction is None:
            return t == type_  # type: ignore[no-any-return]
        return and_(t == type_, ins.c.properties["direction"].astext == direction)

    def first_by_latest(expr: Any, cond: ColumnElement[bool], item_type: Any) -> Any:
        ordered = func.array_agg(
            aggregate_order_by(expr, ins.c.occurred_at.desc(), ins.c.seq.desc())
        ).filter(cond)
        return type_coerce(ordered, ARRAY(item_type))[1]

    out: list[ColumnElement[Any]] = []
    for name, (type_, direction) in _COUNTS.items():
        out.append(func.count().filter(where(type_, direction)).label(name))
    for name, type_ in _SUMS.items():
        out.append(func.coalesce(func.sum(ins.c.value_num).filter(where(type_)), 0).label(name))
    out.append(func.max(ins.c.occurred_at).label("last_event_at"))
    for name, type_ in _LAST_TIMES.items():
        out.append(func.max(ins.c.occurred_at).filter(where(type_)).label(name))
    streak = where("streak_activity")
    out.append(func.min(ins.c.occurred_at).filter(streak).label("first_streak_at"))
    out.append(func.coalesce(func.max(ins.c.value_num).filter(streak), 0).label("longest_streak"))
    for at, seq, values, type_, streak_type in _LATEST:
        cond = where(type_)
        if streak_type is not None:
            cond = and_(cond, ins.c.properties["streak_type"].astext == streak_type)
        out.append(func.max(ins.c.occurred_at).filter(cond).label(at))
        out.append(first_by_latest(ins.c.seq, cond, BigInteger).label(seq))
        for name, kind in values.items():
            item_type: Any
            if kind == "num":
                expr, item_type = ins.c.value_num, Numeric
            elif kind == "text":
                expr, item_type = ins.c.value_text, Text
            else:
                expr = cast(ins.c.properties["rank"].astext, BigInteger)
                item_type = BigInteger
            out.append(first_by_latest(expr, cond, item_type).label(name))
    return out


def _fold(new: Any) -> dict[str, Any]:
    """SET clause merging the batch's aggregates (`new` = EXCLUDED) into the stored row."""
    pa = ProfileActivity
    out: dict[str, Any] = {}
    for name in [*_COUNTS, *_SUMS, "leaderboards_ranked_on"]:
        out[name] = getattr(pa, name) + new[name]
    for name in ["last_event_at", *_LAST_TIMES, "longest_streak"]:
        out[name] = func.greatest(getattr(pa, name), new[name])  # greatest() skips NULLs
    out["first_streak_at"] = func.least(pa.first_streak_at, new["first_streak_at"])
    for at, seq, values, _type, _streak_type in _LATEST:
        old_at, old_seq = getattr(pa, at), getattr(pa, seq)
        newer = and_(
            new[at].is_not(None),
            or_(old_at.is_(None), tuple_(new[at], new[seq]) > tuple_(old_at, old_seq)),
        )
        out[at] = func.greatest(old_at, new[at])
        for name in [seq, *values]:
            out[name] = case((newer, new[name]), else_=getattr(pa, name))
    out["updated_at"] = func.now()
    return out
