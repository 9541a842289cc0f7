"""Base schemas: timestamps in the contract's format, strict inputs, the batch item error."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    Strict,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from profile_groups.kit.timestamps import format_timestamp, parse_timestamp

# `format: date-time` in both directions (the serializer alone would document a bare string).
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str, when_used="json-unless-none"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _input_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        value = value.isoformat()
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(
            "Expected an ISO 8601 timestamp (e.g. 2025-04-28T12:16:49.670053Z) "
            "between years 1 and 9999 in UTC."
        )
    return parsed


# A timestamp in a request body: a JSON string read by kit.timestamps.parse_timestamp (the one
# reader), so a number, or a time that is out of range once in UTC, is a 400, never a 500.
InputTimestamp = Annotated[
    datetime,
    PlainValidator(_input_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# A UUID in a request body: JSON has no UUID type, so its string is read (strict mode would
# only take a UUID object).
InputUUID = Annotated[UUID, Strict(False)]


# An object of attribute values by key (custom attributes, a profile's attribute values): a
# datetime is an ISO 8601 string, null is "no value".
ATTRIBUTE_VALUES: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]
    },
}


@dataclass(frozen=True)
class DocumentedAs:
    """`Annotated[list[Any], DocumentedAs(list[Item])]`: a field read as raw JSON (checked later,
    item by item, so one bad item does not sink a batch) and documented as `Item`s in the
    OpenAPI document, the models becoming components as usual."""

    type_: Any

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(TypeAdapter(self.type_).core_schema)


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class InputSchema(BaseModel):
    """Request bodies: unknown fields are rejected so a typo never passes silently, and types are
    strict (docs/api.md): `"yes"` or `0` is not a boolean, `true` or `"5"` not an integer.
    Timestamps and UUIDs, which JSON spells as strings, are `InputTimestamp` and `InputUUID`."""

    model_config = ConfigDict(extra="forbid", strict=True)


def refuse_nulls(model: BaseModel, fields: Sequence[str]) -> None:
    """For a model validator: an optional field that was sent must not be null."""
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"'{name}' cannot be null.")


class ItemError(Schema):
    """One refused item of a batch, by its index in the request; the other items are kept."""

    index: int = Field(description="Position of the item in the request's list (from 0).")
    detail: str = Field(description="Why the item was refused.")
