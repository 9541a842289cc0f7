"""webhooks: subscriptions, the delivery outbox, change-log cursors and the groups' event outbox

Revision ID: 0009_webhooks
Revises: 0010_memberships_profile_fk
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_webhooks"
down_revision: str | None = "0010_memberships_profile_fk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = postgresql.UUID(as_uuid=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "application_id",
            UUID,
            sa.ForeignKey("applications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("group_ids", postgresql.ARRAY(UUID)),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text()),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True)),
        sa.Column("start_change_id", sa.BigInteger(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index(
        "ix_webhook_subscriptions_application",
        "webhook_subscriptions",
        ["application_id", "created_at", "id"],
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", UUID, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False, unique=True),
        sa.Column(
            "subscription_id",
            UUID,
            sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("group_id", UUID),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("first_change_id", sa.BigInteger()),
        sa.Column("last_change_id", sa.BigInteger()),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=NOW),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("leased_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    )
    op.create_index(
        "ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "seq"]
    )
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["subscription_id", "group_id", "seq"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_created_at",
        "webhook_deliveries",
        ["created_at"],
        postgresql_using="brin",
    )
    op.create_table(
        "webhook_cursors",
        sa.Column(
            "subscription_id",
            UUID,
            sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("group_id", UUID, nullable=False),
        sa.Column("last_change_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", "group_id"),
    )
    op.create_table(
        "group_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column("application_id", UUID, nullable=False),
        sa.Column("group_id", UUID, nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), unique=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "type IN ('group.evaluation_failed', 'group.deleted')", name="group_events_type"
        ),
    )
    op.create_index(
        "ix_group_events_unpublished",
        "group_events",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("group_events")
    op.drop_table("webhook_cursors")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
