"""Event batches in and their outcome out (docs/activity.md)."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from profile_groups.activity.event_types import EVENT_TYPES
from profile_groups.kit.schemas import DocumentedAs, InputSchema, ItemError

MAX_BATCH = 1000
_TYPE_NAMES: list[JsonValue] = [*sorted(EVENT_TYPES)]

_EXAMPLE_EVENTS = [
    {
        "id": "evt-0001",
        "type": "comment_posted",
        "custom_id": "user-42",
        "occurred_at": "2025-04-28T12:16:49.670053Z",
    },
    {
        "type": "tier_changed",
        "profile_id": "0f8e4a5e-3a4b-4c1d-9a0b-0e5f2d7c9a11",
        "value": "Gold",
        "properties": {"rank": 3, "direction": "upgrade"},
    },
    {"type": "reward_earned", "custom_id": "user-42", "value": 150},
]


class Event(BaseModel):
    """One activity event (docs/activity.md). Exactly one of `profile_id` and `custom_id`.

    Documents an item of `events`; items are checked one by one by the service (a bad one is
    rejected with its index and the reason), not against this model."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        max_length=255,
        description="Your id for the event (1-255 characters): an event whose id was already "
        "accepted is a duplicate and changes nothing, so a batch can be retried safely.",
    )
    type: str = Field(
        description="The event type.",
        json_schema_extra={"enum": _TYPE_NAMES},
        examples=["comment_posted"],
    )
    profile_id: UUID | None = Field(default=None, description="The profile's id.")
    custom_id: str | None = Field(default=None, description="The profile's custom id.")
    occurred_at: datetime | None = Field(
        default=None,
        description="When it happened (ISO 8601; no zone = UTC); default now. More than 5 "
        "minutes in the future is refused.",
    )
    value: float | str | None = Field(
        default=None,
        description="What the type measures, where it takes one: the streak length "
        "(`streak_activity`, integer >= 0), the tier name (`tier_changed`), the amount "
        "(`reward_*`, number >= 0).",
    )
    properties: dict[str, int | str] | None = Field(
        default=None,
        description="The type's properties, where it takes them: `streak_type` "
        "(consecutive|periodic) for streaks; `rank` and `direction` (upgrade|downgrade) for "
        "`tier_changed`; `leaderboard_id` for `leaderboard_ranked`. Kept as metadata otherwise.",
    )


class EventBatch(InputSchema):
    """`{"events": [...]}`. Items are checked one by one (a bad item is rejected with its index,
    the good ones are kept), so the envelope only bounds the batch."""

    events: Annotated[
        list[Any],
        DocumentedAs(list[Event]),
        Field(
            max_length=MAX_BATCH,
            description=f"Up to {MAX_BATCH} events.",
            examples=[_EXAMPLE_EVENTS],
        ),
    ]


class EventBatchResult(BaseModel):
    """The outcome of a batch."""

    accepted: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Events whose client `id` was already accepted.")
    rejected: list[ItemError] = Field(description="Refused items, by index in `events`.")
