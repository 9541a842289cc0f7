"""Custom attribute definitions, the catalogue entry and a profile's values (docs/activity.md,
docs/profiles.md)."""

from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, StringConstraints, model_validator

from profile_groups.attributes.registry import AttributeDef, Category, Condition, DataType, Source
from profile_groups.kit.schemas import InputSchema, Schema, Timestamp, refuse_nulls


class Attribute(BaseModel):
    key: str = Field(examples=["total_comments_posted"])
    label: str = Field(examples=["Total comments posted"])
    description: str
    category: Category
    data_type: DataType
    source: Source
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
    as_of: Timestamp = Field(description="The evaluation time the values are computed for.")
    values: dict[str, Any] = Field(
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

    key: AttributeKey = Field(description="`^[a-z][a-z0-9_]{0,62}$`, not a platform attribute key.")
    data_type: DataType
    description: Description = ""


class CustomAttributeUpdate(InputSchema):
    """Only the description can change."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [{"description": "Moderation score (0-1)."}]}
    }

    description: Description | None = None
    # Accepted only to answer with a clear 400: key and type are fixed once defined.
    key: Any = Field(default=None, exclude=True)
    data_type: Any = Field(default=None, exclude=True)

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

    key: str
    data_type: DataType
    description: str
    created_at: Timestamp
    updated_at: Timestamp
