"""SQL of the change log's readers (docs/changes.md): a group's changes, a profile's group
history, members as of an instant, size history and retention. The log's only writer is
MembershipRepository."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, and_, case, exists, func, literal, select, union_all
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import uuid_value
from profile_groups.models import GroupMembership, Profile, ProfileGroup
from profile_groups.models.changes import membership_change_log, membership_changes

_MC = membership_changes
_GM = GroupMembership

CHANGE_COLUMNS = (
    _MC.c.id,
    _MC.c.group_id,
    _MC.c.profile_id,
    _MC.c.custom_id,
    _MC.c.change,
    _MC.c.reason,
    _MC.c.evaluation_id,
    _MC.c.occurred_at,
)


class HistoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def log_started_at(self) -> datetime:
        """When the log started recording (migration 0008 writes it): nothing before is known.
        Without the row, nothing before now is."""
        stmt = select(
            func.coalesce(select(membership_change_log.c.started_at).scalar_subquery(), func.now())
        )
        value: datetime = (await self.session.execute(stmt)).scalar_one()
        return value

    def changes_statement(
        self,
        group_id: UUID,
        *,
        after: int | None,
        change: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Select[Any]:
        """A group's changes (read oldest first by id, on ix_membership_changes_group)."""
        stmt = select(*CHANGE_COLUMNS).where(_MC.c.group_id == group_id)
        if after is not None:
            stmt = stmt.where(_MC.c.id > after)
        if change is not None:
            stmt = stmt.where(_MC.c.change == change)
        if since is not None:
            stmt = stmt.where(_MC.c.occurred_at >= since)
        if until is not None:
            stmt = stmt.where(_MC.c.occurred_at < until)
        return stmt

    def profile_history_statement(self, application_id: UUID, profile_id: UUID) -> Select[Any]:
        """A profile's changes in the application's active groups (deleted and inactive groups
        are left out, as from every list)."""
        return (
            select(*CHANGE_COLUMNS)
            .join(ProfileGroup, ProfileGroup.id == _MC.c.group_id)
            .where(
                _MC.c.profile_id == profile_id,
                _MC.c.application_id == application_id,
                ProfileGroup.application_id == application_id,
                ProfileGroup.is_active.is_(True),
            )
        )

    def members_as_of_statement(self, group: ProfileGroup, as_of: datetime) -> Select[Any]:
        """The group's members at `as_of` (id, nickname, custom_id, membership_created_at),
        rebuilt from the current members and the changes after `as_of` alone.

        Per profile, changes alternate (an entry, an exit, ...) in id order, so a profile's
        state at `as_of` is told by its first change after it: an exit means it was a member
        (since that exit's `member_since`), an entry that it was not. A profile with no change
        after `as_of` is as it is now. A profile deleted since is listed with the custom_id the
        log recorded and no nickname.
        """
        at = literal(as_of, _MC.c.occurred_at.type)
        later = (
            select(_MC.c.profile_id, _MC.c.change, _MC.c.member_since, _MC.c.custom_id)
            .where(_MC.c.group_id == group.id, _MC.c.occurred_at > at)
            .ext(distinct_on(_MC.c.profile_id))
            .order_by(_MC.c.profile_id, _MC.c.id)
            .cte("later")
            .prefix_with("MATERIALIZED")
        )
        unchanged = select(
            _GM.profile_id.label("id"),
            _GM.created_at.label("membership_created_at"),
            literal(None, _MC.c.custom_id.type).label("logged_custom_id"),
        ).where(
            _GM.group_id == group.id,
            _GM.created_at <= at,
            ~exists(select(1).where(later.c.profile_id == _GM.profile_id)),
        )
        left = select(
            later.c.profile_id.label("id"),
            later.c.member_since.label("membership_created_at"),
            later.c.custom_id.label("logged_custom_id"),
        ).where(later.c.change == "exited", later.c.member_since <= at)
        members = union_all(unchanged, left).subquery("members")
        profile = and_(
            Profile.application_id == uuid_value(group.application_id),
            Profile.id == members.c.id,
        )
        return select(
            members.c.id,
            Profile.nickname,
            case((Profile.id.is_(None), members.c.logged_custom_id), else_=Profile.custom_id).label(
                "custom_id"
            ),
            members.c.membership_created_at,
        ).select_from(members.outerjoin(Profile, profile))

    async def changes_by_bucket(self, group_id: UUID, unit: str, start: datetime) -> list[Row[Any]]:
        """(bucket start in UTC, entered, exited) of every `unit` (hour or day) from `start`
        that has changes of the group, up to now."""
        bucket = func.date_trunc(unit, _MC.c.occurred_at, "UTC").label("at")
        stmt = (
            select(
                bucket,
                func.count().filter(_MC.c.change == "entered").label("entered"),
                func.count().filter(_MC.c.change == "exited").label("exited"),
            )
            .where(_MC.c.group_id == group_id, _MC.c.occurred_at >= start)
            .group_by(bucket)
        )
        return list((await self.session.execute(stmt)).all())

    async def prune(self, retention_days: int, batch: int) -> int:
        """Delete up to `batch` changes older than `retention_days` (by the database's clock);
        returns how many. The BRIN index on occurred_at finds them."""
        cutoff = func.now() - func.make_interval(0, 0, 0, retention_days)
        old = select(_MC.c.id).where(_MC.c.occurred_at < cutoff).limit(batch)
        gone = _MC.delete().where(_MC.c.id.in_(old)).returning(_MC.c.id).cte("gone")
        stmt = select(func.count()).select_from(gone)
        return int((await self.session.execute(stmt)).scalar_one())
