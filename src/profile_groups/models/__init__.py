"""All ORM models, imported together so Alembic and the mappers see every table."""

from profile_groups.models import (  # noqa: F401 - register tables
    activity,
    changes,
    segmentation,
    webhooks,
)
from profile_groups.models.application import ApiToken, Application
from profile_groups.models.base import Base
from profile_groups.models.group import GroupMembership, ProfileGroup
from profile_groups.models.profile import CustomAttribute, Profile

__all__ = [
    "ApiToken",
    "Application",
    "Base",
    "CustomAttribute",
    "GroupMembership",
    "Profile",
    "ProfileGroup",
]
