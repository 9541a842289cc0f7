"""Rule tree, evaluation and preview schemas (docs/segmentation.md). Examples are the contract's."""

from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import Field, SkipValidation

from profile_groups.attributes.registry import WINDOW_DAYS_MAX, WINDOW_DAYS_MIN
from profile_groups.kit.schemas import InputSchema, Schema, Timestamp
from profile_groups.segmentation.rules import MAX_CHILDREN, MAX_DEPTH, MAX_LEAVES

RULE_TREE_EXAMPLE: dict[str, Any] = {
    "operator": "AND",
    "children": [
        {
            "operator": "OR",
            "children": [
                {"attribute": "total_comments_posted", "condition": "greater_than", "value": 32},
                {"attribute": "has_ever_commented", "condition": "is", "value": True},
            ],
        },
        {
            "operator": "OR",
            "children": [
                {
                    "attribute": "total_comments_posted",
                    "condition": "greater_than",
                    "value": 10,
                    "window_days": 7,
                }
            ],
        },
    ],
}


class RuleLeaf(InputSchema):
    """A condition on one attribute (see GET /profile-group-attributes/ for what each allows)."""

    attribute: str = Field(description="An attribute key of the catalogue (platform or custom).")
    condition: str = Field(description="One of the attribute's `conditions`.")
    value: Any = Field(description="The condition's value, of the type the condition requires.")
    window_days: int | None = Field(
        default=None,
        ge=WINDOW_DAYS_MIN,
        le=WINDOW_DAYS_MAX,
        description="Rolling window in days, for attributes with `supports_window`.",
    )


class RuleGroup(InputSchema):
    """An inner node: its children combined with AND or OR."""

    operator: Literal["AND", "OR"]
    children: Annotated[
        list[Union["RuleGroup", RuleLeaf]], Field(min_length=1, max_length=MAX_CHILDREN)
    ]


RuleGroup.model_rebuild()

# The tree models give OpenAPI the shape; validation is skipped here because the service
# validates the raw JSON itself, reporting every problem with its path (rules.py).
RuleTree = Annotated[
    SkipValidation[RuleGroup | RuleLeaf],
    Field(
        description=(
            f"A rule tree: inner nodes `{{operator: AND|OR, children: [1-{MAX_CHILDREN} nodes]}}`, "
            f"leaves `{{attribute, condition, value, window_days?}}`; depth at most {MAX_DEPTH} "
            f"levels (leaves included), at most {MAX_LEAVES} leaves. Invalid trees are answered "
            "with a 400 whose `errors[].loc` points inside the tree."
        ),
        json_schema_extra={"examples": [RULE_TREE_EXAMPLE]},
    ),
]


class PreviewRequest(InputSchema):
    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [{"rule_tree": RULE_TREE_EXAMPLE, "sample_size": 10}]}
    }

    rule_tree: RuleTree
    sample_size: int = Field(default=10, ge=0, le=100, description="Profiles to return (0-100).")


class PreviewProfile(Schema):
    id: UUID
    nickname: str | None
    custom_id: str | None


class Preview(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "count": 200,
                    "sample": [
                        {
                            "id": "174cc6dd-c1da-42d2-886e-c48b2bf803a8",
                            "nickname": "Final Horse",
                            "custom_id": None,
                        }
                    ],
                    "as_of": "2025-04-28T12:20:00.000000Z",
                }
            ]
        }
    }

    count: int
    sample: list[PreviewProfile]
    as_of: Timestamp


# Explanations: a tree annotated for one profile -------------------------------------------------


class ExplainedLeaf(Schema):
    """A leaf as given, with the profile's value and the leaf's result."""

    attribute: str = Field(description="The attribute key, as given in the rule tree.")
    condition: str
    value: Any = Field(description="The condition's value, as given in the rule tree.")
    # Left out rather than null when absent, as in the rule tree (and kept in the schema, which a
    # model_serializer would hide from OpenAPI).
    window_days: int | None = Field(
        default=None,
        exclude_if=lambda days: days is None,
        description="The leaf's rolling window; left out when the leaf has none.",
    )
    actual: Any = Field(
        description=(
            "The profile's value as the condition reads it (over the leaf's window, if any); "
            "null when it has none (an empty string is no value)."
        )
    )
    result: bool = Field(description="Whether the leaf holds for the profile now.")


class ExplainedGroup(Schema):
    """An inner node with its result: AND holds when every child does, OR when any does."""

    operator: Literal["AND", "OR"]
    result: bool
    children: list[Union["ExplainedGroup", ExplainedLeaf]]


ExplainedGroup.model_rebuild()
ExplainedNode = ExplainedGroup | ExplainedLeaf


class TreeExplanation(Schema):
    """A rule tree evaluated for one profile at `as_of` by the evaluation's own SQL."""

    as_of: Timestamp
    matches: bool
    tree: ExplainedNode
