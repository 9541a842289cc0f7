"""Helpers shared by repositories."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import BindParameter, ColumnElement, Select, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.errors import UNIQUE_VIOLATION, Conflict, constraint_name, sqlstate

T = TypeVar("T")


async def unique_or_conflict(
    session: AsyncSession, write: Callable[[], Awaitable[T]], conflicts: Mapping[str, str]
) -> T:
    """Run one write in a savepoint. A unique violation of a constraint named in `conflicts`
    (constraint or unique index name -> detail) becomes that 409, and the request's transaction
    stays usable; any other error propagates."""
    try:
        async with session.begin_nested():
            return await write()
    except IntegrityError as exc:
        detail = conflicts.get(constraint_name(exc) or "")
        if sqlstate(exc) != UNIQUE_VIOLATION or detail is None:
            raise
        raise Conflict(detail) from exc


def like_escape(value: str) -> str:
    """Escape LIKE wildcards so `%` and `_` in user input are literal."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def set_local(session: AsyncSession, name: str, value: str) -> None:
    """SET LOCAL name = value (until the transaction or savepoint ends), the value bound."""
    await session.execute(select(func.set_config(name, value, True)))


async def count_of(session: AsyncSession, *where: ColumnElement[Any], frm: Any) -> int:
    stmt = select(func.count()).select_from(frm).where(*where)
    return int((await session.execute(stmt)).scalar_one())


async def count_rows(session: AsyncSession, stmt: Select[Any]) -> int:
    """The number of rows `stmt` selects (a list's exact `count`)."""
    return await count_of(session, frm=stmt.subquery())


def uuid_value(value: UUID) -> BindParameter[UUID]:
    return bindparam(None, value, type_=PG_UUID(as_uuid=True))


_UUID_ARRAY: Any = ARRAY(PG_UUID(as_uuid=True))
_TEXT_ARRAY: Any = ARRAY(String())


def uuid_array(values: Sequence[UUID]) -> BindParameter[list[UUID]]:
    """One array parameter (not N scalar ones): `= ANY(:ids)` / `unnest(:ids)` for bulk work."""
    return bindparam(None, list(values), type_=_UUID_ARRAY)


def text_array(values: Sequence[str]) -> BindParameter[list[str]]:
    return bindparam(None, list(values), type_=_TEXT_ARRAY)


async def set_statement_timeout(session: AsyncSession, timeout_ms: int) -> None:
    """SET LOCAL statement_timeout, with the value as a bound parameter (0 = none)."""
    await set_local(session, "statement_timeout", str(int(timeout_ms)))


async def clock(session: AsyncSession) -> datetime:
    """The database's current time (`clock_timestamp()`: not frozen at the transaction start)."""
    value: datetime = (await session.execute(select(func.clock_timestamp()))).scalar_one()
    return value
