"""Test data written straight to PostgreSQL, for tests whose subject is not the profiles API."""

import uuid
from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import text

from profile_groups.db import AsyncSessionMaker
from tests.conftest import Tenant


async def application_id(sessionmaker: AsyncSessionMaker, tenant: Tenant) -> UUID:
    async with sessionmaker() as session:
        result = await session.execute(
            text("SELECT id FROM applications WHERE client_id = :c"), {"c": tenant.client_id}
        )
        return UUID(str(result.scalar_one()))


async def make_profiles(
    sessionmaker: AsyncSessionMaker,
    tenant: Tenant,
    count: int,
    *,
    nicknames: Sequence[str | None] | None = None,
    custom_ids: Sequence[str | None] | None = None,
) -> list[str]:
    """Insert `count` profiles in one statement; returns their ids as lowercase strings."""
    ids = [uuid.uuid4() for _ in range(count)]
    app_id = await application_id(sessionmaker, tenant)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO profiles (application_id, id, nickname, custom_id) "
                "SELECT :app, u.id, u.nickname, u.custom_id "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:nicks AS text[]), CAST(:cids AS text[])) "
                "AS u(id, nickname, custom_id)"
            ),
            {
                "app": app_id,
                "ids": ids,
                "nicks": list(nicknames) if nicknames else [None] * count,
                "cids": list(custom_ids) if custom_ids else [None] * count,
            },
        )
    return [str(i) for i in ids]


async def membership_rows(sessionmaker: AsyncSessionMaker, group_id: str) -> int:
    async with sessionmaker() as session:
        result = await session.execute(
            text("SELECT count(*) FROM group_memberships WHERE group_id = :g"), {"g": group_id}
        )
        return int(result.scalar_one())
