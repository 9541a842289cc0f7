"""The catalogue entry (SPEC §5.5) and a profile's values (SPEC §5.6)."""

from typing import Any

from pydantic import BaseModel, Field

from profile_groups.attributes.registry import AttributeDef, Category, Condition, DataType, Source
from profile_groups.kit.schemas import Timestamp


class Attribute(BaseModel):
    key: str = Field(examples=["total_comments_posted"])
    label: str = Field(examples=["Total comments posted"])
    description: str
    category: Category
    data_type: DataType
    source: Source
    conditions: list[Condition] = Field(description="Conditions a rule leaf may use (SPEC §5.4).")
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
