"""Helpers shared by repositories."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import (
    BindParameter,
    ClauseElement,
    ColumnElement,
    Executable,
    Select,
    String,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles

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


async def create_temporary(session: AsyncSession, name: str, query: Select[Any]) -> None:
    """CREATE TEMPORARY TABLE name AS query: kept until the connection ends or it is dropped
    (so it outlives the transaction, for work committed in several steps)."""
    await session.execute(drop_temporary_statement(name))
    await session.execute(CreateTableAs(name, query))
    # Its statistics, for the statements that read it (temporary tables are never auto-analyzed).
    await session.execute(text(f'ANALYZE pg_temp."{name}"'))


async def drop_temporary(session: AsyncSession, name: str) -> None:
    await session.execute(drop_temporary_statement(name))


def drop_temporary_statement(name: str) -> Executable:
    return text(f'DROP TABLE IF EXISTS pg_temp."{name}"')


class CreateTableAs(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, name: str, query: Select[Any]) -> None:
        self.name = name
        self.query = query


@compiles(CreateTableAs)
def _create_table_as(element: CreateTableAs, compiler: Any, **kw: Any) -> str:
    return f'CREATE TEMPORARY TABLE "{element.name}" AS ' + str(
        compiler.process(element.query, **kw)
    )


async def analyze_stale(session: AsyncSession, tables: Sequence[str]) -> list[str]:
    """ANALYZE those of `tables` whose planner statistics are missing or stale (more than a tenth
    of their rows changed since), as autovacuum would; returns the ones analyzed.

    Servers running autovacuum rarely need it, but statistics lag after bulk loads, and a server
    without autovacuum never has any.
    """
    rows = await session.execute(
        text(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:tables) "
            "AND n_mod_since_analyze > 1000 "
            "AND n_mod_since_analyze > 0.1 * GREATEST(n_live_tup, 1)"
        ),
        {"tables": list(tables)},
    )
    stale = [str(r.relname) for r in rows]
    for name in stale:  # names from the caller's fixed list, never from input
        await session.execute(text(f'ANALYZE "{name}"'))
    return stale


async def vacuum_stale(engine: AsyncEngine, tables: Sequence[str]) -> list[str]:
    """VACUUM (ANALYZE) those of `tables` that took more inserted or dead rows since their last
    vacuum than autovacuum lets pass (1,000 plus a fifth of the rows the last vacuum or analyze
    counted); returns the ones vacuumed.

    Index-only scans skip the heap only on pages vacuum marked all-visible: without it (a server
    without autovacuum, or one that has not caught up after a bulk evaluation) every read goes
    to the heap. SKIP_LOCKED: a table autovacuum is working on is left to it. Each VACUUM runs
    on its own connection in autocommit (it cannot run in a transaction) and is bounded by the
    statement timeout like any statement; a cancelled one keeps the pages it marked.
    """
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = await conn.execute(
            text(
                "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.relname = ANY(:tables) "
                "AND s.n_ins_since_vacuum + s.n_dead_tup > 1000 + 0.2 * GREATEST(c.reltuples, 0)"
            ),
            {"tables": list(tables)},
        )
        stale = [str(r.relname) for r in rows]
        for name in stale:  # names from the caller's fixed list, never from input
            await conn.execute(text(f'VACUUM (ANALYZE, SKIP_LOCKED) "{name}"'))
    return stale
