"""Helpers shared by repositories."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import BindParameter, ColumnElement, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.errors import UNIQUE_VIOLATION, Conflict, sqlstate


def is_unique_violation(exc: IntegrityError) -> bool:
    return sqlstate(exc) == UNIQUE_VIOLATION or "unique" in str(exc).lower()


async def flush_or_conflict(session: AsyncSession, detail: str) -> None:
    """Flush inside a savepoint; a unique violation becomes a 409 and the request stays usable."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict(detail) from exc
        raise


def like_escape(value: str) -> str:
    """Escape LIKE wildcards so `%` and `_` in user input are literal."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def set_local(session: AsyncSession, name: str, value: str) -> None:
    """SET LOCAL name = value (until the transaction or savepoint ends), the value bound."""
    await session.execute(select(func.set_config(name, value, True)))


async def count_of(session: AsyncSession, *where: ColumnElement[Any], frm: Any) -> int:
    stmt = select(func.count()).select_from(frm).where(*where)
    return int((await session.execute(stmt)).scalar_one())


def uuid_value(value: UUID) -> BindParameter[UUID]:
    return bindparam(None, value, type_=PG_UUID(as_uuid=True))


_UUID_ARRAY: Any = ARRAY(PG_UUID(as_uuid=True))
_TEXT_ARRAY: Any = ARRAY(String())


def uuid_array(values: Sequence[UUID]) -> BindParameter[list[UUID]]:
    """One array parameter (not N scalar ones): `= ANY(:ids)` / `unnest(:ids)` for bulk work."""
    return bindparam(None, list(values), type_=_UUID_ARRAY)


def text_array(values: Sequence[str]) -> BindParameter[list[str]]:
    return bindparam(None, list(values), type_=_TEXT_ARRAY)
