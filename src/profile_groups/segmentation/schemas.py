"""Rule tree, evaluation and preview schemas (docs/segmentation.md). Examples are the contract's."""

from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import Field, TypeAdapter, WithJsonSchema

from profile_groups.attributes.registry import WINDOW_DAYS_MAX, WINDOW_DAYS_MIN, Condition
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


# The node model of a rule tree, for the OpenAPI document and generated clients. Requests do not
# validate against it: the service walks the raw JSON itself (rules.py) so that every problem is
# reported at once, at its full path inside the tree, with what is allowed. `RuleTree` is that raw
# JSON object, documented as this model.
LeafValue = Annotated[
    bool | float | str | list[float | str],
    Field(
        description="The condition's value, of the type the condition requires: a number, a "
        "string, true/false, an ISO 8601 datetime string, a list for `in`/`not_in`, "
        "`[low, high]` for `between`, a number of days for `within_last_x_days`."
    ),
]


_LEAF_VALUE: dict[str, Any] = TypeAdapter(LeafValue).json_schema()
# A profile's value of an attribute: a datetime is an ISO 8601 string, null is "no value".
_ATTRIBUTE_VALUE: dict[str, Any] = {
    "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]
}


class RuleLeaf(InputSchema):
    """A leaf: a condition on one attribute (GET /profile-group-attributes/ lists each
    attribute's data type, its allowed `conditions` and whether it supports `window_days`)."""

    attribute: str = Field(
        description="An attribute key of the catalogue (platform or custom), or an alias.",
        examples=["total_comments_posted"],
    )
    condition: Condition = Field(
        description="One of the attribute's `conditions`.", examples=["greater_than"]
    )
    value: LeafValue
    window_days: int | None = Field(
        default=None,
        ge=WINDOW_DAYS_MIN,
        le=WINDOW_DAYS_MAX,
        description=f"Rolling window in days ({WINDOW_DAYS_MIN}-{WINDOW_DAYS_MAX}), only for "
        "attributes with `supports_window`; without it the attribute counts all time.",
    )


class RuleGroup(InputSchema):
    """An inner node: its children combined with AND or OR. The product's canonical shape is an
    AND of OR buckets (rules inside a bucket are ORed, buckets are ANDed); any nesting up to
    the depth limit is accepted."""

    operator: Literal["AND", "OR"] = Field(
        description="How the children combine: `AND` (all hold) or `OR` (at least one holds)."
    )
    children: list[Union["RuleGroup", RuleLeaf]] = Field(
        min_length=1,
        max_length=MAX_CHILDREN,
        description=f"1-{MAX_CHILDREN} nodes: inner nodes or leaves.",
    )


RuleGroup.model_rebuild()

_COMPONENTS = "#/components/schemas/{model}"
_NODE = TypeAdapter(RuleGroup | RuleLeaf).json_schema(ref_template=_COMPONENTS)
# The components the document gains for the node model (kit/openapi.py adds them).
RULE_TREE_SCHEMAS: dict[str, Any] = _NODE.pop("$defs")
RULE_TREE_DESCRIPTION = (
    f"A rule tree: an inner node `{{operator: AND|OR, children: [1-{MAX_CHILDREN} nodes]}}` or a "
    f"leaf `{{attribute, condition, value, window_days?}}`; depth at most {MAX_DEPTH} levels "
    f"(leaves included), at most {MAX_LEAVES} leaves. An invalid tree is a 400 listing every "
    "problem, each with its `loc` inside the tree."
)

RuleTree = Annotated[dict[str, Any], WithJsonSchema(_NODE)]


class PreviewRequest(InputSchema):
    """A rule tree to size before saving it."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [{"rule_tree": RULE_TREE_EXAMPLE, "sample_size": 10}]}
    }

    rule_tree: RuleTree = Field(description=RULE_TREE_DESCRIPTION, examples=[RULE_TREE_EXAMPLE])
    sample_size: int = Field(
        default=10, ge=0, le=100, description="How many matching profiles to return (0-100)."
    )


class PreviewProfile(Schema):
    """A profile the previewed tree matches."""

    id: UUID = Field(description="The profile's id.")
    nickname: str | None = Field(description="The profile's nickname, if it has one.")
    custom_id: str | None = Field(description="The profile's custom id, if it has one.")


class Preview(Schema):
    """What a rule tree matches now; nothing is created."""

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

    count: int = Field(description="How many of the application's profiles the tree matches now.")
    sample: list[PreviewProfile] = Field(
        description="Up to `sample_size` of the matching profiles, newest profiles first."
    )
    as_of: Timestamp = Field(description="The moment the tree was evaluated at.")


# Explanations: a tree annotated for one profile -------------------------------------------------


class ExplainedLeaf(Schema):
    """A leaf as given, with the profile's value and the leaf's result."""

    attribute: str = Field(description="The attribute key, as given in the rule tree.")
    condition: str = Field(description="The condition, as given in the rule tree.")
    # Any JSON at runtime (echoed as given), documented as a leaf's value.
    value: Annotated[Any, WithJsonSchema(_LEAF_VALUE)] = Field(
        description="The condition's value, as given in the rule tree."
    )
    # Left out rather than null when absent, as in the rule tree (and kept in the schema, which a
    # model_serializer would hide from OpenAPI).
    window_days: int | None = Field(
        default=None,
        exclude_if=lambda days: days is None,
        description="The leaf's rolling window; left out when the leaf has none.",
    )
    actual: Annotated[Any, WithJsonSchema(_ATTRIBUTE_VALUE)] = Field(
        description=(
            "The profile's value as the condition reads it (over the leaf's window, if any); "
            "null when it has none (an empty string is no value)."
        )
    )
    result: bool = Field(description="Whether the leaf holds for the profile now.")


class ExplainedGroup(Schema):
    """An inner node with its result: AND holds when every child does, OR when any does."""

    operator: Literal["AND", "OR"] = Field(description="How the children combine.")
    result: bool = Field(description="Whether the node holds for the profile now.")
    children: list[Union["ExplainedGroup", ExplainedLeaf]] = Field(
        description="The node's children, each explained."
    )


ExplainedGroup.model_rebuild()
ExplainedNode = ExplainedGroup | ExplainedLeaf


class TreeExplanation(Schema):
    """A rule tree evaluated for one profile at `as_of` by the evaluation's own SQL."""

    as_of: Timestamp = Field(description="The moment the tree was evaluated at.")
    matches: bool = Field(description="Whether the whole tree holds for the profile.")
    tree: ExplainedNode = Field(description="The rule tree, every node with its result.")
