"""Webhook subscriptions, their secrets, test pings and the delivery log (docs/webhooks.md)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.config import Settings
from profile_groups.kit.errors import BadRequest, Conflict, found, invalid_field
from profile_groups.kit.pagination import Paged, PageRequest, paginate
from profile_groups.kit.timestamps import format_timestamp
from profile_groups.models import Application
from profile_groups.models.webhooks import (
    EVENT_TYPES,
    TEST_EVENT,
    WebhookDelivery,
    WebhookSubscription,
)
from profile_groups.webhooks.delivery import new_secret
from profile_groups.webhooks.repository import (
    MEMBERS_CHANGED,
    DeliveryRepository,
    SubscriptionRepository,
)
from profile_groups.webhooks.schemas import (
    Webhook,
    WebhookCreate,
    WebhookUpdate,
    WebhookWithSecret,
)
from profile_groups.webhooks.targets import TargetRefused, check_url

# After a rotation, deliveries are signed with the new and the previous secret for this long.
ROTATION_OVERLAP = timedelta(hours=24)


def _refuse_items(field: str, problems: dict[int, str], type_: str) -> None:
    """A 400 naming every refused item of the list `field` ({position: message}), if any."""
    errors: list[dict[str, Any]] = [
        {"loc": ["body", field, i], "msg": msg, "type": type_} for i, msg in problems.items()
    ]
    if errors:
        raise BadRequest(errors[0]["msg"], errors)


def _events(events: list[str]) -> list[str]:
    allowed = ", ".join(EVENT_TYPES)
    unknown = {
        i: f"Unknown event type {name!r}. Allowed: {allowed}."
        for i, name in enumerate(events)
        if name not in EVENT_TYPES
    }
    _refuse_items("events", unknown, "unknown_event_type")
    return list(dict.fromkeys(events))


async def _url(url: str, settings: Settings) -> str:
    try:
        await check_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
    except TargetRefused as exc:
        raise invalid_field(["body", "url"], str(exc), "target_refused") from None
    return url


async def _group_ids(
    repo: SubscriptionRepository, app: Application, group_ids: list[UUID] | None
) -> list[UUID] | None:
    if group_ids is None:
        return None
    wanted = list(dict.fromkeys(group_ids))
    known = await repo.groups_of(app.id, wanted) if wanted else set()
    unknown = {
        i: f"No profile group with id {gid} in this application."
        for i, gid in enumerate(group_ids)
        if gid not in known
    }
    _refuse_items("group_ids", unknown, "unknown_group")
    return wanted


async def create(
    session: AsyncSession, settings: Settings, app: Application, data: WebhookCreate
) -> WebhookWithSecret:
    repo = SubscriptionRepository(session)
    events = _events(data.events)
    url = await _url(data.url, settings)
    group_ids = await _group_ids(repo, app, data.group_ids)
    subscription = repo.add(
        WebhookSubscription(
            application_id=app.id,
            url=url,
            events=events,
            group_ids=group_ids,
            description=data.description,
            secret=new_secret(),
            start_change_id=await repo.last_change_id(),
        )
    )
    await repo.flush_and_refresh(subscription)
    return WebhookWithSecret.model_validate(subscription)


async def get(session: AsyncSession, app: Application, webhook_id: UUID) -> WebhookSubscription:
    return found(await SubscriptionRepository(session).get(app.id, webhook_id))


async def list_webhooks(
    session: AsyncSession, app: Application, page: PageRequest
) -> Paged[WebhookSubscription]:
    repo = SubscriptionRepository(session)
    return await paginate(
        session,
        page,
        repo.list_statement(app.id),
        [(WebhookSubscription.created_at, "created_at"), (WebhookSubscription.id, "id")],
        await repo.count(app.id),
        entity=True,
    )


async def update(
    session: AsyncSession,
    settings: Settings,
    app: Application,
    webhook_id: UUID,
    data: WebhookUpdate,
) -> WebhookSubscription:
    repo = SubscriptionRepository(session)
    subscription = found(await repo.get(app.id, webhook_id, for_update=True))
    fields = data.model_fields_set
    covered_before = MEMBERS_CHANGED in subscription.events
    groups_before = subscription.group_ids
    if "url" in fields and data.url is not None:
        subscription.url = await _url(data.url, settings)
    if "events" in fields and data.events is not None:
        subscription.events = _events(data.events)
    if "group_ids" in fields:
        subscription.group_ids = await _group_ids(repo, app, data.group_ids)
    if "description" in fields and data.description is not None:
        subscription.description = data.description
    if "is_active" in fields and data.is_active is not None:
        if data.is_active and not subscription.is_active:
            # A fresh start: its pending deliveries go out again, in order.
            subscription.disabled_reason = None
            subscription.failing_since = None
        subscription.is_active = data.is_active
    await repo.flush_and_refresh(subscription)
    await _start_new_groups(repo, subscription, covered_before, groups_before)
    await repo.touch(subscription)
    await repo.flush_and_refresh(subscription)
    return subscription


async def _start_new_groups(
    repo: SubscriptionRepository,
    subscription: WebhookSubscription,
    covered_before: bool,
    groups_before: list[UUID] | None,
) -> None:
    """Groups the PATCH newly covers receive their changes from now on, not a backlog."""
    if MEMBERS_CHANGED not in subscription.events:
        return
    now = subscription.group_ids
    if not covered_before:
        await repo.start_groups_now(subscription, now)
    elif groups_before is not None:
        if now is None:
            await repo.start_groups_now(subscription, None, except_ids=groups_before)
        else:
            added = [g for g in now if g not in set(groups_before)]
            if added:
                await repo.start_groups_now(subscription, added)


async def delete(session: AsyncSession, app: Application, webhook_id: UUID) -> None:
    repo = SubscriptionRepository(session)
    await repo.delete(found(await repo.get(app.id, webhook_id, for_update=True)))


async def rotate_secret(session: AsyncSession, app: Application, webhook_id: UUID) -> str:
    """A new secret signs every delivery from now on, retries of older ones included; for
    ROTATION_OVERLAP the previous one signs them too (a second `v1,` signature), so a receiver
    can switch secrets without rejecting anything."""
    repo = SubscriptionRepository(session)
    subscription = found(await repo.get(app.id, webhook_id, for_update=True))
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_until = datetime.now(UTC) + ROTATION_OVERLAP
    subscription.secret = new_secret()
    await repo.touch(subscription)
    await repo.flush_and_refresh(subscription)
    return subscription.secret


def _body(type_: str, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": type_, "timestamp": format_timestamp(datetime.now(UTC)), "data": data},
        separators=(",", ":"),
    )


async def send_test(session: AsyncSession, app: Application, webhook_id: UUID) -> WebhookDelivery:
    subscription = await get(session, app, webhook_id)
    if not subscription.is_active:
        raise Conflict("The webhook is not active; re-enable it (PATCH is_active: true) first.")
    repo = DeliveryRepository(session)
    test = repo.add(
        WebhookDelivery(
            subscription_id=subscription.id,
            type=TEST_EVENT,
            group_id=None,
            payload=_body(TEST_EVENT, {"webhook_id": str(subscription.id)}),
        )
    )
    await repo.flush_and_refresh(test)
    return test


async def list_deliveries(
    session: AsyncSession, app: Application, webhook_id: UUID, page: PageRequest
) -> Paged[WebhookDelivery]:
    subscription = await get(session, app, webhook_id)
    repo = DeliveryRepository(session)
    return await paginate(
        session,
        page,
        repo.list_statement(subscription.id),
        [(WebhookDelivery.seq, "seq")],
        await repo.count(subscription.id),
        entity=True,
    )


async def retry(
    session: AsyncSession, app: Application, webhook_id: UUID, delivery_id: UUID
) -> WebhookDelivery:
    subscription = await get(session, app, webhook_id)
    return found(await DeliveryRepository(session).retry(subscription.id, delivery_id))


def view(subscription: WebhookSubscription) -> Webhook:
    return Webhook.model_validate(subscription)
