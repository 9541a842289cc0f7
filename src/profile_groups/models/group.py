from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from profile_groups.models.base import Base


class ProfileGroup(Base):
    """A named set of profiles, static or dynamic (docs/groups.md)."""

    __tablename__ = "profile_groups"

    id: Mapped[UUID] = mapped_column(primary_key=True, server_default=text("gen_random_uuid()"))
    application_id: Mapped[UUID] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(2000), server_default="")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    custom_id: Mapped[str | None] = mapped_column(String(255))
    # [{"key": ..., "value": ...}]; a GIN index serves `attributes @> '[{"key": k, "value": v}]'`.
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(server_default=text("'[]'::jsonb"))
    membership_type: Mapped[str] = mapped_column(String(16), server_default="static")
    # Kept exact by the same statements that add and remove memberships.
    profile_count: Mapped[int] = mapped_column(server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("membership_type IN ('static', 'dynamic')", name="membership_type"),
        CheckConstraint("profile_count >= 0", name="profile_count"),
        Index(
            "uq_profile_groups_application_custom_id", "application_id", "custom_id", unique=True
        ),
        Index("ix_profile_groups_application_created", "application_id", "created_at", "id"),
        Index(
            "ix_profile_groups_attributes",
            "attributes",
            postgresql_using="gin",
            postgresql_ops={"attributes": "jsonb_path_ops"},
        ),
    )


class GroupMembership(Base):
    """A profile's membership of a group; `created_at` is when it (last) entered."""

    __tablename__ = "group_memberships"

    # No foreign keys. To profile_groups: its per-row check (a KEY SHARE lock on the group row
    # for every inserted membership) was a third of an evaluation's insert time, and the lock
    # order already rules out a membership of a missing group: every writer holds the group row
    # lock and sees the group exist (MembershipRepository). Deleting a group deletes its
    # memberships explicitly (MembershipRepository.remove_group). To profiles: its per-row check
    # was half of what remained; every insert joins the profiles and locks them FOR KEY SHARE
    # instead, set-based, and deleting a profile deletes its memberships first
    # (MembershipRepository.remove_profile).
    group_id: Mapped[UUID] = mapped_column(primary_key=True)
    profile_id: Mapped[UUID] = mapped_column(primary_key=True)
    application_id: Mapped[UUID]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # Member listing, newest first, keyset-paginated.
        Index("ix_group_memberships_group_created", "group_id", "created_at", "profile_id"),
        # A profile's groups (docs/groups.md), incremental rounds and profile deletion. It
        # carries group_id, so an incremental round reads a profile's current memberships from
        # the index alone (index-only, on pages vacuum marked all-visible) instead of ~17 random
        # heap pages per profile (migration 0012).
        Index(
            "ix_group_memberships_profile",
            "application_id",
            "profile_id",
            postgresql_include=["group_id"],
        ),
    )
