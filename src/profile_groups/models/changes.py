"""The membership change log (docs/changes.md): one row per entry or exit of a profile in a group.

Append-only. `id` comes from one sequence and is drawn inside the statement that changes the
membership, while that statement's transaction holds the group's row lock (the lock order of
groups/repositories/membership.py). Two transactions changing one group's membership therefore
draw their ids one after the other, and the later one commits later: within a group, ids increase
with commit order, which is what the `after` cursor of the change feed needs. No foreign keys: a
change outlives its profile (profile_deleted) and is kept for the retention period whatever
happens to the rows it names.
"""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from profile_groups.models.base import Base

CHANGES = ("entered", "exited")
REASONS = ("manual", "evaluation", "activity", "profile_deleted")

membership_changes = Table(
    "membership_changes",
    Base.metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("application_id", PG_UUID(as_uuid=True), nullable=False),
    Column("group_id", PG_UUID(as_uuid=True), nullable=False),
    Column("profile_id", PG_UUID(as_uuid=True), nullable=False),
    Column("custom_id", Text),
    Column("change", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evaluation_id", PG_UUID(as_uuid=True)),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    # On an exit: when the membership it ends began, so the members of a past instant can be
    # rebuilt from the current members and the changes after that instant alone.
    Column("member_since", DateTime(timezone=True)),
    CheckConstraint(f"change IN {CHANGES!r}", name="membership_changes_change"),
    CheckConstraint(f"reason IN {REASONS!r}", name="membership_changes_reason"),
    Index("ix_membership_changes_group", "group_id", "id"),
    # A profile's group history (a few rows per profile). Writers insert their changes in
    # profile order, so a statement's entries land in neighbouring leaves (migration 0011).
    Index("ix_membership_changes_profile", "application_id", "profile_id", "id"),
    # Retention deletes by age; a BRIN index costs an insert almost nothing (ids and times grow
    # together).
    Index("ix_membership_changes_occurred_at", "occurred_at", postgresql_using="brin"),
)

# One row: when the log started (the migration that shipped its writers). Membership before then
# cannot be rebuilt from the log.
membership_change_log = Table(
    "membership_change_log",
    Base.metadata,
    Column("id", SmallInteger, primary_key=True, server_default=text("1")),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("id = 1", name="membership_change_log_one_row"),
)
