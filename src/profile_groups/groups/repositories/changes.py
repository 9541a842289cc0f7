"""SQL of `profile_changes`: the queue of profiles whose attributes changed (written by triggers
in the writers' own transactions, consumed here)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, Row, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import uuid_array, uuid_value
from profile_groups.models.segmentation import profile_changes


class ChangeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_round(self) -> bool:
        """Take the lock of an incremental round (for this transaction); False if another round
        holds it. Rounds that overlapped would only take each other's groups away (SKIP LOCKED)
        and queue each other's changes again."""
        taken = await self.session.execute(
            select(func.pg_try_advisory_xact_lock(func.hashtextextended("profile_changes", 0)))
        )
        return bool(taken.scalar_one())

    async def claim(self, limit: int) -> list[Row[Any]]:
        """Take up to `limit` changes off the queue: (application_id, profile_id, changed_at).

        Only committed changes are visible, so a change is taken after the write that made it,
        by exactly one transaction (SKIP LOCKED: concurrent workers take disjoint rows, and
        writers, which only insert, never wait). If the taking transaction rolls back, the rows
        are back.
        """
        stmt = text(
            "DELETE FROM profile_changes WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM profile_changes LIMIT :limit FOR UPDATE SKIP LOCKED)) "
            "RETURNING application_id, profile_id, changed_at"
        )
        return list((await self.session.execute(stmt, {"limit": limit})).all())

    async def put_back(
        self, application_id: UUID, profile_ids: Sequence[UUID], changed_at: datetime
    ) -> None:
        """Queue changes again (some of their groups could not be updated this round)."""
        pid = func.unnest(uuid_array(profile_ids)).column_valued("pid")
        await self.session.execute(
            insert(profile_changes).from_select(
                ["application_id", "profile_id", "changed_at"],
                select(uuid_value(application_id), pid, literal(changed_at, DateTime(True))),
            )
        )
