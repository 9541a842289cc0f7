"""profile_changes: the queue of profiles whose attributes changed; evaluation heartbeats

Revision ID: 0005_profile_changes
Revises: 0004_profiles
Create Date: 2026-12-01 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_profile_changes"
down_revision: str | None = "0004_profiles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Writes to `profiles` (create, replace, update, bulk upsert, a custom attribute's values) are
# marked by statement-level triggers with transition tables: one INSERT ... SELECT per writing
# statement, whatever its size, and no writer can forget it. Transition tables allow one event
# per trigger, hence an INSERT and an UPDATE trigger. Event ingestion, the hot path, marks its
# profiles in its own statement instead (activity/repository.py): a transition table of the wide
# `profile_activity` rows cost a sixth of a batch.
_MARKERS = {"profiles": "id"}


def upgrade() -> None:
    # No key and no foreign key: an append-only queue the worker consumes (DELETE ... RETURNING
    # of the rows it can see), so a writer never waits for it. A profile deleted meanwhile
    # leaves rows that match nothing and are consumed like any other.
    op.create_table(
        "profile_changes",
        sa.Column("application_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("profile_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    for table, id_column in _MARKERS.items():
        op.execute(
            f"""
            CREATE FUNCTION mark_{table}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO profile_changes (application_id, profile_id)
                SELECT application_id, {id_column} FROM changed_rows;
                RETURN NULL;
            END
            $$
            """
        )
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_changed_{event.lower()} AFTER {event} ON {table} "
                "REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION mark_{table}_changed()"
            )
    # A running evaluation proves it is alive every few seconds; one silent for a minute was
    # interrupted (worker killed, database restarted) and is failed and retried.
    op.add_column(
        "group_evaluations", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("group_evaluations", "heartbeat_at")
    for table in _MARKERS:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER {table}_changed_{event} ON {table}")
        op.execute(f"DROP FUNCTION mark_{table}_changed()")
    op.drop_table("profile_changes")
