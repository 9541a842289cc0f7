"""Every SQL statement of profiles and custom attribute definitions."""

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.models import Profile


class ProfileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, application_id: UUID, profile_id: UUID) -> Profile | None:
        return await self.session.get(Profile, (application_id, profile_id))

    async def get_by_custom_id(self, application_id: UUID, custom_id: str) -> Profile | None:
        stmt = select(Profile).where(
            Profile.application_id == application_id, Profile.custom_id == custom_id
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()
