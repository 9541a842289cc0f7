"""SQL of `group_events`: the groups' outbox of `group.deleted` and `group.evaluation_failed`
(docs/webhooks.md). Written in the transaction of the deletion or the failure; the webhook
producer reads it (groups never imports webhooks)."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, String, any_, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import uuid_array
from profile_groups.models.segmentation import GroupEvaluation
from profile_groups.models.webhooks import group_events

E = GroupEvaluation


def _timestamp(column: Any) -> ColumnElement[str]:
    # The API's timestamp format (docs/api.md), e.g. 2025-04-28T12:16:49.670053Z.
    return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


class GroupEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def group_deleted(self, application_id: UUID, group_id: UUID) -> None:
        await self.session.execute(
            insert(group_events)
            .values(
                application_id=application_id,
                group_id=group_id,
                type="group.deleted",
                data={"group_id": str(group_id)},
                dedupe_key=f"deleted:{group_id}",
            )
            .on_conflict_do_nothing()
        )

    async def evaluations_failed(self, evaluation_ids: Sequence[UUID]) -> None:
        """One event per failed evaluation among `evaluation_ids`; its data is the evaluation
        object of `…/evaluations/`, as it is now."""
        data = func.json_build_object(
            "id", E.id.cast(String),
            "ruleset_id", E.ruleset_id.cast(String),
            "trigger", E.trigger,
            "status", E.status,
            "as_of", _timestamp(E.as_of),
            "started_at", _timestamp(E.started_at),
            "finished_at", _timestamp(E.finished_at),
            "duration_ms", E.duration_ms,
            "matched_count", E.matched_count,
            "added_count", E.added_count,
            "removed_count", E.removed_count,
            "error", E.error,
        )  # fmt: skip
        source = select(
            E.application_id,
            E.group_id,
            literal("group.evaluation_failed", String()),
            data,
            literal("evaluation_failed:", String()) + E.id.cast(String),
        ).where(E.id == any_(uuid_array(evaluation_ids)), E.status == "failed")
        await self.session.execute(
            insert(group_events)
            .from_select(["application_id", "group_id", "type", "data", "dedupe_key"], source)
            .on_conflict_do_nothing()
        )
