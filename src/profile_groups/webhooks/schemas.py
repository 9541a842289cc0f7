"""Webhook subscription and delivery schemas (docs/webhooks.md)."""

from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from profile_groups.kit.schemas import InputSchema, InputUUID, Schema, Timestamp, refuse_nulls
from profile_groups.models.webhooks import EVENT_TYPES

MAX_GROUP_IDS = 1000
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Description = Annotated[str, StringConstraints(max_length=2000)]
# Checked by the service against EVENT_TYPES, so an unknown type is answered with the allowed list.
EventName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Events = Annotated[list[EventName], Field(min_length=1, max_length=len(EVENT_TYPES) * 4)]
GroupIds = Annotated[list[InputUUID], Field(max_length=MAX_GROUP_IDS)]

EXAMPLE: dict[str, Any] = {
    "id": "5f0c7a52-3a4f-4a8e-9d0e-6f2b1c3d4e5f",
    "url": "https://example.com/hooks/profile-groups",
    "events": ["group.members_changed"],
    "group_ids": ["13a1fd98-24ca-4935-8791-5556586c0005"],
    "description": "VIP welcome flow",
    "is_active": True,
    "disabled_reason": None,
    "created_at": "2025-04-28T12:16:49.670053Z",
    "updated_at": "2025-04-28T12:16:49.670053Z",
}
SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL_DOC = "The http(s) URL deliveries are POSTed to; it must resolve to public addresses."
EVENTS_DOC = (
    "The event types it receives: group.members_changed, group.evaluation_failed, group.deleted."
)
GROUP_IDS_DOC = "Only these groups' events; null for every group of the application."
DESCRIPTION_DOC = "Up to 2000 characters, for people."
IS_ACTIVE_DOC = (
    "Whether deliveries go out; false also when the service disabled it (see disabled_reason)."
)


class WebhookCreate(InputSchema):
    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "url": EXAMPLE["url"],
                    "events": EXAMPLE["events"],
                    "group_ids": EXAMPLE["group_ids"],
                    "description": EXAMPLE["description"],
                }
            ]
        }
    }

    url: Url = Field(description=URL_DOC)
    events: Events = Field(description=EVENTS_DOC)
    group_ids: GroupIds | None = Field(default=None, description=GROUP_IDS_DOC)
    description: Description = Field(default="", description=DESCRIPTION_DOC)


class WebhookUpdate(InputSchema):
    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [{"is_active": True}, {"group_ids": None}]}
    }

    url: Url | None = Field(default=None, description=URL_DOC)
    events: Events | None = Field(default=None, description=EVENTS_DOC)
    group_ids: GroupIds | None = Field(default=None, description=GROUP_IDS_DOC)
    description: Description | None = Field(default=None, description=DESCRIPTION_DOC)
    is_active: bool | None = Field(default=None, description=IS_ACTIVE_DOC)

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        # group_ids may be null (every group); the others may not.
        refuse_nulls(self, ("url", "events", "description", "is_active"))
        return self


class Webhook(Schema):
    model_config = Schema.model_config | {"json_schema_extra": {"examples": [EXAMPLE]}}

    id: UUID = Field(description="The webhook's id.")
    url: str = Field(description=URL_DOC)
    events: list[str] = Field(description=EVENTS_DOC)
    group_ids: list[UUID] | None = Field(description=GROUP_IDS_DOC)
    description: str = Field(description=DESCRIPTION_DOC)
    is_active: bool = Field(description=IS_ACTIVE_DOC)
    disabled_reason: str | None = Field(
        description="Why the service disabled it (a day of failed deliveries); null otherwise."
    )
    created_at: Timestamp = Field(description="When the webhook was created.")
    updated_at: Timestamp = Field(description="When it last changed.")


class WebhookWithSecret(Webhook):
    """The subscription as created: the only time its signing secret is shown."""

    model_config = Schema.model_config | {
        "json_schema_extra": {"examples": [EXAMPLE | {"secret": SECRET_EXAMPLE}]}
    }

    secret: str = Field(description="Signing secret in the Standard Webhooks format (whsec_...).")


class WebhookSecret(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {"examples": [{"secret": SECRET_EXAMPLE}]}
    }

    secret: str = Field(description="The new signing secret (whsec_...), shown only here.")


class Delivery(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "0b9e8c53-4f1d-4a0e-8a53-2d7b8b2c6e10",
                    "type": "group.members_changed",
                    "status": "pending",
                    "attempts": 2,
                    "last_status_code": 503,
                    "last_error": "The receiver answered 503.",
                    "next_attempt_at": "2025-04-28T12:17:04.670053Z",
                    "created_at": "2025-04-28T12:16:49.670053Z",
                }
            ]
        }
    }

    id: UUID = Field(description="Also the `webhook-id` header of every attempt.")
    type: str = Field(description="The event type: group.members_changed, … or webhook.test.")
    status: Literal["pending", "succeeded", "failed"] = Field(
        description="pending until a 2xx answer (succeeded) or a day of failures (failed)."
    )
    attempts: int = Field(description="Attempts made so far.")
    last_status_code: int | None = Field(
        description="The HTTP status of the last attempt; null if none answered."
    )
    last_error: str | None = Field(
        description="Why the last attempt failed (the start of the answer, a timeout, …)."
    )
    next_attempt_at: Timestamp | None = Field(
        description="When it is attempted next; null once finished."
    )
    created_at: Timestamp = Field(description="When the event was produced.")
