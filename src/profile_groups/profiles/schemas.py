"""Profile schemas (docs/profiles.md)."""

from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from profile_groups.kit.schemas import (
    InputSchema,
    InputTimestamp,
    InputUUID,
    ItemError,
    Schema,
    Timestamp,
    refuse_nulls,
)

CustomId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Nickname = Annotated[str, StringConstraints(max_length=255)]
# Values are checked against the application's definitions in the service (one query per request).
CustomAttributes = dict[str, Any]
MAX_BULK = 1000

PROFILE_EXAMPLE: dict[str, Any] = {
    "id": "174cc6dd-c1da-42d2-886e-c48b2bf803a8",
    "custom_id": "user-42",
    "nickname": "Final Horse",
    "custom_attributes": {"toxicity_score": 0.4, "favourite_team": "Reds"},
    "created_at": "2025-04-28T12:16:49.670053Z",
    "updated_at": "2025-04-28T12:16:49.670053Z",
}


class ProfileCreate(InputSchema):
    """A new profile. `id` and `created_at` may be supplied when importing."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "custom_id": "user-42",
                    "nickname": "Final Horse",
                    "custom_attributes": {"toxicity_score": 0.4},
                }
            ]
        }
    }

    id: InputUUID | None = None
    custom_id: CustomId | None = None
    nickname: Nickname | None = None
    custom_attributes: CustomAttributes | None = None
    created_at: InputTimestamp | None = None

    @model_validator(mode="after")
    def _checks(self) -> Self:
        refuse_nulls(self, ("created_at",))
        return self


class ProfileReplace(ProfileCreate):
    """The whole profile for PUT: fields left out are cleared (`created_at` is kept)."""

    # The same fields as a new profile: `id` is accepted so a client can PUT back the object it
    # read, and must name the profile in the path.
    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"custom_id": "user-42", "nickname": "Final Horse", "custom_attributes": {}}
            ]
        }
    }


class ProfileUpdate(InputSchema):
    """PATCH: only the fields sent change; `custom_attributes` is merged key by key, and a key
    set to `null` is removed."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [{"nickname": "Final Horse", "custom_attributes": {"toxicity_score": None}}]
        }
    }

    custom_id: CustomId | None = None
    nickname: Nickname | None = None
    custom_attributes: CustomAttributes | None = None
    created_at: InputTimestamp | None = None

    @model_validator(mode="after")
    def _checks(self) -> Self:
        refuse_nulls(self, ("created_at", "custom_attributes"))
        return self


class BulkItem(InputSchema):
    """One item of a bulk upsert: found by `id`, else by `custom_id`; created when not found.
    On update only the fields sent change (`custom_attributes` merged as in PATCH)."""

    id: InputUUID | None = None
    custom_id: CustomId | None = None
    nickname: Nickname | None = None
    custom_attributes: CustomAttributes | None = None
    created_at: InputTimestamp | None = None

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.id is None and self.custom_id is None:
            raise ValueError("Each item needs an 'id' or a 'custom_id'.")
        refuse_nulls(self, ("created_at", "custom_attributes"))
        return self


class ProfileBulk(InputSchema):
    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "profiles": [
                        {"custom_id": "user-42", "nickname": "Final Horse"},
                        {
                            "id": "174cc6dd-c1da-42d2-886e-c48b2bf803a8",
                            "custom_attributes": {"toxicity_score": 0.1},
                        },
                    ]
                }
            ]
        }
    }

    # Items are validated one by one in the service, so one bad item does not sink the batch.
    profiles: Annotated[list[Any], Field(max_length=MAX_BULK, description="Up to 1,000 profiles.")]


class BulkResult(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "created": 1,
                    "updated": 1,
                    "errors": [
                        {
                            "index": 2,
                            "detail": "custom_attributes.toxicity_score: "
                            "'toxicity_score' must be a number.",
                        }
                    ],
                }
            ]
        }
    }

    created: int
    updated: int
    errors: list[ItemError]


class Profile(Schema):
    model_config = Schema.model_config | {"json_schema_extra": {"examples": [PROFILE_EXAMPLE]}}

    id: UUID
    custom_id: str | None
    nickname: str | None
    custom_attributes: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
