"""The worker's vacuum of stale tables (kit.repository.vacuum_stale): incremental rounds read
memberships and events index-only, which skips the heap only on pages vacuum marked."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from profile_groups.groups.evaluation import VACUUMED_TABLES
from profile_groups.kit.repository import vacuum_stale

# A table of this test's own: the shared tables' statistics are reset by every test's TRUNCATE,
# reported by other connections whenever they go idle, so their counts could not be awaited.
TABLE = "vacuum_probe"


@pytest.fixture
async def probe(engine: AsyncEngine) -> AsyncIterator[str]:
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, note text)"))
    yield TABLE
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {TABLE}"))


async def _insert(engine: AsyncEngine, rows: range) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"INSERT INTO {TABLE} SELECT g, 'row ' || g "
                "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) g"
            ),
            {"a": rows.start, "b": rows.stop - 1},
        )
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))


async def _inserted_since_vacuum(engine: AsyncEngine, at_least: int) -> None:
    for _ in range(200):
        async with engine.connect() as conn:
            n = await conn.scalar(
                text("SELECT n_ins_since_vacuum FROM pg_stat_user_tables WHERE relname = :t"),
                {"t": TABLE},
            )
        if n is not None and n >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the inserts were never reported in pg_stat_user_tables")


async def _all_visible_pages(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        n = await conn.scalar(
            text("SELECT relallvisible FROM pg_class WHERE relname = :t"), {"t": TABLE}
        )
    return int(n or 0)


async def test_a_table_is_vacuumed_once_inserts_pass_autovacuums_threshold(
    engine: AsyncEngine, probe: str
) -> None:
    await _insert(engine, range(1, 801))
    await _inserted_since_vacuum(engine, 800)
    assert await vacuum_stale(engine, [probe]) == []  # under 1,000 rows: left alone

    await _insert(engine, range(801, 5_001))
    await _inserted_since_vacuum(engine, 5_000)
    assert await vacuum_stale(engine, [probe]) == [probe]
    assert await _all_visible_pages(engine) > 0  # what index-only scans need
    assert await vacuum_stale(engine, [probe]) == []  # vacuumed: nothing stale any more

    # The threshold grows with the table: 1,000 plus a fifth of the 5,000 rows the vacuum counted.
    await _insert(engine, range(5_001, 6_801))
    await _inserted_since_vacuum(engine, 1_800)
    assert await vacuum_stale(engine, [probe]) == []
    await _insert(engine, range(6_801, 7_501))
    await _inserted_since_vacuum(engine, 2_500)
    assert await vacuum_stale(engine, [probe]) == [probe]


def test_the_worker_vacuums_what_rounds_read_index_only() -> None:
    assert set(VACUUMED_TABLES) == {"group_memberships", "events"}
