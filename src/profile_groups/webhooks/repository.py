"""Every SQL statement of webhooks (docs/webhooks.md): subscriptions, the delivery outbox and log,
the producer that turns the membership change log and the groups' event outbox into deliveries,
and the dispatcher's claims and outcomes."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, all_, and_, any_, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.repository import count_of, uuid_array, uuid_value
from profile_groups.models import ProfileGroup
from profile_groups.models.changes import membership_changes
from profile_groups.models.webhooks import (
    DELIVERY_STATUSES,
    WebhookDelivery,
    WebhookSubscription,
    group_events,
    webhook_cursors,
)

S = WebhookSubscription
D = WebhookDelivery

MEMBERS_CHANGED = "group.members_changed"
# The API's timestamp format (docs/api.md), in SQL.
_TS = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# One producer at a time across workers (its passes would only collide on the cursors); claims
# are serialized too, so the per-subscription bound on attempts in flight holds across workers.
_PRODUCER_LOCK = "webhooks:produce"
_CLAIM_LOCK = "webhooks:claim"


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, subscription: WebhookSubscription) -> WebhookSubscription:
        self.session.add(subscription)
        return subscription

    async def get(
        self, application_id: UUID, subscription_id: UUID, *, for_update: bool = False
    ) -> WebhookSubscription | None:
        stmt = select(S).where(S.application_id == application_id, S.id == subscription_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    def list_statement(self, application_id: UUID) -> Select[Any]:
        return select(S).where(S.application_id == application_id)

    async def count(self, application_id: UUID) -> int:
        return await count_of(self.session, S.application_id == application_id, frm=S)

    async def delete(self, subscription: WebhookSubscription) -> None:
        # Its deliveries and cursors go by ON DELETE CASCADE.
        await self.session.execute(delete(S).where(S.id == subscription.id))

    async def flush_and_refresh(self, subscription: WebhookSubscription) -> None:
        await self.session.flush()
        await self.session.refresh(subscription)

    async def touch(self, subscription: WebhookSubscription) -> None:
        await self.session.execute(
            update(S).where(S.id == subscription.id).values(updated_at=func.now())
        )

    async def groups_of(self, application_id: UUID, group_ids: Sequence[UUID]) -> set[UUID]:
        """Those of `group_ids` that are (visible) groups of the application."""
        stmt = select(ProfileGroup.id).where(
            ProfileGroup.application_id == application_id,
            ProfileGroup.is_active.is_(True),
            ProfileGroup.id == any_(uuid_array(group_ids)),
        )
        return set((await self.session.scalars(stmt)).all())

    async def last_change_id(self) -> int:
        """The change log's highest id now (0 when empty): a new subscription starts after it."""
        stmt = select(func.coalesce(func.max(membership_changes.c.id), 0))
        return int((await self.session.execute(stmt)).scalar_one())

    async def start_groups_now(
        self,
        subscription: WebhookSubscription,
        group_ids: Sequence[UUID] | None,
        *,
        except_ids: Sequence[UUID] = (),
    ) -> None:
        """Groups newly covered by a PATCH start at their latest change: the subscription
        receives their changes from now on, not a backlog. `group_ids` None: every group of the
        application but `except_ids` (those it covered already)."""
        groups = select(ProfileGroup.id).where(
            ProfileGroup.application_id == subscription.application_id
        )
        if group_ids is not None:
            groups = groups.where(ProfileGroup.id == any_(uuid_array(group_ids)))
        if except_ids:
            groups = groups.where(ProfileGroup.id != all_(uuid_array(except_ids)))
        g = groups.subquery()
        latest = (
            select(func.coalesce(func.max(membership_changes.c.id), 0))
            .where(membership_changes.c.group_id == g.c.id)
            .scalar_subquery()
        )
        source = select(uuid_value(subscription.id), g.c.id, latest)
        stmt = insert(webhook_cursors).from_select(
            ["subscription_id", "group_id", "last_change_id"], source
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["subscription_id", "group_id"],
            set_={"last_change_id": stmt.excluded.last_change_id},
        )
        await self.session.execute(stmt)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, delivery: WebhookDelivery) -> WebhookDelivery:
        self.session.add(delivery)
        return delivery

    async def flush_and_refresh(self, delivery: WebhookDelivery) -> None:
        await self.session.flush()
        await self.session.refresh(delivery)

    def list_statement(self, subscription_id: UUID) -> Select[Any]:
        return select(D).where(D.subscription_id == subscription_id)

    async def count(self, subscription_id: UUID) -> int:
        return await count_of(self.session, D.subscription_id == subscription_id, frm=D)

    async def retry(self, subscription_id: UUID, delivery_id: UUID) -> WebhookDelivery | None:
        """Make a delivery pending and due now, whatever its status, with a fresh day of
        retries. It keeps its id (`webhook-id`) and payload; in its group's queue it keeps its
        place (its `seq`)."""
        stmt = (
            update(D)
            .where(D.subscription_id == subscription_id, D.id == delivery_id)
            .values(
                status="pending",
                next_attempt_at=func.now(),
                failing_since=None,
                finished_at=None,
            )
            .returning(D)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()


# The producer ---------------------------------------------------------------------------------

# Every (subscription, group) whose changes it receives, with its cursor: the groups it names,
# or every group of its application plus deleted groups whose `group.deleted` is not yet
# published (their last changes still go out, before the deletion). Up to :limit changes per
# pair after its cursor, cut into batches of :batch in change-id order; one delivery per batch,
# its payload the exact body to send; cursors move to the last change produced. One statement.
_PRODUCE_CHANGES = text(
    f"""
WITH subs AS (
  SELECT id, application_id, group_ids, start_change_id FROM webhook_subscriptions
  WHERE :type = ANY(events)
), pairs AS (
  SELECT s.id AS subscription_id, g.group_id,
         COALESCE(k.last_change_id, s.start_change_id) AS after_id
  FROM subs s
  CROSS JOIN LATERAL (
    SELECT unnest(s.group_ids) AS group_id
    UNION
    SELECT pg.id FROM profile_groups pg
    WHERE s.group_ids IS NULL AND pg.application_id = s.application_id
    UNION
    SELECT ge.group_id FROM group_events ge
    WHERE s.group_ids IS NULL AND ge.application_id = s.application_id
      AND ge.published_at IS NULL AND ge.type = 'group.deleted'
  ) g
  LEFT JOIN webhook_cursors k ON k.subscription_id = s.id AND k.group_id = g.group_id
), picked AS (
  SELECT p.subscription_id, c.*,
         (row_number() OVER (PARTITION BY p.subscription_id, c.group_id ORDER BY c.id) - 1)
           / :batch AS batch
  FROM pairs p
  CROSS JOIN LATERAL (
    SELECT m.id, m.group_id, m.profile_id, m.custom_id, m.change, m.reason, m.evaluation_id,
           m.occurred_at
    FROM membership_changes m
    WHERE m.group_id = p.group_id AND m.id > p.after_id
    ORDER BY m.id LIMIT :limit
  ) c
), batches AS (
  SELECT subscription_id, group_id, batch, min(id) AS first_id, max(id) AS last_id,
         json_agg(json_build_object(
           'id', id::text, 'group_id', group_id, 'profile_id', profile_id,
           'custom_id', custom_id, 'change', change, 'reason', reason,
           'evaluation_id', evaluation_id, 'occurred_at', {_TS.format("occurred_at")}
         ) ORDER BY id) AS changes
  FROM picked GROUP BY subscription_id, group_id, batch
), inserted AS (
  INSERT INTO webhook_deliveries
    (subscription_id, type, group_id, payload, first_change_id, last_change_id)
  SELECT subscription_id, :type, group_id,
         json_build_object(
           'type', :type, 'timestamp', {_TS.format("now()")},
           'data', json_build_object('group_id', group_id, 'changes', changes)
         )::text,
         first_id, last_id
  FROM batches ORDER BY subscription_id, group_id, batch
  RETURNING subscription_id, group_id, last_change_id
), moved AS (
  INSERT INTO webhook_cursors (subscription_id, group_id, last_change_id)
  SELECT subscription_id, group_id, max(last_change_id) FROM inserted GROUP BY 1, 2
  ON CONFLICT (subscription_id, group_id)
  DO UPDATE SET last_change_id = EXCLUDED.last_change_id
)
SELECT count(*) FROM inserted
"""
)

# Fan the unpublished group events out to the subscriptions that take them (type and group
# filters; created before the event) and mark them published, in one statement.
_PRODUCE_GROUP_EVENTS = text(
    f"""
WITH events AS (
  SELECT id, application_id, group_id, type, data, occurred_at FROM group_events
  WHERE published_at IS NULL ORDER BY id LIMIT :limit
), inserted AS (
  INSERT INTO webhook_deliveries (subscription_id, type, group_id, payload)
  SELECT s.id, e.type, e.group_id,
         json_build_object(
           'type', e.type, 'timestamp', {_TS.format("e.occurred_at")}, 'data', e.data
         )::text
  FROM events e
  JOIN webhook_subscriptions s
    ON s.application_id = e.application_id AND e.type = ANY(s.events)
   AND (s.group_ids IS NULL OR e.group_id = ANY(s.group_ids))
   AND s.created_at <= e.occurred_at
  ORDER BY e.id, s.id
  RETURNING 1
), published AS (
  UPDATE group_events SET published_at = now() WHERE id IN (SELECT id FROM events)
)
SELECT count(*) FROM inserted
"""
)


class ProducerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self) -> bool:
        """This transaction's producer lock; False if another producer holds it."""
        stmt = select(func.pg_try_advisory_xact_lock(func.hashtextextended(_PRODUCER_LOCK, 0)))
        return bool((await self.session.execute(stmt)).scalar_one())

    async def produce_changes(self, batch: int, limit: int) -> int:
        """Deliveries made from the change log (see _PRODUCE_CHANGES)."""
        params = {"type": MEMBERS_CHANGED, "batch": batch, "limit": limit}
        return int((await self.session.execute(_PRODUCE_CHANGES, params)).scalar_one())

    async def produce_group_events(self, limit: int) -> int:
        result = await self.session.execute(_PRODUCE_GROUP_EVENTS, {"limit": limit})
        return int(result.scalar_one())

    async def prune(self, finished_before: timedelta, published_before: timedelta) -> int:
        """Forget finished deliveries and published group events older than the bounds.
        Pending deliveries are kept whatever their age (they are the outbox)."""
        deliveries = await self.session.execute(
            delete(D).where(D.status != "pending", D.created_at < func.now() - finished_before)
        )
        await self.session.execute(
            delete(group_events).where(group_events.c.published_at < func.now() - published_before)
        )
        return int(deliveries.rowcount)  # type: ignore[attr-defined]


# The dispatcher -------------------------------------------------------------------------------

# The head of each (subscription, group) queue of an active subscription is its oldest pending
# delivery; only a head goes out, so a group's deliveries go out one at a time and in order, and a
# later one waits behind one that is failing. A head is claimable when it is due and not leased
# (an expired lease is a dead worker's); at most :per_sub attempts of a subscription are in flight.
# Claimed heads are leased for :lease seconds, fairly across subscriptions (rank, then age).
_CLAIM = text(
    """
WITH heads AS (
  SELECT DISTINCT ON (d.subscription_id, d.group_id)
         d.id, d.subscription_id, d.seq, d.next_attempt_at, d.leased_until
  FROM webhook_deliveries d
  JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.is_active
  WHERE d.status = 'pending'
  ORDER BY d.subscription_id, d.group_id, d.seq
), inflight AS (
  SELECT subscription_id, count(*) AS n FROM heads WHERE leased_until >= now() GROUP BY 1
), ready AS (
  SELECT h.id, h.subscription_id, h.seq,
         row_number() OVER (PARTITION BY h.subscription_id ORDER BY h.seq) AS rank
  FROM heads h
  WHERE h.next_attempt_at <= now() AND (h.leased_until IS NULL OR h.leased_until < now())
), chosen AS (
  SELECT r.id FROM ready r LEFT JOIN inflight i ON i.subscription_id = r.subscription_id
  WHERE r.rank <= :per_sub - COALESCE(i.n, 0)
  ORDER BY r.rank, r.seq LIMIT :limit
)
UPDATE webhook_deliveries d SET leased_until = now() + make_interval(secs => :lease)
FROM chosen c, webhook_subscriptions s
WHERE d.id = c.id AND s.id = d.subscription_id
RETURNING d.id, d.subscription_id, d.payload, s.url, s.secret,
          CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END AS previous_secret
"""
)

# After a failed attempt: due again after `delay` seconds, or `failed` once it has been failing
# for :give_up; the subscription failing for :give_up too is disabled.
_FAIL = text(
    """
WITH d AS (
  UPDATE webhook_deliveries SET
    attempts = attempts + 1,
    last_status_code = :status_code,
    last_error = :error,
    leased_until = NULL,
    failing_since = COALESCE(failing_since, now()),
    status = CASE WHEN now() - COALESCE(failing_since, now()) >= make_interval(secs => :give_up)
                  THEN 'failed' ELSE 'pending' END,
    next_attempt_at = CASE
      WHEN now() - COALESCE(failing_since, now()) >= make_interval(secs => :give_up) THEN NULL
      ELSE now() + make_interval(secs => :delay) END,
    finished_at = CASE
      WHEN now() - COALESCE(failing_since, now()) >= make_interval(secs => :give_up) THEN now()
      END
  WHERE id = :id AND status = 'pending'
  RETURNING subscription_id
)
UPDATE webhook_subscriptions s SET
  failing_since = COALESCE(s.failing_since, now()),
  is_active = s.is_active
    AND now() - COALESCE(s.failing_since, now()) < make_interval(secs => :give_up),
  disabled_reason = CASE
    WHEN s.is_active AND now() - COALESCE(s.failing_since, now()) >= make_interval(secs => :give_up)
    THEN :disabled_reason ELSE s.disabled_reason END
FROM d WHERE s.id = d.subscription_id
"""
)


@dataclass(frozen=True)
class DeliveryStats:
    """For /metrics: deliveries by status, and the age of the oldest pending one (its lag)."""

    by_status: dict[str, int]
    oldest_pending_age_seconds: float | None


class DispatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, limit: int, per_subscription: int, lease_seconds: float
    ) -> list[Row[Any]]:
        await self.session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(_CLAIM_LOCK, 0)))
        )
        params = {"limit": limit, "per_sub": per_subscription, "lease": lease_seconds}
        return list((await self.session.execute(_CLAIM, params)).all())

    async def succeeded(self, delivery_id: UUID, subscription_id: UUID, status_code: int) -> None:
        await self.session.execute(
            update(D)
            .where(D.id == delivery_id, D.status == "pending")
            .values(
                status="succeeded",
                attempts=D.attempts + 1,
                last_status_code=status_code,
                last_error=None,
                next_attempt_at=None,
                failing_since=None,
                leased_until=None,
                finished_at=func.now(),
            )
        )
        await self.session.execute(
            update(S)
            .where(S.id == subscription_id, S.failing_since.is_not(None))
            .values(failing_since=None)
        )

    async def failed(
        self,
        delivery_id: UUID,
        *,
        status_code: int | None,
        error: str,
        delay_seconds: float,
        give_up: timedelta,
        disabled_reason: str,
    ) -> None:
        params = {
            "id": delivery_id,
            "status_code": status_code,
            "error": error,
            "delay": delay_seconds,
            "give_up": give_up.total_seconds(),
            "disabled_reason": disabled_reason,
        }
        await self.session.execute(_FAIL, params)

    async def attempts(self, delivery_id: UUID) -> int:
        stmt = select(D.attempts).where(D.id == delivery_id)
        return int((await self.session.execute(stmt)).scalar_one_or_none() or 0)

    async def release(self, delivery_ids: Sequence[UUID]) -> None:
        """Drop the leases of attempts cut off by a shutdown: claimable again at once."""
        await self.session.execute(
            update(D)
            .where(and_(D.id == any_(uuid_array(delivery_ids)), D.status == "pending"))
            .values(leased_until=None)
        )


async def delivery_stats(session: AsyncSession) -> DeliveryStats:
    """Delivery counts by status (every status present, 0 when none) and the age in seconds of
    the oldest pending delivery of an active webhook (None when none is pending): the delivery
    lag. An inactive webhook's deliveries wait by design and would only hide the lag."""
    rows = await session.execute(select(D.status, func.count()).group_by(D.status))
    by_status = dict.fromkeys(DELIVERY_STATUSES, 0)
    by_status.update({str(status): int(n) for status, n in rows.all()})
    oldest = await session.execute(
        select(func.extract("epoch", func.now() - func.min(D.created_at)))
        .join(S, S.id == D.subscription_id)
        .where(D.status == "pending", S.is_active.is_(True))
    )
    age = oldest.scalar_one()
    return DeliveryStats(by_status, float(age) if age is not None else None)
