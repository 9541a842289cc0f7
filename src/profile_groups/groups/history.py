"""Reading the membership change log (docs/changes.md): a group's changes, a profile's group
history, members as of an instant, size history, and the worker's retention."""

import re
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.applications.auth import Principal
from profile_groups.groups import service
from profile_groups.groups.repositories.history import HistoryRepository
from profile_groups.groups.schemas import SizeHistory, SizePoint
from profile_groups.kit.errors import invalid_field
from profile_groups.kit.pagination import Paged, PageRequest, paginate
from profile_groups.kit.repository import clock, count_rows
from profile_groups.kit.timestamps import as_utc, format_timestamp, parse_timestamp
from profile_groups.models import Application
from profile_groups.models.changes import membership_changes

Interval = Literal["hour", "day"]
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Without `since`, size history covers this much before `until` (clipped to what the log has).
DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=30)}
MAX_SIZE_ROWS = 1000
MAX_CHANGE_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_change_id(raw: str | None) -> int | None:
    """`after`: a change id as the API renders it (its decimal text); anything else is a 400."""
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_CHANGE_ID:
        raise invalid_field(
            ["query", "after"], "Expected a change id, as returned in a change's 'id'."
        )
    return int(raw)


def parse_instant(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    parsed = parse_timestamp(raw)
    if parsed is None:
        raise invalid_field(
            ["query", name],
            "Expected an ISO 8601 timestamp (e.g. 2025-04-28T12:16:49.670053Z).",
        )
    return parsed


async def _known_since(session: AsyncSession, now: datetime, retention_days: int) -> datetime:
    """The earliest instant the log can answer for: its start, or the retention horizon."""
    started = await HistoryRepository(session).log_started_at()
    return max(started, now - timedelta(days=retention_days))


def _too_early(name: str, earliest: datetime) -> Exception:
    return invalid_field(
        ["query", name],
        f"'{name}' is before {format_timestamp(earliest)}, the earliest instant the change log "
        "covers (it keeps CHANGE_RETENTION_DAYS of changes and began when it was installed).",
    )


async def list_changes(
    session: AsyncSession,
    app: Application,
    group_id: UUID,
    page: PageRequest,
    *,
    after: str | None,
    change: str | None,
    since: str | None,
    until: str | None,
) -> Paged[Any]:
    """A group's changes, oldest first; `after` keeps only later ones."""
    after_id = parse_change_id(after)
    since_at, until_at = parse_instant("since", since), parse_instant("until", until)
    group = await service.get_group(session, app, group_id)
    stmt = HistoryRepository(session).changes_statement(
        group.id, after=after_id, change=change, since=since_at, until=until_at
    )
    return await paginate(
        session,
        page,
        stmt,
        [(membership_changes.c.id, "id")],
        await count_rows(session, stmt),
        ascending=True,
    )


async def profile_history(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    profile_id: UUID | None = None,
    custom_id: str | None = None,
) -> Paged[Any]:
    """A profile's changes across the application's groups, newest first (the read policy of
    a profile's groups: a profile token reads its own)."""
    profile = await service.readable_profile(
        session, principal, profile_id=profile_id, custom_id=custom_id
    )
    stmt = HistoryRepository(session).profile_history_statement(principal.app.id, profile.id)
    return await paginate(
        session,
        page,
        stmt,
        [(membership_changes.c.id, "id")],
        await count_rows(session, stmt),
    )


async def members_as_of(
    session: AsyncSession,
    app: Application,
    group_id: UUID,
    page: PageRequest,
    as_of_raw: str,
    retention_days: int,
) -> Paged[Any]:
    """The members at `as_of`, newest membership first, `membership_created_at` as of then."""
    as_of = parse_instant("as_of", as_of_raw)
    assert as_of is not None
    group = await service.get_group(session, app, group_id)
    now = await _now(session)
    if as_of > now:
        raise invalid_field(["query", "as_of"], "'as_of' is in the future.")
    earliest = await _known_since(session, now, retention_days)
    if as_of < earliest:
        raise _too_early("as_of", earliest)
    stmt = HistoryRepository(session).members_as_of_statement(group, as_of)
    cols = stmt.selected_columns
    return await paginate(
        session,
        page,
        stmt,
        [(cols.membership_created_at, "membership_created_at"), (cols.id, "id")],
        await count_rows(session, stmt),
    )


async def size_history(
    session: AsyncSession,
    app: Application,
    group_id: UUID,
    *,
    since: str | None,
    until: str | None,
    interval: Interval,
    retention_days: int,
) -> SizeHistory:
    """One row per UTC hour or day, oldest first: changes within it, members at its end."""
    since_at, until_at = parse_instant("since", since), parse_instant("until", until)
    group = await service.get_group(session, app, group_id)
    now = await _now(session)
    earliest = await _known_since(session, now, retention_days)
    end = min(until_at or now, now)
    # Intervals the log cannot answer for are left out rather than invented: `since` (given or
    # by default) is clipped to the earliest instant it covers.
    since_at = max(since_at or end - DEFAULT_SPAN[interval], earliest)
    if since_at > end:
        raise invalid_field(["query", "since"], "'since' is after 'until'.")
    step = STEP[interval]
    first, last = _floor(since_at, interval), _floor(end, interval)
    rows = int((last - first) / step) + 1
    if rows > MAX_SIZE_ROWS:
        raise invalid_field(
            ["query", "since"],
            f"At most {MAX_SIZE_ROWS} intervals per request ({rows} asked): narrow "
            "'since'/'until' or use interval=day.",
        )
    counted = {
        as_utc(r.at): (int(r.entered), int(r.exited))
        for r in await HistoryRepository(session).changes_by_bucket(group.id, interval, first)
    }
    # Walk back from now: the count at the end of an interval is the current count minus the
    # net change of every later interval (the log has every change since `earliest`).
    count = group.profile_count
    for at, (entered, exited) in counted.items():
        if at > last:
            count -= entered - exited
    points: list[SizePoint] = []
    at = last
    while at >= first:
        entered, exited = counted.get(at, (0, 0))
        points.append(SizePoint(at=at, profile_count=count, entered=entered, exited=exited))
        count -= entered - exited
        at -= step
    points.reverse()
    return SizeHistory(results=points)


def _floor(value: datetime, interval: Interval) -> datetime:
    value = as_utc(value)
    if interval == "hour":
        return value.replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


async def _now(session: AsyncSession) -> datetime:
    return as_utc(await clock(session))


async def prune_changes(session: AsyncSession, retention_days: int, batch: int) -> int:
    """One batch of retention (the worker runs batches until one comes back short)."""
    return await HistoryRepository(session).prune(retention_days, batch)
