"""Base schemas: timestamps in the contract's format, strict inputs, the batch item error."""

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from profile_groups.kit.timestamps import format_timestamp

Timestamp = Annotated[
    datetime, PlainSerializer(format_timestamp, return_type=str, when_used="json-unless-none")
]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class InputSchema(BaseModel):
    """Request bodies: unknown fields are rejected so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


def refuse_nulls(model: BaseModel, fields: Sequence[str]) -> None:
    """For a model validator: an optional field that was sent must not be null."""
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"'{name}' cannot be null.")


class ItemError(Schema):
    """One refused item of a batch, by its index in the request; the other items are kept."""

    index: int = Field(description="Position of the item in the request's list (from 0).")
    detail: str = Field(description="Why the item was refused.")
