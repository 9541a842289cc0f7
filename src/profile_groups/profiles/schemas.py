"""Profile schemas (docs/profiles.md)."""

from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import Field, StringConstraints, WithJsonSchema, model_validator

from profile_groups.kit.schemas import (
    ATTRIBUTE_VALUES,
    DocumentedAs,
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
# Values are checked against the application's definitions in the service (one query per request),
# so the field is read as any JSON object and documented as the map it must be.
CustomAttributes = Annotated[dict[str, Any], WithJsonSchema(ATTRIBUTE_VALUES)]
MAX_BULK = 1000
CUSTOM_ID = "Your own id for the profile (1-255 characters), unique in the application."
NICKNAME = "A display name (up to 255 characters)."
ATTRIBUTES = (
    "Values of the application's custom attributes (GET /custom-attributes/), by key, each of "
    "its defined type."
)

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

    id: InputUUID | None = Field(
        default=None, description="The profile's id when importing; assigned when left out."
    )
    custom_id: CustomId | None = Field(default=None, description=CUSTOM_ID)
    nickname: Nickname | None = Field(default=None, description=NICKNAME)
    custom_attributes: CustomAttributes | None = Field(default=None, description=ATTRIBUTES)
    created_at: InputTimestamp | None = Field(
        default=None, description="When the profile was created, when importing; default now."
    )

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

    custom_id: CustomId | None = Field(default=None, description=CUSTOM_ID + " `null` removes it.")
    nickname: Nickname | None = Field(default=None, description=NICKNAME)
    custom_attributes: CustomAttributes | None = Field(
        default=None, description=ATTRIBUTES + " Merged key by key; a key set to `null` is removed."
    )
    created_at: InputTimestamp | None = Field(
        default=None, description="When the profile was created."
    )

    @model_validator(mode="after")
    def _checks(self) -> Self:
        refuse_nulls(self, ("created_at", "custom_attributes"))
        return self


class BulkItem(InputSchema):
    """One item of a bulk upsert: found by `id`, else by `custom_id`; created when not found.
    On update only the fields sent change (`custom_attributes` merged as in PATCH)."""

    id: InputUUID | None = Field(
        default=None, description="The profile's id: the profile to update, or the new one's id."
    )
    custom_id: CustomId | None = Field(
        default=None, description=CUSTOM_ID + " Finds the profile when `id` is left out."
    )
    nickname: Nickname | None = Field(default=None, description=NICKNAME)
    custom_attributes: CustomAttributes | None = Field(
        default=None, description=ATTRIBUTES + " Merged key by key on update; `null` removes a key."
    )
    created_at: InputTimestamp | None = Field(
        default=None, description="When the profile was created (new profiles); default now."
    )

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.id is None and self.custom_id is None:
            raise ValueError("Each item needs an 'id' or a 'custom_id'.")
        refuse_nulls(self, ("created_at", "custom_attributes"))
        return self


class ProfileBulk(InputSchema):
    """Up to 1,000 profiles to create or update."""

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
    profiles: Annotated[
        list[Any],
        DocumentedAs(list[BulkItem]),
        Field(max_length=MAX_BULK, description="Up to 1,000 profiles."),
    ]


class BulkResult(Schema):
    """The outcome of a bulk upsert."""

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

    created: int = Field(description="Profiles created.")
    updated: int = Field(description="Profiles updated.")
    errors: list[ItemError] = Field(description="Items refused, by index; the others were written.")


class Profile(Schema):
    """A profile: a person groups are made of."""

    model_config = Schema.model_config | {"json_schema_extra": {"examples": [PROFILE_EXAMPLE]}}

    id: UUID = Field(description="The profile's id.")
    custom_id: str | None = Field(description=CUSTOM_ID)
    nickname: str | None = Field(description=NICKNAME)
    custom_attributes: CustomAttributes = Field(description=ATTRIBUTES)
    created_at: Timestamp = Field(description="When the profile was created.")
    updated_at: Timestamp = Field(description="When the profile last changed.")
