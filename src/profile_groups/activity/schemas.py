"""Event batches in and their outcome out (docs/activity.md)."""

from typing import Annotated, Any

from pydantic import BaseModel, Field

from profile_groups.kit.schemas import InputSchema, ItemError

MAX_BATCH = 1000

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


class EventBatch(InputSchema):
    """`{"events": [...]}`. Items are checked one by one (a bad item is rejected with its index,
    the good ones are kept), so the envelope only bounds the batch."""

    events: Annotated[
        list[Any],
        Field(
            max_length=MAX_BATCH,
            description=f"Up to {MAX_BATCH} events (docs/activity.md).",
            examples=[_EXAMPLE_EVENTS],
        ),
    ]


class EventBatchResult(BaseModel):
    accepted: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Events whose client `id` was already accepted.")
    rejected: list[ItemError] = Field(description="Refused items, by index in `events`.")
