"""Rules of profiles and custom attributes (SPEC §3, §4)."""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.kit.errors import NotFound
from profile_groups.models import Application, Profile
from profile_groups.profiles.repository import ProfileRepository


async def get_profile(session: AsyncSession, app: Application, profile_id: UUID) -> Profile:
    profile = await ProfileRepository(session).get(app.id, profile_id)
    if profile is None:
        raise NotFound()
    return profile


async def get_profile_by_custom_id(
    session: AsyncSession, app: Application, custom_id: str
) -> Profile:
    profile = await ProfileRepository(session).get_by_custom_id(app.id, custom_id)
    if profile is None:
        raise NotFound()
    return profile
