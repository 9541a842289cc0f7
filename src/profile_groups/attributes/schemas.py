"""Custom attribute definitions, the catalogue entry and a profile's values (docs/activity.md,
docs/profiles.md)."""

from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, StringConstraints, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema

from profile_groups.attributes.registry import AttributeDef, Category, Condition, DataType, Source
from profile_groups.kit.schemas import (
    ATTRIBUTE_VALUES,
    InputSchema,
    Schema,
    Timestamp,
    refuse_nulls,
)


class Attribute(BaseModel):
    """An attribute rules can use: a platform attribute or one of the application's custom
    attributes."""

    key: str = Field(
        description="The key a rule leaf names in `attribute`.", examples=["total_comments_posted"]
    )
    label: str = Field(description="A name for people.", examples=["Total comments posted"])
    description: str = Field(description="What the attribute measures.")
    category: Category = Field(description="The feature the attribute belongs to.")
    data_type: DataType = Field(description="The type of its values, and so of a leaf's `value`.")
    source: Source = Field(
        description="`platform` (derived from events and profiles) or `custom` (yours)."
    )
    conditions: list[Condition] = Field(description="Conditions a rule leaf may use.")
    supports_window: bool = Field(description="Whether a rule leaf may set `window_days` (1-365).")

    @classmethod
    def of(cls, defn: AttributeDef) -> "Attribute":
        return cls(
            key=defn.key,
            label=defn.label,
            description=defn.description,
            category=defn.category,
            data_type=defn.data_type,
            source=defn.source,
            conditions=list(defn.conditions),
            supports_window=defn.supports_window,
        )


class ProfileAttributeValues(BaseModel):
    """The value of every catalogue attribute for one profile, as a rule would see it now."""

    as_of: Timestamp = Field(description="The evaluation time the values are computed for.")
    values: Annotated[dict[str, Any], WithJsonSchema(ATTRIBUTE_VALUES)] = Field(
        description="Every catalogue attribute's value; null when it has no value.",
        examples=[
            {
                "total_comments_posted": 3,
                "last_comment_at": "2025-04-28T12:16:49.670053Z",
                "status_tier": "Gold",
                "toxicity_score": 0.4,
            }
        ],
    )


AttributeKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Description = Annotated[str, StringConstraints(max_length=2000)]


class CustomAttributeCreate(InputSchema):
    """A new custom attribute."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "key": "toxicity_score",
                    "data_type": "number",
                    "description": "Moderation score from 0 (fine) to 1 (toxic).",
                }
            ]
        }
    }

    key: AttributeKey = Field(
        description="`^[a-z][a-z0-9_]{0,62}$`, not a platform attribute key; fixed once defined."
    )
    data_type: DataType = Field(description="The type of the values; fixed once defined.")
    description: Description = Field(
        default="", description="What the attribute means (up to 2000 characters)."
    )


class CustomAttributeUpdate(InputSchema):
    """Only the description can change."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [{"description": "Moderation score (0-1)."}]}
    }

    description: Description | None = Field(
        default=None, description="What the attribute means (up to 2000 characters)."
    )
    # Accepted only to answer with a clear 400: key and type are fixed once defined. Not in the
    # document, where sending them is already invalid (no additional properties).
    key: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    data_type: SkipJsonSchema[Any] = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _fixed_fields(self) -> Self:
        for field in ("key", "data_type"):
            if field in self.model_fields_set:
                raise ValueError(
                    f"'{field}' cannot be changed; delete the attribute and define it again."
                )
        refuse_nulls(self, ("description",))
        return self


class CustomAttribute(Schema):
    """A metric of yours that profiles carry in `custom_attributes` and rules can use."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "key": "toxicity_score",
                    "data_type": "number",
                    "description": "Moderation score from 0 (fine) to 1 (toxic).",
                    "created_at": "2025-04-28T12:16:49.670053Z",
                    "updated_at": "2025-04-28T12:16:49.670053Z",
                }
            ]
        }
    }

    key: str = Field(description="The attribute's key, in profiles' `custom_attributes`.")
    data_type: DataType = Field(description="The type of the values.")
    description: str = Field(description="What the attribute means.")
    created_at: Timestamp = Field(description="When it was defined.")
    updated_at: Timestamp = Field(description="When its description last changed.")
