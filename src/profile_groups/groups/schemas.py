"""Group, member, membership and evaluation schemas (docs/groups.md, docs/segmentation.md).
Examples are the product page's."""

from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from profile_groups.kit.schemas import InputSchema, Schema, Timestamp, refuse_nulls

Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Description = Annotated[str, StringConstraints(max_length=2000)]
CustomId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
MembershipType = Literal["static", "dynamic"]
MAX_IDS = 10_000
MAX_ATTRIBUTES = 50

GROUP_EXAMPLE: dict[str, Any] = {
    "id": "13a1fd98-24ca-4935-8791-5556586c0005",
    "name": "Group1",
    "is_active": True,
    "description": "Sample Profile Group",
    "profile_count": 0,
    "custom_id": None,
    "created_at": "2025-04-28T12:16:49.670053Z",
    "updated_at": "2025-04-28T12:16:49.670053Z",
    "membership_type": "static",
    "attributes": [{"key": "key1", "value": "val1"}],
}


class GroupAttribute(Schema):
    key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    value: Annotated[str, StringConstraints(max_length=200)]


def _unique_keys(attributes: list[GroupAttribute] | None) -> list[GroupAttribute] | None:
    if attributes is not None:
        seen: set[str] = set()
        for attr in attributes:
            if attr.key in seen:
                raise ValueError(f"Attribute keys must be unique within a group: {attr.key!r}.")
            seen.add(attr.key)
    return attributes


Attributes = Annotated[list[GroupAttribute], Field(max_length=MAX_ATTRIBUTES)]


class ProfileGroupCreate(InputSchema):
    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Group1",
                    "is_active": True,
                    "description": "Sample Profile Group",
                    "attributes": [{"key": "key1", "value": "val1"}],
                },
                {
                    "name": "Group1",
                    "description": "Sample Profile Group",
                    "attributes": [{"key": "key1", "value": "val1"}],
                    "membership_type": "dynamic",
                    "rule_tree": {
                        "operator": "OR",
                        "children": [
                            {
                                "attribute": "total_comments_posted",
                                "condition": "greater_than_or_equal",
                                "value": 20,
                            }
                        ],
                    },
                },
            ]
        }
    }

    name: Name
    description: Description = ""
    is_active: bool = True
    custom_id: CustomId | None = None
    attributes: Attributes = Field(default_factory=list)
    membership_type: MembershipType = "static"
    rule_tree: dict[str, Any] | None = None

    _check_keys = field_validator("attributes")(_unique_keys)

    @model_validator(mode="after")
    def _rule_tree_matches_type(self) -> Self:
        if self.membership_type == "dynamic" and self.rule_tree is None:
            raise ValueError("A dynamic group requires a 'rule_tree'.")
        if self.membership_type == "static" and self.rule_tree is not None:
            raise ValueError("A static group must not have a 'rule_tree'.")
        return self


class ProfileGroupUpdate(InputSchema):
    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [{"name": "Group - edited", "is_active": True}]}
    }

    name: Name | None = None
    description: Description | None = None
    is_active: bool | None = None
    custom_id: CustomId | None = None
    attributes: Attributes | None = None
    rule_tree: dict[str, Any] | None = None
    # Accepted only to answer with a clear 400: membership type cannot change.
    membership_type: MembershipType | None = Field(default=None, exclude=True)

    _check_keys = field_validator("attributes")(_unique_keys)

    @model_validator(mode="after")
    def _no_type_change(self) -> Self:
        if "membership_type" in self.model_fields_set:
            raise ValueError("'membership_type' cannot be changed after a group is created.")
        refuse_nulls(self, ("name", "is_active", "description", "attributes"))
        return self


class Ruleset(Schema):
    id: UUID
    rule_tree: dict[str, Any]
    created_at: Timestamp


class EvaluationState(Schema):
    status: Literal["pending", "running", "succeeded", "failed"]
    last_evaluated_at: Timestamp | None
    next_evaluation_at: Timestamp | None
    error: str | None


class Evaluation(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "0b5c3a8e-7d0e-4a53-9a34-3b0f5b0a3c11",
                    "ruleset_id": "59019dcd-32c9-48d6-acdd-a304a974f886",
                    "trigger": "schedule",
                    "status": "succeeded",
                    "as_of": "2025-04-28T12:20:00.000000Z",
                    "started_at": "2025-04-28T12:20:00.000000Z",
                    "finished_at": "2025-04-28T12:20:01.250000Z",
                    "duration_ms": 1250,
                    "matched_count": 200,
                    "added_count": 12,
                    "removed_count": 3,
                    "error": None,
                }
            ]
        }
    }

    id: UUID
    ruleset_id: UUID
    trigger: Literal["schedule", "rule_change", "manual"]
    status: Literal["queued", "running", "succeeded", "failed"]
    as_of: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_ms: int | None
    matched_count: int | None
    added_count: int | None
    removed_count: int | None
    error: str | None


class ProfileGroup(Schema):
    model_config = Schema.model_config | {"json_schema_extra": {"examples": [GROUP_EXAMPLE]}}

    id: UUID
    name: str
    description: str
    is_active: bool
    custom_id: str | None
    attributes: list[GroupAttribute]
    membership_type: MembershipType
    profile_count: int
    created_at: Timestamp
    updated_at: Timestamp
    ruleset: Ruleset | None = None
    evaluation: EvaluationState | None = None

    @model_serializer(mode="wrap")
    def _static_has_no_rules(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.membership_type == "static":
            data.pop("ruleset", None)
            data.pop("evaluation", None)
        return data


class MembersChange(InputSchema):
    """Exactly one id list. `application_profile_ids` is a synonym of `profile_ids`."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [{"profile_ids": ["174cc6dd-c1da-42d2-886e-c48b2bf803a8"]}]
        }
    }

    profile_ids: Annotated[list[str], Field(max_length=MAX_IDS)] | None = None
    custom_ids: Annotated[list[str], Field(max_length=MAX_IDS)] | None = None
    application_profile_ids: Annotated[list[str], Field(max_length=MAX_IDS)] | None = Field(
        default=None, description="Synonym of `profile_ids` (accepted on DELETE)."
    )


class MembersAdded(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "successfully_added": ["174cc6dd-c1da-42d2-886e-c48b2bf803a8"],
                    "already_added": [],
                    "invalid_ids": [],
                }
            ]
        }
    }

    successfully_added: list[str]
    already_added: list[str]
    invalid_ids: list[str]


class Member(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "174cc6dd-c1da-42d2-886e-c48b2bf803a8",
                    "nickname": "Final Horse",
                    "custom_id": None,
                    "membership_created_at": "2025-04-28T12:26:43.767378Z",
                }
            ]
        }
    }

    id: UUID
    nickname: str | None
    custom_id: str | None
    membership_created_at: Timestamp


class ProfileGroupMembership(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "group_id": "13a1fd98-24ca-4935-8791-5556586c0005",
                    "group_name": "Group - edited",
                    "profile_count": 1,
                    "is_active": True,
                    "created_at": "2025-04-28T12:16:49.670053Z",
                    "custom_id": None,
                    "membership_type": "static",
                    "membership_created_at": "2025-04-28T12:26:43.767378Z",
                }
            ]
        }
    }

    group_id: UUID
    group_name: str
    profile_count: int
    is_active: bool
    created_at: Timestamp
    custom_id: str | None
    membership_type: MembershipType
    membership_created_at: Timestamp


# The change log (docs/changes.md) ------------------------------------------------------------

ChangeKind = Literal["entered", "exited"]
ChangeReason = Literal["manual", "evaluation", "activity", "profile_deleted"]
# A change id is the decimal text of the log's sequence number: opaque to clients (compare
# nothing but equality; pass it back as `after`), ordered by commit within a group.
ChangeId = Annotated[str, BeforeValidator(str)]


class Change(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "1043",
                    "group_id": "13a1fd98-24ca-4935-8791-5556586c0005",
                    "profile_id": "174cc6dd-c1da-42d2-886e-c48b2bf803a8",
                    "custom_id": "user-42",
                    "change": "entered",
                    "reason": "evaluation",
                    "evaluation_id": "0b6f9d8e-4c41-4f7e-9a43-3a3c1c8f5d21",
                    "occurred_at": "2025-04-28T12:16:49.670053Z",
                }
            ]
        }
    }

    id: ChangeId = Field(description="Opaque; increases with commit order within a group.")
    group_id: UUID
    profile_id: UUID
    custom_id: str | None = Field(description="The profile's custom_id when the change happened.")
    change: ChangeKind
    reason: ChangeReason
    evaluation_id: UUID | None = Field(description="The full evaluation that made the change.")
    occurred_at: Timestamp


class SizePoint(Schema):
    at: Timestamp = Field(description="Start of the interval (UTC).")
    profile_count: int = Field(description="Members at the end of the interval (or now).")
    entered: int
    exited: int


class SizeHistory(Schema):
    results: list[SizePoint]
