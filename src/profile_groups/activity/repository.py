"""Every SQL statement of event ingestion and retention.

A batch is written by ONE statement: the events (idempotent on the client id), the distinct
leaderboards, and the per-profile aggregates folded in with INSERT ... ON CONFLICT DO UPDATE. Each
aggregate is an order-independent fold (count, sum, min, max, and "latest" values kept with their
(occurred_at, seq) so an older event arriving late never overwrites a newer one).
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
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
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import set_local
from profile_groups.models import Profile
from profile_groups.models.activity import Event, ProfileActivity, ProfileLeaderboard

# One checked event, JSON-ready. A batch is bound as ONE JSONB parameter (an array of these) and
# unpacked by `jsonb_array_elements`: encoding nine 1,000-element arrays, one per column, cost the
# API more Python time than all its per-item checks together.
EventRow = tuple[
    str | None,  # profile_id (canonical UUID text); exactly one of profile_id / custom_id is set
    str | None,  # custom_id
    str,  # type
    str,  # occurred_at (ISO 8601 with an offset)
    int | float | None,  # value_num
    str | None,  # value_text
    dict[str, Any] | None,  # properties
    str | None,  # client event id
]


@dataclass(frozen=True)
class InsertResult:
    inserted: int
    unknown_profiles: list[int]  # positions in the batch whose profile does not exist


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_events(self, application_id: UUID, rows: list[EventRow]) -> InsertResult:
        """Insert events for existing profiles and fold them into the aggregates."""
        # Each inserted event runs the foreign-key check on profiles, a cached plan inside
        # PostgreSQL. The engine's force_custom_plan would re-plan that check for every row
        # (about a sixth of a batch's time); this statement has no `= ANY(:array)` for a generic
        # plan to get wrong, so let PostgreSQL cache plans here.
        await set_local(self.session, "plan_cache_mode", "auto")
        params = {"app": application_id, "rows": rows}
        row = (await self.session.execute(_ingest_statement(), params)).one()
        return InsertResult(inserted=int(row.inserted), unknown_profiles=list(row.unknown or []))

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


_ROW_COLUMNS: list[tuple[str, Any]] = [  # EventRow's fields, in order, with their SQL types
    ("profile_id", PG_UUID(as_uuid=True)),
    ("custom_id", String()),
    ("type", String()),
    ("occurred_at", DateTime(timezone=True)),
    ("value_num", Numeric()),
    ("value_text", Text()),
    ("properties", JSONB()),
    ("client_event_id", String()),
]


def _batch_rows() -> Any:
    """The batch parameter as rows: (ord, the EventRow fields typed); `ord` counts from 0."""
    items = (
        func.jsonb_array_elements(bindparam("rows", type_=JSONB))
        .table_valued(column("item", JSONB), with_ordinality="ord")
        .render_derived(name="items")
    )
    item = items.c.item
    fields: list[ColumnElement[Any]] = []
    for i, (name, type_) in enumerate(_ROW_COLUMNS):
        if isinstance(type_, JSONB):
            # Properties stay JSONB; a JSON null (no properties) becomes SQL NULL.
            value: Any = case((func.jsonb_typeof(item[i]) == "object", item[i]))
        elif isinstance(type_, String):
            value = item[i].astext
        else:
            value = cast(item[i].astext, type_)
        fields.append(value.label(name))
    return select((items.c.ord - 1).label("ord"), *fields).subquery("r")


@cache
def _ingest_statement() -> Any:
    """The ingest statement, built once: a batch binds one JSONB array (`rows`)."""
    app = bindparam("app", type_=PG_UUID(as_uuid=True))
    rows = _batch_rows()

    # 0. Each row's profile, by id or by custom id: index lookups, NULL for an unknown profile.
    def profile_lookup(*where: ColumnElement[bool]) -> Any:
        return select(Profile.id).where(Profile.application_id == app, *where).scalar_subquery()

    resolved = select(
        rows.c.ord,
        case(
            (rows.c.profile_id.is_not(None), profile_lookup(Profile.id == rows.c.profile_id)),
            else_=profile_lookup(Profile.custom_id == rows.c.custom_id),
        ).label("pid"),
        rows.c.type,
        rows.c.occurred_at,
        rows.c.value_num,
        rows.c.value_text,
        rows.c.properties,
        rows.c.client_event_id,
    ).cte("resolved")

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
                resolved.c.pid,
                resolved.c.type,
                resolved.c.occurred_at,
                resolved.c.value_num,
                resolved.c.value_text,
                resolved.c.properties,
                resolved.c.client_event_id,
            )
            .where(resolved.c.pid.is_not(None))
            .order_by(resolved.c.ord),
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

    # 3. The batch's aggregates per profile. "Latest" values are read from the row ranked first
    #    by (occurred_at, seq) in its kind (type, and streak_type for streaks): one sort of the
    #    batch instead of a sort per profile and aggregate.
    ranked = select(
        *ins.c,
        func.row_number()
        .over(
            partition_by=[ins.c.profile_id, ins.c.type, ins.c.properties["streak_type"].astext],
            order_by=[ins.c.occurred_at.desc(), ins.c.seq.desc()],
        )
        .label("rn"),
    ).cte("ranked")
    agg = (
        select(ranked.c.profile_id, *_batch_aggregates(ranked))
        .group_by(ranked.c.profile_id)
        .cte("agg")
    )

    # 4. Fold them into the stored aggregates. Rows are locked in profile order so concurrent
    #    batches over the same profiles queue instead of deadlocking.
    names = [c.name for c in agg.c if c.name != "profile_id"]
    # The latest streak activity of any streak_type is the later of the two kinds' latest.
    periodic_later = _later(
        agg.c.periodic_at, agg.c.periodic_seq, agg.c.consecutive_at, agg.c.consecutive_seq
    )
    streak = {
        "streak_seq": case((periodic_later, agg.c.periodic_seq), else_=agg.c.consecutive_seq),
        "streak_value": case((periodic_later, agg.c.periodic_value), else_=agg.c.consecutive_value),
    }
    names += list(streak)
    source = (
        select(
            app,
            agg.c.profile_id,
            *(agg.c[n] for n in names if n not in streak),
            *streak.values(),
            func.coalesce(lbc.c.n, 0),
        )
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

    inserted = select(func.count()).select_from(ins).scalar_subquery()
    unknown = (
        select(func.array_agg(resolved.c.ord)).where(resolved.c.pid.is_(None)).scalar_subquery()
    )
    return select(inserted.label("inserted"), unknown.label("unknown")).add_cte(up)


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

    def first_by_latest(expr: Any, cond: ColumnElement[bool], rank: Any) -> Any:
        # Exactly one row of the kind is ranked 1, so max() just picks its value.
        return func.max(expr).filter(and_(cond, rank == 1))

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
    out.append(func.max(ins.c.occurred_at).filter(streak).label("last_streak_at"))
    out.append(func.coalesce(func.max(ins.c.value_num).filter(streak), 0).label("longest_streak"))
    for at, seq, values, type_, streak_type in _LATEST:
        cond = where(type_)
        rank = ins.c.rn
        if streak_type is not None:
            cond = and_(cond, ins.c.properties["streak_type"].astext == streak_type)
        out.append(func.max(ins.c.occurred_at).filter(cond).label(at))
        out.append(first_by_latest(ins.c.seq, cond, rank).label(seq))
        for name, kind in values.items():
            expr: Any
            if kind == "num":
                expr = ins.c.value_num
            elif kind == "text":
                expr = ins.c.value_text
            else:
                expr = cast(ins.c.properties["rank"].astext, BigInteger)
            out.append(first_by_latest(expr, cond, rank).label(name))
    return out


def _later(at: Any, seq: Any, other_at: Any, other_seq: Any) -> ColumnElement[bool]:
    """(at, seq) is later than (other_at, other_seq); a missing one is never later."""
    return and_(
        at.is_not(None),
        or_(other_at.is_(None), tuple_(at, seq) > tuple_(other_at, other_seq)),
    )


def _fold(new: Any) -> dict[str, Any]:
    """SET clause merging the batch's aggregates (`new` = EXCLUDED) into the stored row."""
    pa = ProfileActivity
    out: dict[str, Any] = {}
    for name in [*_COUNTS, *_SUMS, "leaderboards_ranked_on"]:
        out[name] = getattr(pa, name) + new[name]
    for name in ["last_event_at", *_LAST_TIMES, "longest_streak"]:  # not last_streak_at: below
        out[name] = func.greatest(getattr(pa, name), new[name])  # greatest() skips NULLs
    out["first_streak_at"] = func.least(pa.first_streak_at, new["first_streak_at"])
    groups = [(at, seq, values) for at, seq, values, _t, _s in _LATEST]
    groups.append(("last_streak_at", "streak_seq", {"streak_value": "num"}))
    for at, seq, values in groups:
        old_at, old_seq = getattr(pa, at), getattr(pa, seq)
        newer = _later(new[at], new[seq], old_at, old_seq)
        out[at] = func.greatest(old_at, new[at])
        for name in [seq, *values]:
            out[name] = case((newer, new[name]), else_=getattr(pa, name))
    out["updated_at"] = func.now()
    return out
