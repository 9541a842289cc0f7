from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from profile_groups.models.base import Base


class Profile(Base):
    """A person groups are made of (docs/profiles.md).

    The key is (application_id, id): a client-supplied id never collides with, or reveals, another
    application's profile.
    """

    __tablename__ = "profiles"

    application_id: Mapped[UUID] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[UUID] = mapped_column(primary_key=True)
    custom_id: Mapped[str | None] = mapped_column(String(255))
    nickname: Mapped[str | None] = mapped_column(String(255))
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index("uq_profiles_application_custom_id", "application_id", "custom_id", unique=True),
        # The profile list, newest first, keyset-paginated (migration 0004).
        Index("ix_profiles_application_created", "application_id", "created_at", "id"),
    )


class CustomAttribute(Base):
    """A client-defined metric usable on profiles and in rules (docs/profiles.md)."""

    __tablename__ = "custom_attributes"

    application_id: Mapped[UUID] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    data_type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(2000), server_default="")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
