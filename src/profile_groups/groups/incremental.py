"""Incremental membership: profiles whose attributes changed are re-evaluated against every active
dynamic group of their application within about a second (docs/segmentation.md, "Freshness").

Every write that can change a profile's attributes queues the profile in `profile_changes`, in its
own transaction (triggers on `profiles` and `profile_activity`). The worker's `apply_changes` tick
takes queued changes (only committed ones are visible), recomputes those profiles' membership of
every active dynamic group of their application in one pass, and applies the entries and exits,
all in ONE transaction, so:

* a change is never lost: its queue row goes only with the commit that applied it (a worker that
  dies mid-way rolls back and the rows are there for the next tick);
* a change is never applied twice with stale data: membership is recomputed from the profile's
  current data, so applying the same profiles again is a no-op, and the data read is at least as
  new as the change (the rows taken were committed before the statements that read the data);
* a full evaluation of a group is never undone: while one runs it holds the group's evaluation
  lock; this tick skips the group and queues the changes again for the next tick.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.db import AsyncSessionMaker
from profile_groups.groups.repositories.changes import ChangeRepository
from profile_groups.groups.repositories.membership import MembershipRepository
from profile_groups.groups.repositories.rulesets import RulesetRepository
from profile_groups.kit.repository import clock, set_local, set_statement_timeout
from profile_groups.kit.retry import retry_on_race
from profile_groups.segmentation.service import check_trees, matching_many

log = logging.getLogger("profile_groups.incremental")

# Changes taken per transaction: bounds one round's work (a burst of a million changes is worked
# off in rounds, each committed on its own).
BATCH = 20_000
INCREMENTAL_WORK_MEM = "32MB"


@dataclass
class Applied:
    changes: int = 0
    profiles: int = 0
    entered: int = 0
    exited: int = 0
    deferred: int = 0  # profiles queued again: a group of theirs was busy

    def __iadd__(self, other: "Applied") -> "Applied":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


async def apply_changes(
    sessionmaker: AsyncSessionMaker,
    *,
    timeout_ms: int,
    batch: int = BATCH,
    as_of: datetime | None = None,
) -> Applied:
    """One round: take up to `batch` queued changes and apply them to every group, as of the
    database's clock (or `as_of`, for tests that compare with a reference at a fixed time)."""

    async def round_() -> Applied:
        async with sessionmaker() as session, session.begin():
            await set_statement_timeout(session, timeout_ms)
            # Sorts over a few thousand profiles stay in memory.
            await set_local(session, "work_mem", INCREMENTAL_WORK_MEM)
            changes = ChangeRepository(session)
            if not await changes.lock_round():
                return Applied()  # another round is running; the next tick comes in a second
            taken = await changes.claim(batch)
            done = Applied(changes=len(taken))
            by_app: dict[UUID, dict[UUID, datetime]] = defaultdict(dict)
            for row in taken:
                seen = by_app[row.application_id].get(row.profile_id)
                at: datetime = row.changed_at if seen is None else min(seen, row.changed_at)
                by_app[row.application_id][row.profile_id] = at
            for app_id, profiles in by_app.items():
                await _apply_application(session, app_id, profiles, done, as_of)
            return done

    return await retry_on_race(round_)


async def _apply_application(
    session: AsyncSession,
    app_id: UUID,
    profiles: dict[UUID, datetime],
    done: Applied,
    as_of: datetime | None,
) -> None:
    ids = sorted(profiles)
    done.profiles += len(ids)
    groups = await RulesetRepository(session).active_of(app_id)
    if not groups:
        return
    memberships = MembershipRepository(session)
    evaluable = await memberships.evaluation_locks([g.group.id for g in groups])
    locked = await RulesetRepository(session).lock_groups(sorted(evaluable))
    mine = [c for c in groups if c.group.id in locked]
    checked = await check_trees(session, app_id, [c.rule_tree for c in mine], ("rule_tree",))
    # A tree no longer valid (a custom attribute deleted) is left to the next full evaluation,
    # which reports it.
    ready = [(c, tree) for c, (tree, _) in zip(mine, checked, strict=True) if tree is not None]
    if len(locked) < len(groups):
        # A group is being evaluated in full, or written: its changes wait for the next round.
        await ChangeRepository(session).put_back(app_id, ids, min(profiles.values()))
        done.deferred += len(ids)
    if not ready:
        return
    as_of = as_of or await clock(session)
    # One statement: every group's predicate over the changed profiles, and every group's
    # entries and exits among them.
    changed = await memberships.replace_among(
        [current.group for current, _ in ready],
        matching_many(app_id, as_of, [checked for _, checked in ready], profile_ids=ids),
        as_of,
        ids,
    )
    done.entered += sum(c.added for c in changed.values())
    done.exited += sum(c.removed for c in changed.values())
