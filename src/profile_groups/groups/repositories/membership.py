"""The one writer of `group_memberships` and of `profile_groups.profile_count`.

The invariant it keeps: a group's `profile_count` equals its number of membership rows, in every
committed state. Every statement here that adds or removes memberships updates the count in the
same transaction; nothing else in the code base writes either (profile deletion, static member
changes and evaluations all come here). It is also the only writer of the change log
(`membership_changes`, docs/changes.md): every statement that adds or removes memberships
records each entry and exit in the same statement (a data-modifying CTE over the RETURNING rows),
while holding the row locks of the groups it writes, which is what orders the log's ids.

Lock order. An evaluation (full or incremental) of a group first takes the group's advisory lock
(`evaluation_locks`): full evaluations hold it, per group, from before their shared pass until
that group's diff committed, so an incremental update never applies a change between a full
evaluation's snapshot and its diff (it skips the group and keeps the change for later). Member
changes and PATCH/DELETE never take it, so they never wait for an evaluation's matching pass.
Then, writers of one group's memberships lock the group row: member adds and removes
and group PATCH/DELETE take it FOR UPDATE (`GroupRepository.get(..., for_update=True)`), an
evaluation FOR NO KEY UPDATE (which conflicts with those, not with inserts that merely reference
the group). Under that lock membership rows are written in profile id order, so two writers of one
group queue instead of deadlocking. Profile deletion is the other way round: it locks the profile
row first (which waits for in-flight membership inserts naming it, and blocks new ones), then every
group the profile is in, FOR UPDATE in id order, then deletes its memberships and decrements those
counts. A member add racing a deletion of one of its profiles can therefore deadlock; PostgreSQL
breaks it and the services retry the loser (kit.retry, docs/architecture.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    CompoundSelect,
    DateTime,
    Row,
    Select,
    Text,
    and_,
    any_,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import text_array, uuid_array, uuid_value
from profile_groups.models import GroupMembership, Profile, ProfileGroup
from profile_groups.models.changes import membership_changes

_GM = GroupMembership
_TS = DateTime(timezone=True)


@dataclass(frozen=True)
class DiffCounts:
    matched: int
    added: int
    removed: int


def _lock_key(group_id: Any) -> Any:
    # One bigint per group, in a namespace of its own.
    return func.hashtextextended(literal("profile_group_evaluation:") + cast(group_id, Text), 0)


def _moves(
    application_id: UUID,
    source: Any,
    group_id: Any,
    profile_id: Any,
    change: str,
    member_since: Any,
    occurred_at: Any,
    custom_id: Any = None,
) -> Select[Any]:
    """Change-log rows (group_id, profile_id, custom_id, change, member_since, occurred_at) of
    one kind, from the RETURNING rows of an insert or delete (`source`).

    `custom_id` when the statement already has it (a full evaluation's matching set carries it);
    otherwise it is read from the profile, one primary-key probe per row: never a hash join
    over the application's profiles, whatever the planner thinks the row count is.
    """
    if custom_id is None:
        custom_id = (
            select(Profile.custom_id)
            .where(Profile.application_id == uuid_value(application_id), Profile.id == profile_id)
            .scalar_subquery()
        )
    return select(
        group_id.label("group_id"),
        profile_id.label("profile_id"),
        custom_id.label("custom_id"),
        literal(change).label("change"),
        member_since.label("member_since"),
        occurred_at.label("occurred_at"),
    ).select_from(source)


def _entries(
    application_id: UUID,
    added: CTE,
    occurred_at: Any,
    *,
    custom_id: Any = None,
    source: Any = None,
) -> Select[Any]:
    """The entries of an insert CTE's RETURNING rows (group_id, profile_id); `source` when they
    are read joined to something else (the diff that carries their custom_id)."""
    return _moves(
        application_id,
        added if source is None else source,
        added.c.group_id,
        added.c.profile_id,
        "entered",
        _NO_TIME,
        occurred_at,
        custom_id,
    )


def _exits(application_id: UUID, removed: CTE, occurred_at: Any) -> Select[Any]:
    """The exits of a delete CTE's RETURNING rows (group_id, profile_id, created_at): each
    membership's created_at is its exit's member_since."""
    return _moves(
        application_id,
        removed,
        removed.c.group_id,
        removed.c.profile_id,
        "exited",
        removed.c.created_at,
        occurred_at,
    )


def _logged(
    application_id: UUID,
    moves: Select[Any] | CompoundSelect[Any],
    reason: str,
    evaluation_id: UUID | None = None,
) -> CTE:
    """A data-modifying CTE recording `moves` (`_moves` rows, read from the RETURNING of the
    statement's own insert and delete CTEs) in the change log (docs/changes.md).

    It runs inside the statement that changes the memberships, whose transaction holds the row
    locks of every group it writes: the ids it draws from the log's one sequence therefore come
    after those of every earlier writer of those groups, which committed before the lock was
    granted. That is the `after` cursor's guarantee; nothing may record a change otherwise.
    """
    m = moves.subquery("moves")
    return (
        insert(membership_changes)
        .from_select(
            [
                "application_id",
                "group_id",
                "profile_id",
                "custom_id",
                "change",
                "reason",
                "evaluation_id",
                "occurred_at",
                "member_since",
            ],
            select(
                uuid_value(application_id),
                m.c.group_id,
                m.c.profile_id,
                m.c.custom_id,
                m.c.change,
                literal(reason),
                literal(evaluation_id, PG_UUID(as_uuid=True)),
                m.c.occurred_at,
                m.c.member_since,
            )
            # In profile order: neighbouring leaves of the log's per-profile index, not a
            # random page per change.
            .order_by(m.c.profile_id),
        )
        .cte("logged")
    )


_NO_TIME = literal(None, _TS)


def _existing(rows: Select[Any], application_id: UUID, profile_id: Any) -> Select[Any]:
    """The memberships about to be inserted, `rows`, for profiles that still exist, in profile
    order, each profile locked FOR KEY SHARE until commit: the foreign key to profiles,
    set-based.

    Memberships have no foreign key to profiles (migration 0010): its per-row check was about
    half of an evaluation's insert time. This join does what it did. A profile deleted after the
    matching set was computed is skipped (the lock finds the row gone) instead of failing the
    statement, and a deletion that comes later waits for this transaction (its FOR UPDATE
    conflicts with the KEY SHARE), then removes the memberships this one committed
    (`remove_profile`).
    """
    return (
        rows.join(
            Profile,
            and_(Profile.application_id == uuid_value(application_id), Profile.id == profile_id),
        )
        # Profile order: the lock order of every writer (the module's docstring), and each
        # index then takes the new rows as one sweep of neighbouring leaves, the profiles probed
        # in key order, instead of a random leaf per row (404,495 new members at 1,000,000
        # profiles: 22-26 s in order, 28-39 s in a hash join's order).
        .order_by(profile_id)
        .with_for_update(read=True, key_share=True, of=Profile)
    )


class MembershipRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Reads ---------------------------------------------------------------------------------

    async def resolve_profiles(
        self, application_id: UUID, *, ids: Sequence[UUID] = (), custom_ids: Sequence[str] = ()
    ) -> list[Row[UUID, str | None]]:
        """(id, custom_id) of the application's profiles among `ids` or `custom_ids`."""
        where = (
            Profile.id == any_(uuid_array(ids))
            if ids
            else Profile.custom_id == any_(text_array(custom_ids))
        )
        stmt = select(Profile.id, Profile.custom_id).where(
            Profile.application_id == application_id, where
        )
        return list((await self.session.execute(stmt)).all())

    def members_statement(self, group_id: UUID) -> Select[*tuple[Any, ...]]:
        return (
            select(
                Profile.id,
                Profile.nickname,
                Profile.custom_id,
                _GM.created_at.label("membership_created_at"),
            )
            .join(
                Profile,
                (Profile.application_id == _GM.application_id) & (Profile.id == _GM.profile_id),
            )
            .where(_GM.group_id == group_id)
        )

    async def get_member(self, group_id: UUID, profile_id: UUID) -> Row[*tuple[Any, ...]] | None:
        stmt = self.members_statement(group_id).where(_GM.profile_id == profile_id)
        return (await self.session.execute(stmt)).one_or_none()

    def profile_groups_statement(
        self, application_id: UUID, profile_id: UUID
    ) -> Select[*tuple[Any, ...]]:
        return (
            select(
                ProfileGroup.id.label("group_id"),
                ProfileGroup.name.label("group_name"),
                ProfileGroup.profile_count,
                ProfileGroup.is_active,
                ProfileGroup.created_at,
                ProfileGroup.custom_id,
                ProfileGroup.membership_type,
                _GM.created_at.label("membership_created_at"),
            )
            .join(ProfileGroup, ProfileGroup.id == _GM.group_id)
            .where(
                _GM.application_id == application_id,
                _GM.profile_id == profile_id,
                ProfileGroup.is_active.is_(True),
            )
        )

    # Locks -----------------------------------------------------------------------------------

    async def evaluation_locks(
        self, group_ids: Sequence[UUID], *, session_level: bool = False
    ) -> set[UUID]:
        """Try to take the evaluation (advisory) lock of each group; returns those taken.

        Transaction-level by default (incremental updates); `session_level` locks outlive the
        transaction, for full evaluations that commit group by group (released by
        `release_evaluation_locks`, or by the connection closing).
        """
        if not group_ids:
            return set()
        fn = func.pg_try_advisory_lock if session_level else func.pg_try_advisory_xact_lock
        gid = func.unnest(uuid_array(sorted(group_ids))).column_valued("gid")
        stmt = select(gid, fn(_lock_key(gid)).label("taken"))
        return {row.gid for row in await self.session.execute(stmt) if row.taken}

    async def hold_evaluation_locks(self, group_ids: Sequence[UUID]) -> None:
        """Wait for and take the session-level evaluation lock of each group, in id order (two
        full evaluations over overlapping groups queue instead of deadlocking)."""
        if group_ids:
            gid = func.unnest(uuid_array(sorted(group_ids))).column_valued("gid")
            await self.session.execute(select(func.pg_advisory_lock(_lock_key(gid))).order_by(gid))

    async def release_evaluation_locks(self, group_ids: Sequence[UUID]) -> None:
        if group_ids:
            gid = func.unnest(uuid_array(group_ids)).column_valued("gid")
            await self.session.execute(select(func.pg_advisory_unlock(_lock_key(gid))))

    async def release_all_evaluation_locks(self) -> None:
        """Every session-level advisory lock of this connection (a full evaluation's own)."""
        await self.session.execute(select(func.pg_advisory_unlock_all()))

    # Static members (the caller holds the group row lock) -----------------------------------

    async def add(self, group: ProfileGroup, profile_ids: Sequence[UUID]) -> set[UUID]:
        """Insert memberships and record their entries (reason `manual`) in one statement;
        returns the ids that were not members yet.

        A membership begins at the statement's start (not the transaction's), which is after
        the group's row lock was granted: entries and exits of one group get times in the order
        of their ids (docs/changes.md)."""
        if not profile_ids:
            return set()
        pid = func.unnest(uuid_array(sorted(profile_ids))).column_valued("pid")
        added = (
            insert(_GM)
            .from_select(
                ["group_id", "profile_id", "application_id", "created_at"],
                _existing(
                    select(
                        uuid_value(group.id),
                        pid,
                        uuid_value(group.application_id),
                        func.statement_timestamp(),
                    ),
                    group.application_id,
                    pid,
                ),
            )
            .on_conflict_do_nothing()
            .returning(_GM.group_id, _GM.profile_id, _GM.created_at)
            .cte("added")
        )
        app = group.application_id
        logged = _logged(app, _entries(app, added, added.c.created_at), "manual")
        stmt = select(added.c.profile_id).add_cte(logged)
        inserted = set((await self.session.execute(stmt)).scalars())
        await self._add_to_count(group.id, len(inserted))
        return inserted

    async def remove(self, group: ProfileGroup, profile_ids: Sequence[UUID]) -> int:
        """Delete memberships and record their exits (reason `manual`) in one statement."""
        if not profile_ids:
            return 0
        removed = (
            delete(_GM)
            .where(_GM.group_id == group.id, _GM.profile_id == any_(uuid_array(profile_ids)))
            .returning(_GM.group_id, _GM.profile_id, _GM.created_at)
            .cte("removed")
        )
        app = group.application_id
        logged = _logged(app, _exits(app, removed, func.statement_timestamp()), "manual")
        stmt = select(func.count()).select_from(removed).add_cte(logged)
        count = int((await self.session.execute(stmt)).scalar_one())
        await self._add_to_count(group.id, -count)
        return count

    async def _add_to_count(self, group_id: UUID, delta: int) -> None:
        if delta:
            await self.session.execute(
                update(ProfileGroup)
                .where(ProfileGroup.id == group_id)
                .values(profile_count=ProfileGroup.profile_count + delta)
            )

    # Evaluations (the caller holds the group row lock) --------------------------------------

    async def replace(
        self,
        group: ProfileGroup,
        matching: Select[Any],
        as_of: datetime,
        evaluation_id: UUID | None = None,
    ) -> DiffCounts:
        """Make the group's members exactly the profiles `matching` selects (a `profile_id`
        column, and `custom_id` if it has it), in ONE statement (a full evaluation; incremental
        ones use `replace_among`).

        The matching set is computed once (a materialized CTE) and FULL JOINed with the group's
        current members: that join (hash or merge, never a nested loop) yields exactly the
        profiles to add and to remove. Memberships that no longer match are deleted, new ones
        inserted with created_at = as_of, and those that stay are not touched, so they keep
        their created_at. profile_count is set to the new member count in the same transaction.
        Every entry and exit is recorded in the change log by the same statement (reason
        `evaluation`, `evaluation_id`, at `as_of`); an entry's custom_id comes with the diff
        (a hash join of the inserted rows with it, both large only when the matching set is),
        so a first evaluation adding many members never probes the profiles again for it.

        The inserts read only the diff, never group_memberships itself: a NOT EXISTS probe of the
        table being inserted into can be planned as a per-row scan that also reads every row the
        statement has inserted so far (quadratic on a first evaluation).
        """
        matched = matching.cte("matched").prefix_with("MATERIALIZED")
        current = (
            select(_GM.profile_id)
            .where(_GM.group_id == group.id)
            .cte("current_members")
            .prefix_with("MATERIALIZED")
        )
        m, c = matched.c.profile_id, current.c.profile_id
        carried = "custom_id" in matched.c
        known = [matched.c.custom_id.label("custom_id")] if carried else []
        diff = (
            select(func.coalesce(m, c).label("profile_id"), *known, c.is_(None).label("is_new"))
            .select_from(matched.join(current, c == m, full=True))
            .where(or_(m.is_(None), c.is_(None)))
            .cte("diff")
            .prefix_with("MATERIALIZED")
        )
        removed = (
            delete(_GM)
            .where(
                _GM.group_id == group.id,
                _GM.profile_id == diff.c.profile_id,
                diff.c.is_new.is_(False),
            )
            .returning(_GM.group_id, _GM.profile_id, _GM.created_at)
            .cte("removed")
        )
        at = literal(as_of, _TS)
        added = (
            insert(_GM)
            .from_select(
                ["group_id", "profile_id", "application_id", "created_at"],
                _existing(
                    select(
                        uuid_value(group.id),
                        diff.c.profile_id,
                        uuid_value(group.application_id),
                        at,
                    ).where(diff.c.is_new.is_(True)),
                    group.application_id,
                    diff.c.profile_id,
                ),
            )
            .on_conflict_do_nothing()
            .returning(_GM.group_id, _GM.profile_id)
            .cte("added")
        )
        app = group.application_id
        if carried:
            entries = _entries(
                app,
                added,
                at,
                custom_id=diff.c.custom_id,
                source=added.join(diff, diff.c.profile_id == added.c.profile_id),
            )
        else:
            entries = _entries(app, added, at)
        moves = union_all(entries, _exits(app, removed, at))
        logged = _logged(app, moves, "evaluation", evaluation_id)
        stmt = select(
            select(func.count()).select_from(current).scalar_subquery().label("current"),
            select(func.count()).select_from(added).scalar_subquery().label("added"),
            select(func.count()).select_from(removed).scalar_subquery().label("removed"),
        ).add_cte(logged)
        row = (await self.session.execute(stmt)).one()
        # The members now, not the matching set's size: a profile deleted since the matching
        # set was computed is not inserted (`_existing`).
        now = int(row.current) + int(row.added) - int(row.removed)
        counts = DiffCounts(now, int(row.added), int(row.removed))
        await self.session.execute(
            update(ProfileGroup)
            .where(ProfileGroup.id == group.id)
            .values(profile_count=counts.matched)
        )
        return counts

    async def replace_among(
        self,
        groups: Sequence[ProfileGroup],
        matching: Select[Any],
        as_of: datetime,
        profile_ids: Sequence[UUID],
    ) -> dict[UUID, DiffCounts]:
        """An incremental update of many groups in ONE statement (the caller holds their row
        locks): among `profile_ids` only, make the members of `groups[i]` exactly the profiles
        whose column `m<i>` of `matching` (profile_id, m0, m1, ...) is true; every group's
        profile_count moves by its difference, and every entry and exit is recorded in the
        change log (reason `activity`, at `as_of`). Returns the counts of the groups that changed.
        """
        if not groups or not profile_ids:
            return {}
        m = matching.cte("matching").prefix_with("MATERIALIZED")
        matched = (
            union_all(
                *(
                    select(uuid_value(g.id).label("group_id"), m.c.profile_id).where(m.c[f"m{i}"])
                    for i, g in enumerate(groups)
                )
            )
            .cte("matched")
            .prefix_with("MATERIALIZED")
        )
        # One probe of the (application_id, profile_id) index per changed profile, whatever the
        # statistics say: with `profile_id = ANY(...)` the planner may (and, on a table it
        # believes empty, did) scan every membership of the application instead, 16,000,000
        # rows for 5,000 profiles. A LATERAL subquery with OFFSET 0 is never flattened, so it
        # stays a parameterized index scan per profile.
        changed = (
            func.unnest(uuid_array(sorted(profile_ids)))
            .table_valued("pid")
            .render_derived("changed")
        )
        own = (
            select(_GM.group_id, _GM.profile_id)
            .where(
                _GM.application_id == groups[0].application_id,
                _GM.profile_id == changed.c.pid,
                _GM.group_id == any_(uuid_array([g.id for g in groups])),
            )
            .offset(0)
            .lateral("own")
        )
        current = (
            select(own.c.group_id, own.c.profile_id)
            .select_from(changed.join(own, true()))
            .cte("current_members")
            .prefix_with("MATERIALIZED")
        )
        joined = matched.join(
            current,
            and_(
                current.c.group_id == matched.c.group_id,
                current.c.profile_id == matched.c.profile_id,
            ),
            full=True,
        )
        diff = (
            select(
                func.coalesce(matched.c.group_id, current.c.group_id).label("group_id"),
                func.coalesce(matched.c.profile_id, current.c.profile_id).label("profile_id"),
                current.c.profile_id.is_(None).label("is_new"),
            )
            .select_from(joined)
            .where(or_(matched.c.profile_id.is_(None), current.c.profile_id.is_(None)))
            .cte("diff")
            .prefix_with("MATERIALIZED")
        )
        removed = (
            delete(_GM)
            .where(
                _GM.group_id == diff.c.group_id,
                _GM.profile_id == diff.c.profile_id,
                diff.c.is_new.is_(False),
            )
            .returning(_GM.group_id, _GM.profile_id, _GM.created_at)
            .cte("removed")
        )
        at = literal(as_of, _TS)
        added = (
            insert(_GM)
            .from_select(
                ["group_id", "profile_id", "application_id", "created_at"],
                _existing(
                    select(
                        diff.c.group_id,
                        diff.c.profile_id,
                        uuid_value(groups[0].application_id),
                        at,
                    ).where(diff.c.is_new.is_(True)),
                    groups[0].application_id,
                    diff.c.profile_id,
                ),
            )
            .on_conflict_do_nothing()
            .returning(_GM.group_id, _GM.profile_id)
            .cte("added")
        )
        app = groups[0].application_id
        changes = union_all(_entries(app, added, at), _exits(app, removed, at))
        logged = _logged(app, changes, "activity")
        moves = union_all(
            select(added.c.group_id, literal(1).label("added"), literal(0).label("removed")),
            select(removed.c.group_id, literal(0), literal(1)),
        ).subquery("moves")
        deltas = (
            select(
                moves.c.group_id,
                func.sum(moves.c.added).label("added"),
                func.sum(moves.c.removed).label("removed"),
            )
            .group_by(moves.c.group_id)
            .cte("deltas")
        )
        counted = (
            update(ProfileGroup)
            .where(ProfileGroup.id == deltas.c.group_id)
            .values(profile_count=ProfileGroup.profile_count + deltas.c.added - deltas.c.removed)
            .returning(ProfileGroup.id)
            .cte("counted")
        )
        stmt = select(deltas.c.group_id, deltas.c.added, deltas.c.removed).add_cte(counted, logged)
        return {
            row.group_id: DiffCounts(0, int(row.added), int(row.removed))
            for row in await self.session.execute(stmt)
        }

    # Group and profile deletion -------------------------------------------------------------

    async def remove_group(self, group: ProfileGroup) -> None:
        """Before a group is deleted (the caller holds its row lock): all its memberships.
        No per-member change is recorded: the group's deletion is the event (docs/changes.md)."""
        await self.session.execute(delete(_GM).where(_GM.group_id == group.id))

    async def remove_profile(self, application_id: UUID, profile_id: UUID) -> bool:
        """Before a profile is deleted: lock it, then remove it from every group it is in and
        decrement those counts (the lock order above). False if there is no such profile.

        Memberships have no foreign key to profiles: nothing else would remove them. An insert
        racing this deletion either committed first (the FOR UPDATE below waits for its KEY SHARE
        locks, and the delete then sees its rows) or comes after (it finds the profile gone and
        skips it, `_existing`).
        """
        locked = await self.session.execute(
            select(Profile.id)
            .where(Profile.application_id == application_id, Profile.id == profile_id)
            .with_for_update()
        )
        if locked.scalar_one_or_none() is None:
            return False
        in_groups = select(_GM.group_id).where(
            _GM.application_id == application_id, _GM.profile_id == profile_id
        )
        await self.session.execute(
            select(ProfileGroup.id)
            .where(ProfileGroup.id.in_(in_groups))
            .order_by(ProfileGroup.id)
            .with_for_update()
        )
        # A fresh snapshot now that the groups are locked: exactly the memberships that exist,
        # all in groups locked above (new ones would need the profile row this transaction
        # holds), so the exits recorded here come after every earlier change of those groups.
        gone = (
            delete(_GM)
            .where(_GM.application_id == application_id, _GM.profile_id == profile_id)
            .returning(_GM.group_id, _GM.profile_id, _GM.created_at)
            .cte("gone")
        )
        exits = _exits(application_id, gone, func.statement_timestamp())
        logged = _logged(application_id, exits, "profile_deleted")
        await self.session.execute(
            update(ProfileGroup)
            .where(ProfileGroup.id.in_(select(gone.c.group_id)))
            .values(profile_count=ProfileGroup.profile_count - 1)
            .add_cte(logged)
        )
        return True
