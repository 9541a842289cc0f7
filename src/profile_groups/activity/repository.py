"""Every SQL statement of event ingestion and retention.

A batch is written by ONE statement: the events (idempotent on the client id), the distinct
leaderboards, and the per-profile aggregates folded in with INSERT ... ON CONFLICT DO UPDATE. Each
aggregate is an order-independent fold (count, sum, min, max, and "latest" values kept with their
(occurred_at, seq) so an older event arriving late never overwrites a newer one).
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple
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

from profile_groups.activity.event_types import (
    EVENT_TYPES,
    LAST_EVENT_AT,
    EventType,
    Latest,
    Match,
)
from profile_groups.kit.repository import set_local
from profile_groups.models import Profile
from profile_groups.models.activity import Event, ProfileActivity, ProfileLeaderboard
from profile_groups.models.segmentation import profile_changes


class EventRow(NamedTuple):
    """One checked event, JSON-ready.

    A batch is bound as ONE JSONB parameter (a list of these, which json encodes as arrays) and
    unpacked by `jsonb_array_elements`: encoding nine 1,000-element arrays, one per column, cost
    the API more Python time than all its per-item checks together.
    """

    profile_id: str | None  # canonical UUID text; exactly one of profile_id / custom_id is set
    custom_id: str | None
    type: str
    occurred_at: str  # ISO 8601 with an offset
    value_num: int | float | None
    value_text: str | None
    properties: dict[str, Any] | None
    client_event_id: str | None


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


_ROW_TYPES: dict[str, Any] = {  # SQL types of EventRow's fields
    "profile_id": PG_UUID(as_uuid=True),
    "custom_id": String(),
    "type": String(),
    "occurred_at": DateTime(timezone=True),
    "value_num": Numeric(),
    "value_text": Text(),
    "properties": JSONB(),
    "client_event_id": String(),
}


def _batch_rows() -> Any:
    """The batch parameter as rows: (ord, the EventRow fields typed); `ord` counts from 0."""
    items = (
        func.jsonb_array_elements(bindparam("rows", type_=JSONB))
        .table_valued(column("item", JSONB), with_ordinality="ord")
        .render_derived(name="items")
    )
    item = items.c.item
    fields: list[ColumnElement[Any]] = []
    for i, name in enumerate(EventRow._fields):
        type_ = _ROW_TYPES[name]
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
def _ingest_statement(mark_changes: bool = True) -> Any:
    """The ingest statement, built once: a batch binds one JSONB array (`rows`).

    (`mark_changes=False` leaves out step 5, only so benchmarks/ingest.py can price it.)
    """
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
    board = ins.c.properties[_DISTINCT.property].astext
    lb = (
        insert(ProfileLeaderboard)
        .from_select(
            ["application_id", "profile_id", "leaderboard_id"],
            select(app, ins.c.profile_id, board)
            .where(ins.c.type == _DISTINCT_TYPE)
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
    #    batch instead of a sort per profile and aggregate. The split property is only part of
    #    the kind for the types split on it: on others it is metadata and must not split them.
    split = case(*((ins.c.type == t, ins.c.properties[p].astext) for t, p in _SPLIT_BY.items()))
    ranked = select(
        *ins.c,
        func.row_number()
        .over(
            partition_by=[ins.c.profile_id, ins.c.type, split],
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
    # An unsplit "latest" group (e.g. streaks of any streak_type) takes its latest part's values.
    derived: dict[str, Any] = {}
    for spec, group in _LATEST:
        if group.when is None and spec.name in _PARTS:
            derived |= _of_parts(agg, group, _PARTS[spec.name])
    source = (
        select(
            app,
            agg.c.profile_id,
            *(agg.c[n] for n in names),
            *derived.values(),
            func.coalesce(lbc.c.n, 0),
        )
        .select_from(agg.outerjoin(lbc, lbc.c.profile_id == agg.c.profile_id))
        .order_by(agg.c.profile_id)
    )
    upsert = insert(ProfileActivity).from_select(
        ["application_id", "profile_id", *names, *derived, _DISTINCT.column], source
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
    # 5. Queue the profiles whose aggregates changed for incremental membership updates, in the
    #    same statement (groups/incremental.py).
    result = select(inserted.label("inserted"), unknown.label("unknown")).add_cte(up)
    if not mark_changes:
        return result
    marked = (
        insert(profile_changes)
        .from_select(["application_id", "profile_id"], select(app, up.c.profile_id))
        .cte("marked")
    )
    return result.add_cte(marked)


# -- aggregates: derived from the event types' table (activity/event_types.py) -----------------

_TYPES = EVENT_TYPES.values()
_COUNTS: dict[str, tuple[str, Match | None]] = {
    c.column: (t.name, c.when) for t in _TYPES for c in t.counts
}
_SUMS = {s.column: t.name for t in _TYPES for s in t.sums}
_LAST_TIMES = {column: t.name for t in _TYPES for column in t.last_at}
_FIRST_TIMES = {column: t.name for t in _TYPES for column in t.first_at}
_MAXIMA = {column: t.name for t in _TYPES for column in t.max_value}
_LATEST = [(t, g) for t in _TYPES for g in t.latest]
# Types whose "latest" groups are split by the value of a property -> that property; their parts.
_SPLIT_BY = {t.name: g.when.property for t in _TYPES for g in t.latest if g.when}
_PARTS = {name: [g for g in EVENT_TYPES[name].latest if g.when] for name in _SPLIT_BY}
# profile_leaderboards holds the distinct values of one property of one type.
[(_DISTINCT_TYPE, _DISTINCT)] = [(t.name, t.distinct) for t in _TYPES if t.distinct]


def _latest_value(rows: Any, type_: EventType, source: str | None) -> Any:
    """A "latest" group's value: the event's value (None) or a property, typed as checked."""
    if source is None:
        assert type_.value is not None
        return rows.c.value_text if type_.value.kind == "string" else rows.c.value_num
    value = rows.c.properties[source].astext
    [prop] = [p for p in type_.properties if p.name == source]
    return cast(value, BigInteger) if prop.kind == "integer" else value


def _batch_aggregates(ins: Any) -> list[ColumnElement[Any]]:
    t = ins.c.type

    def where(type_: str, when: Match | None = None) -> ColumnElement[bool]:
        if when is None:
            return t == type_  # type: ignore[no-any-return]
        return and_(t == type_, ins.c.properties[when.property].astext == when.value)

    def first_by_latest(expr: Any, cond: ColumnElement[bool], rank: Any) -> Any:
        # Exactly one row of the kind is ranked 1, so max() just picks its value.
        return func.max(expr).filter(and_(cond, rank == 1))

    out: list[ColumnElement[Any]] = []
    for name, (type_, when) in _COUNTS.items():
        out.append(func.count().filter(where(type_, when)).label(name))
    for name, type_ in _SUMS.items():
        out.append(func.coalesce(func.sum(ins.c.value_num).filter(where(type_)), 0).label(name))
    out.append(func.max(ins.c.occurred_at).label(LAST_EVENT_AT))
    for name, type_ in _LAST_TIMES.items():
        out.append(func.max(ins.c.occurred_at).filter(where(type_)).label(name))
    for name, type_ in _FIRST_TIMES.items():
        out.append(func.min(ins.c.occurred_at).filter(where(type_)).label(name))
    for name, type_ in _MAXIMA.items():
        out.append(func.coalesce(func.max(ins.c.value_num).filter(where(type_)), 0).label(name))
    for spec, group in _LATEST:
        cond = where(spec.name, group.when)
        out.append(func.max(ins.c.occurred_at).filter(cond).label(group.at))
        if group.when is None and spec.name in _PARTS:
            continue  # seq and values come from the parts (_of_parts)
        out.append(first_by_latest(ins.c.seq, cond, ins.c.rn).label(group.seq))
        for name, source in group.values:
            expr = _latest_value(ins, spec, source)
            out.append(first_by_latest(expr, cond, ins.c.rn).label(name))
    return out


def _of_parts(agg: Any, group: Latest, parts: list[Latest]) -> dict[str, Any]:
    """Seq and values of an unsplit group: those of its latest part (the first if none is)."""
    later = [
        and_(
            *(
                _later(agg.c[p.at], agg.c[p.seq], agg.c[q.at], agg.c[q.seq])
                for q in parts
                if q is not p
            )
        )
        for p in parts[1:]
    ]
    # Each column of the group -> the same column of every part (values matched by source).
    columns = {group.seq: [p.seq for p in parts]}
    for name, source in group.values:
        columns[name] = [{s: c for c, s in p.values}[source] for p in parts]
    return {
        name: case(*zip(later, (agg.c[c] for c in cols[1:]), strict=True), else_=agg.c[cols[0]])
        for name, cols in columns.items()
    }


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
    for name in [*_COUNTS, *_SUMS, _DISTINCT.column]:
        out[name] = getattr(pa, name) + new[name]
    for name in [LAST_EVENT_AT, *_LAST_TIMES, *_MAXIMA]:
        out[name] = func.greatest(getattr(pa, name), new[name])  # greatest() skips NULLs
    for name in _FIRST_TIMES:
        out[name] = func.least(getattr(pa, name), new[name])
    for _type, group in _LATEST:
        old_at, old_seq = getattr(pa, group.at), getattr(pa, group.seq)
        newer = _later(new[group.at], new[group.seq], old_at, old_seq)
        out[group.at] = func.greatest(old_at, new[group.at])
        for name in [group.seq, *(name for name, _ in group.values)]:
            out[name] = case((newer, new[name]), else_=getattr(pa, name))
    out["updated_at"] = func.now()
    return out
