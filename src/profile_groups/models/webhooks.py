"""Webhooks (docs/webhooks.md): subscriptions, the delivery outbox, the per-(subscription, group)
cursors over the membership change log, and the groups' own event outbox.

Everything a delivery needs is in PostgreSQL (its payload included), so nothing is lost while the
receiver, Redis or the worker is down, and a redelivery is byte-identical.
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from profile_groups.models.base import Base

EVENT_TYPES = ("group.members_changed", "group.evaluation_failed", "group.deleted")
TEST_EVENT = "webhook.test"
DELIVERY_STATUSES = ("pending", "succeeded", "failed")


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[UUID] = mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))
    application_id: Mapped[UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # None: every group of the application.
    group_ids: Mapped[list[UUID] | None] = mapped_column(ARRAY(PG_UUID(as_uuid=True)))
    description: Mapped[str] = mapped_column(Text, server_default="")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # `whsec_` + base64: kept as is because the service signs with it (a hash could not sign).
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation, deliveries carry a signature with the previous secret too until then.
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    # The change log's highest id when the subscription was created: a group without a cursor
    # row starts after it (the subscription receives the changes made after its creation).
    start_change_id: Mapped[int] = mapped_column(BigInteger)
    # When its current run of failed attempts began (None after a success): a day of it
    # disables the subscription.
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index("ix_webhook_subscriptions_application", "application_id", "created_at", "id"),
    )


class WebhookDelivery(Base):
    """One event for one subscription: the outbox row and its delivery log entry at once."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[UUID] = mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))
    # Order of creation: deliveries of one (subscription, group) go out in this order.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    subscription_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(Text)
    # The ordering key; None for `webhook.test` (its own queue).
    group_id: Mapped[UUID | None]
    # The exact JSON body that is signed and sent, every attempt alike.
    payload: Mapped[str] = mapped_column(Text)
    # The change ids a `group.members_changed` batch covers.
    first_change_id: Mapped[int | None] = mapped_column(BigInteger)
    last_change_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(server_default=func.now())
    # When its current run of failed attempts began: about a day of it and it is `failed`.
    failing_since: Mapped[datetime | None]
    # A dispatcher's claim while the attempt is in flight; an expired lease (a dead worker) is
    # claimable again.
    leased_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"status IN {DELIVERY_STATUSES!r}", name="status"),
        # The delivery log, newest first.
        Index("ix_webhook_deliveries_subscription", "subscription_id", "seq"),
        # The head of each (subscription, group) queue.
        Index(
            "ix_webhook_deliveries_pending",
            "subscription_id",
            "group_id",
            "seq",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_created_at", "created_at", postgresql_using="brin"),
    )


# The last change id produced into deliveries, per subscription and group. Within a group,
# change ids increase with commit order, so "everything after this id" misses nothing.
webhook_cursors = Table(
    "webhook_cursors",
    Base.metadata,
    Column(
        "subscription_id",
        PG_UUID(as_uuid=True),
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("group_id", PG_UUID(as_uuid=True), nullable=False),
    Column("last_change_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("subscription_id", "group_id"),
)


# The groups' event outbox: `group.deleted` and `group.evaluation_failed`, written by groups/ in
# the transaction of the deletion or the failure (groups never imports webhooks); the webhook
# producer turns each into deliveries and marks it published in one transaction.
group_events = Table(
    "group_events",
    Base.metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("application_id", PG_UUID(as_uuid=True), nullable=False),
    Column("group_id", PG_UUID(as_uuid=True), nullable=False),
    Column("type", Text, nullable=False),
    # The event's `data`, as JSON text in the order written.
    Column("data", JSON, nullable=False),
    # One event per fact (e.g. an evaluation failed once even if two paths mark it failed).
    Column("dedupe_key", Text, unique=True),
    Column("occurred_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("published_at", DateTime(timezone=True)),
    CheckConstraint(
        "type IN ('group.evaluation_failed', 'group.deleted')", name="group_events_type"
    ),
    Index("ix_group_events_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)
