"""Every /webhooks/** endpoint (docs/webhooks.md). Handlers are thin: parse, call the service,
shape."""

from typing import Annotated
from uuid import UUID

from fastapi import Path, Response, status

from profile_groups.applications.auth import AppDep
from profile_groups.kit.errors import Conflict, NotFound, responses
from profile_groups.kit.pagination import Page, PageDep, render
from profile_groups.kit.routing import api_router
from profile_groups.kit.state import SessionDep, SettingsDep
from profile_groups.webhooks import service
from profile_groups.webhooks.schemas import (
    Delivery,
    Webhook,
    WebhookCreate,
    WebhookSecret,
    WebhookUpdate,
    WebhookWithSecret,
)

router = api_router("webhooks")

WebhookId = Annotated[UUID, Path(description="The webhook's id.")]
DeliveryId = Annotated[UUID, Path(description="The delivery's id (its webhook-id header).")]


@router.post(
    "/webhooks/",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookWithSecret,
    summary="Create a webhook",
)
async def create_webhook(
    data: WebhookCreate, app: AppDep, session: SessionDep, settings: SettingsDep
) -> WebhookWithSecret:
    """Subscribe `url` to `events`, for the groups in `group_ids` (null: every group). The
    answer carries the signing `secret`, shown only here. The URL must be http(s) and resolve to
    public addresses only."""
    return await service.create(session, settings, app, data)


@router.get("/webhooks/", response_model=Page[Webhook], summary="List webhooks")
async def list_webhooks(app: AppDep, session: SessionDep, page: PageDep) -> Response:
    """The application's webhooks, newest first."""
    return render(Webhook, await service.list_webhooks(session, app, page))


@router.get(
    "/webhooks/{webhook_id}/",
    response_model=Webhook,
    responses=responses(NotFound),
    summary="Get a webhook",
)
async def get_webhook(webhook_id: WebhookId, app: AppDep, session: SessionDep) -> Webhook:
    return service.view(await service.get(session, app, webhook_id))


@router.patch(
    "/webhooks/{webhook_id}/",
    response_model=Webhook,
    responses=responses(NotFound),
    summary="Update a webhook",
)
async def update_webhook(
    webhook_id: WebhookId,
    data: WebhookUpdate,
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Webhook:
    """Partial update of `url`, `events`, `group_ids`, `description`, `is_active`. Groups newly
    covered receive their changes from now on. `is_active: true` re-enables a disabled webhook:
    its pending deliveries go out, in order."""
    return service.view(await service.update(session, settings, app, webhook_id, data))


@router.delete(
    "/webhooks/{webhook_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(NotFound),
    summary="Delete a webhook",
)
async def delete_webhook(webhook_id: WebhookId, app: AppDep, session: SessionDep) -> Response:
    """Deletes the webhook with its delivery log; pending deliveries are dropped."""
    await service.delete(session, app, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret/",
    response_model=WebhookSecret,
    responses=responses(NotFound),
    summary="Rotate a webhook's secret",
)
async def rotate_webhook_secret(
    webhook_id: WebhookId, app: AppDep, session: SessionDep
) -> WebhookSecret:
    """A new signing secret, shown only here. For 24 hours deliveries carry a signature with the
    previous secret too, so receivers can switch without rejecting anything."""
    return WebhookSecret(secret=await service.rotate_secret(session, app, webhook_id))


@router.post(
    "/webhooks/{webhook_id}/test/",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Delivery,
    responses=responses(NotFound, Conflict),
    summary="Send a test event",
)
async def test_webhook(webhook_id: WebhookId, app: AppDep, session: SessionDep) -> Delivery:
    """Queue a `webhook.test` delivery (signed like any other); 409 while the webhook is
    inactive."""
    return Delivery.model_validate(await service.send_test(session, app, webhook_id))


@router.get(
    "/webhooks/{webhook_id}/deliveries/",
    response_model=Page[Delivery],
    responses=responses(NotFound),
    summary="List a webhook's deliveries",
)
async def list_webhook_deliveries(
    webhook_id: WebhookId, app: AppDep, session: SessionDep, page: PageDep
) -> Response:
    """The delivery log, newest first."""
    return render(Delivery, await service.list_deliveries(session, app, webhook_id, page))


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry/",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Delivery,
    responses=responses(NotFound),
    summary="Retry a delivery",
)
async def retry_webhook_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, app: AppDep, session: SessionDep
) -> Delivery:
    """Send a delivery again (any status), with the same `webhook-id` and body and a fresh day
    of retries. It keeps its place in its group's order."""
    return Delivery.model_validate(await service.retry(session, app, webhook_id, delivery_id))
