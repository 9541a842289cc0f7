"""Base schemas: timestamps in the contract's format, ids as lowercase strings."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer


def format_timestamp(value: datetime) -> str:
    """ISO 8601 UTC with microseconds and `Z`, e.g. 2025-04-28T12:16:49.670053Z (SPEC §1)."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    # isoformat() is several times faster than strftime on large pages; it drops zero microseconds.
    text = value.isoformat()[:-6]  # without "+00:00"
    return text + ("Z" if value.microsecond else ".000000Z")


def as_utc(value: datetime) -> datetime:
    """Input timestamps without a zone are UTC (SPEC §1)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = Annotated[
    datetime, PlainSerializer(format_timestamp, return_type=str, when_used="json-unless-none")
]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class InputSchema(BaseModel):
    """Request bodies: unknown fields are rejected so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


def example(value: Any) -> dict[str, Any]:
    return {"json_schema_extra": {"examples": [value]}}
