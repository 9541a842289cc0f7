"""Group, member, membership and evaluation schemas (docs/groups.md, docs/segmentation.md).
Examples are the product page's."""

from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from profile_groups.kit.schemas import InputSchema, Schema, Timestamp, refuse_nulls
from profile_groups.segmentation.schemas import RULE_TREE_DESCRIPTION, ExplainedNode, RuleTree

Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Description = Annotated[str, StringConstraints(max_length=2000)]
CustomId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
MembershipType = Literal["static", "dynamic"]
MAX_IDS = 10_000
MAX_ATTRIBUTES = 50

# The product page's examples: a static group as created, and a dynamic one.
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
DYNAMIC_RULE_TREE: dict[str, Any] = {
    "operator": "OR",
    "children": [
        {"attribute": "total_comments_posted", "condition": "greater_than_or_equal", "value": 20}
    ],
}
DYNAMIC_GROUP_EXAMPLE: dict[str, Any] = {
    **GROUP_EXAMPLE,
    "membership_type": "dynamic",
    "profile_count": 200,
    "ruleset": {
        "id": "59019dcd-32c9-48d6-acdd-a304a974f886",
        "rule_tree": DYNAMIC_RULE_TREE,
        "created_at": "2025-04-28T12:16:49.670053Z",
    },
    "evaluation": {
        "status": "succeeded",
        "last_evaluated_at": "2025-04-28T12:16:51.020318Z",
        "next_evaluation_at": "2025-04-28T12:21:51.020318Z",
        "error": None,
    },
}
STATIC_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "Group1",
    "is_active": True,
    "description": "Sample Profile Group",
    "attributes": [{"key": "key1", "value": "val1"}],
}
DYNAMIC_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "Group1",
    "description": "Sample Profile Group",
    "attributes": [{"key": "key1", "value": "val1"}],
    "membership_type": "dynamic",
    "rule_tree": DYNAMIC_RULE_TREE,
}


class GroupAttribute(Schema):
    """A key-value pair to organise and look up groups (`attribute=key:value` on the list)."""

    # Also a request body part: a misspelt key is an error (with a did-you-mean), not ignored.
    model_config = Schema.model_config | {"extra": "forbid"}

    key: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="1-200 characters, unique within the group.", examples=["key1"]
    )
    value: Annotated[str, StringConstraints(max_length=200)] = Field(
        description="Up to 200 characters.", examples=["val1"]
    )


def _unique_keys(attributes: list[GroupAttribute] | None) -> list[GroupAttribute] | None:
    if attributes is not None:
        seen: set[str] = set()
        for attr in attributes:
            if attr.key in seen:
                raise ValueError(f"Attribute keys must be unique within a group: {attr.key!r}.")
            seen.add(attr.key)
    return attributes


Attributes = Annotated[list[GroupAttribute], Field(max_length=MAX_ATTRIBUTES)]
NAME = "The group's name (1-255 characters), a label for people and integrations."
DESCRIPTION = "Free text, up to 2000 characters."
IS_ACTIVE = (
    "An inactive group is unavailable through the API (404 everywhere, left out of every list) "
    "until `profile-groups groups activate`; its memberships are kept."
)
CUSTOM_ID = "Your own id for the group (1-255 characters), unique in the application."
ATTRIBUTES = f"Up to {MAX_ATTRIBUTES} key-value pairs, keys unique within the group."
MEMBERSHIP_TYPE = (
    "`static`: members are added and removed through the API; `dynamic`: membership follows "
    "`rule_tree`. Fixed once the group is created."
)


class ProfileGroupCreate(InputSchema):
    """A new group: static by default; `dynamic` requires `rule_tree`, `static` must not
    have one."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [STATIC_CREATE_EXAMPLE, DYNAMIC_CREATE_EXAMPLE]}
    }

    name: Name = Field(description=NAME)
    description: Description = Field(default="", description=DESCRIPTION)
    is_active: bool = Field(default=True, description=IS_ACTIVE)
    custom_id: CustomId | None = Field(default=None, description=CUSTOM_ID)
    attributes: Attributes = Field(default_factory=list, description=ATTRIBUTES)
    membership_type: MembershipType = Field(default="static", description=MEMBERSHIP_TYPE)
    rule_tree: RuleTree | None = Field(
        default=None,
        description="Dynamic groups only (and required for them): the rules membership "
        "follows. " + RULE_TREE_DESCRIPTION,
    )

    _check_keys = field_validator("attributes")(_unique_keys)

    @model_validator(mode="after")
    def _rule_tree_matches_type(self) -> Self:
        if self.membership_type == "dynamic" and self.rule_tree is None:
            raise ValueError("A dynamic group requires a 'rule_tree'.")
        if self.membership_type == "static" and self.rule_tree is not None:
            raise ValueError("A static group must not have a 'rule_tree'.")
        return self


class ProfileGroupUpdate(InputSchema):
    """Only the fields sent change."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {"examples": [{"name": "Group - edited", "is_active": True}]}
    }

    name: Name | None = Field(default=None, description=NAME)
    description: Description | None = Field(default=None, description=DESCRIPTION)
    is_active: bool | None = Field(default=None, description=IS_ACTIVE)
    custom_id: CustomId | None = Field(default=None, description=CUSTOM_ID + " `null` removes it.")
    attributes: Attributes | None = Field(
        default=None, description=ATTRIBUTES + " Replaces the whole list."
    )
    rule_tree: RuleTree | None = Field(
        default=None,
        description="Dynamic groups only: a new rule tree (a new ruleset with a new id), "
        "evaluated at once. " + RULE_TREE_DESCRIPTION,
    )
    # Accepted only to answer with a clear 400: membership type cannot change. Not in the
    # document, where sending it is already invalid (no additional properties).
    membership_type: SkipJsonSchema[MembershipType | None] = Field(default=None, exclude=True)

    _check_keys = field_validator("attributes")(_unique_keys)

    @model_validator(mode="after")
    def _no_type_change(self) -> Self:
        if "membership_type" in self.model_fields_set:
            raise ValueError("'membership_type' cannot be changed after a group is created.")
        refuse_nulls(self, ("name", "is_active", "description", "attributes"))
        return self


class Ruleset(Schema):
    """A dynamic group's current rules. Every rule change is a new ruleset with a new id."""

    id: UUID = Field(description="The ruleset's id (evaluations name the ruleset they used).")
    rule_tree: RuleTree = Field(description="The rule tree as it was given (after validation).")
    created_at: Timestamp = Field(description="When these rules were set.")


class EvaluationState(Schema):
    """Where a dynamic group's membership stands."""

    status: Literal["pending", "running", "succeeded", "failed"] = Field(
        description="`running` while an evaluation runs; `pending` while one is queued or "
        "none has finished yet; otherwise the outcome of the latest one."
    )
    last_evaluated_at: Timestamp | None = Field(
        description="The `as_of` of the latest successful evaluation: the moment the current "
        "membership reflects. Null before the first one."
    )
    next_evaluation_at: Timestamp | None = Field(
        description="When a queued evaluation was requested, or else the next scheduled one."
    )
    error: str | None = Field(
        description="Why the latest evaluation failed, when it did; null otherwise."
    )


class Evaluation(Schema):
    """One evaluation of a dynamic group's rules: the queue entry and then its outcome."""

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

    id: UUID = Field(description="The evaluation's id.")
    ruleset_id: UUID = Field(description="The ruleset evaluated.")
    trigger: Literal["schedule", "rule_change", "manual"] = Field(
        description="Why it ran: the periodic `schedule`, a `rule_change` (or a new group), or "
        "a `manual` request (POST .../evaluate/)."
    )
    status: Literal["queued", "running", "succeeded", "failed"] = Field(
        description="`queued`, `running`, then `succeeded` or `failed`."
    )
    as_of: Timestamp | None = Field(
        description="The moment the membership was computed for; null until it runs."
    )
    started_at: Timestamp | None = Field(description="When it started; null while queued.")
    finished_at: Timestamp | None = Field(description="When it finished; null until then.")
    duration_ms: int | None = Field(description="How long it ran, in milliseconds.")
    matched_count: int | None = Field(description="Profiles the rules matched.")
    added_count: int | None = Field(description="Profiles that entered the group.")
    removed_count: int | None = Field(description="Profiles that left the group.")
    error: str | None = Field(
        description="Why it failed (membership was left unchanged); null otherwise."
    )


def _absent(value: object) -> bool:
    return value is None


class ProfileGroup(Schema):
    """A profile group. A dynamic group also has `ruleset` and `evaluation`; a static group has
    neither key."""

    model_config = Schema.model_config | {
        "json_schema_extra": {"examples": [GROUP_EXAMPLE, DYNAMIC_GROUP_EXAMPLE]}
    }

    id: UUID = Field(description="The group's id, assigned by the service.")
    name: str = Field(description=NAME)
    description: str = Field(description=DESCRIPTION)
    is_active: bool = Field(description=IS_ACTIVE)
    custom_id: str | None = Field(description=CUSTOM_ID)
    attributes: list[GroupAttribute] = Field(description=ATTRIBUTES)
    membership_type: MembershipType = Field(description=MEMBERSHIP_TYPE)
    profile_count: int = Field(
        description="The exact number of members, including while members change concurrently."
    )
    created_at: Timestamp = Field(description="When the group was created.")
    updated_at: Timestamp = Field(description="When the group's details last changed.")
    # Left out (not null) for a static group.
    ruleset: Ruleset | None = Field(
        default=None,
        exclude_if=_absent,
        description="Dynamic groups only: the current rules.",
    )
    evaluation: EvaluationState | None = Field(
        default=None,
        exclude_if=_absent,
        description="Dynamic groups only: where the membership stands.",
    )


IdList = Annotated[list[str], Field(max_length=MAX_IDS)]


class MembersChange(InputSchema):
    """Exactly one id list, up to 10,000 ids. `application_profile_ids` is a synonym of
    `profile_ids`."""

    model_config = InputSchema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"profile_ids": ["174cc6dd-c1da-42d2-886e-c48b2bf803a8"]},
                {"custom_ids": ["111bb1aa-c1da-42d2-886e-c48b2bf803a8"]},
            ]
        }
    }

    profile_ids: IdList | None = Field(
        default=None,
        description="Profile ids (a malformed id or one naming no profile of the application "
        "is reported in `invalid_ids`, not refused).",
    )
    custom_ids: IdList | None = Field(default=None, description="Profiles' custom ids.")
    application_profile_ids: IdList | None = Field(
        default=None, description="Synonym of `profile_ids` (accepted on DELETE)."
    )


class MembersAdded(Schema):
    """The outcome per id, echoing ids in the space they were sent in."""

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

    successfully_added: list[str] = Field(description="Ids that became members.")
    already_added: list[str] = Field(description="Ids that were members already.")
    invalid_ids: list[str] = Field(
        description="Ids that are malformed or name no profile of the application."
    )


MEMBERSHIP_CREATED_AT = (
    "When the profile last entered the group (for a dynamic group it stays put while the "
    "profile keeps matching)."
)


class Member(Schema):
    """A member of a group."""

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

    id: UUID = Field(description="The profile's id.")
    nickname: str | None = Field(description="The profile's nickname, if it has one.")
    custom_id: str | None = Field(description="The profile's custom id, if it has one.")
    membership_created_at: Timestamp = Field(description=MEMBERSHIP_CREATED_AT)


class ProfileGroupMembership(Schema):
    """A group a profile is in."""

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

    group_id: UUID = Field(description="The group's id.")
    group_name: str = Field(description="The group's name.")
    profile_count: int = Field(description="The group's exact number of members.")
    is_active: bool = Field(description="Always true: inactive groups are left out.")
    created_at: Timestamp = Field(description="When the group was created.")
    custom_id: str | None = Field(description="The group's custom id, if it has one.")
    membership_type: MembershipType = Field(description="`static` or `dynamic`.")
    membership_created_at: Timestamp = Field(description=MEMBERSHIP_CREATED_AT)


# Explanations (docs/segmentation.md, "Explain") ---------------------------------------------


class DynamicExplanation(Schema):
    """Why a profile is or is not in a dynamic group: its current rule tree evaluated for the
    profile now by the evaluation's own SQL, every node with its result."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "as_of": "2025-04-28T12:20:00.000000Z",
                    "member": True,
                    "matches": True,
                    "tree": {
                        "operator": "AND",
                        "result": True,
                        "children": [
                            {
                                "attribute": "total_comments_posted",
                                "condition": "greater_than",
                                "value": 10,
                                "window_days": 7,
                                "actual": 12,
                                "result": True,
                            }
                        ],
                    },
                }
            ]
        }
    }

    as_of: Timestamp = Field(description="The moment the tree was evaluated at.")
    member: bool = Field(description="Whether the profile is in the group's stored membership.")
    matches: bool = Field(
        description="Whether the rule tree holds for the profile at `as_of`; membership follows "
        "at the next update."
    )
    tree: ExplainedNode = Field(
        description="The group's current rule tree, every node with its result for the profile."
    )


class StaticExplanation(Schema):
    """A static group's members are managed through the API: whether the profile is one."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [{"member": True, "membership_created_at": "2025-04-28T12:26:43.767378Z"}]
        }
    }

    member: bool = Field(description="Whether the profile is a member of the group.")
    membership_created_at: Timestamp | None = Field(
        description="When the profile was added; null when it is not a member."
    )


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
    group_id: UUID = Field(description="The group whose membership changed.")
    profile_id: UUID = Field(description="The profile that entered or exited.")
    custom_id: str | None = Field(description="The profile's custom_id when the change happened.")
    change: ChangeKind = Field(description="`entered` or `exited`.")
    reason: ChangeReason = Field(
        description="`manual` (member add/remove), `evaluation` (a full evaluation), `activity` "
        "(an incremental update after the profile's data changed) or `profile_deleted`."
    )
    evaluation_id: UUID | None = Field(description="The full evaluation that made the change.")
    occurred_at: Timestamp = Field(description="When the change happened (docs/changes.md).")


class SizePoint(Schema):
    at: Timestamp = Field(description="Start of the interval (UTC).")
    profile_count: int = Field(description="Members at the end of the interval (or now).")
    entered: int = Field(description="Entries within the interval.")
    exited: int = Field(description="Exits within the interval.")


class SizeHistory(Schema):
    results: list[SizePoint] = Field(description="One row per interval, oldest first.")
