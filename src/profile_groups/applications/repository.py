from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.models import ApiToken, Application


class ApplicationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, client_id: str, name: str, client_secret: str) -> Application:
        app = Application(client_id=client_id, name=name, client_secret=client_secret)
        self.session.add(app)
        await self.session.flush()
        await self.session.refresh(app)
        return app

    async def get_by_client_id(self, client_id: str) -> Application | None:
        stmt = select(Application).where(Application.client_id == client_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_with_token_counts(self) -> list[tuple[Application, int]]:
        """Every application, oldest first, with its number of active (unrevoked) tokens."""
        active = (
            select(func.count())
            .where(ApiToken.application_id == Application.id, ApiToken.revoked_at.is_(None))
            .scalar_subquery()
        )
        stmt = select(Application, active).order_by(Application.created_at, Application.id)
        return [(app, count) for app, count in (await self.session.execute(stmt)).all()]

    async def list_tokens(self, application_id: UUID) -> list[ApiToken]:
        """An application's tokens, revoked ones included, oldest first."""
        stmt = (
            select(ApiToken)
            .where(ApiToken.application_id == application_id)
            .order_by(ApiToken.created_at, ApiToken.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def add_token(self, application_id: UUID, token_hash: str) -> ApiToken:
        token = ApiToken(application_id=application_id, token_hash=token_hash)
        self.session.add(token)
        await self.session.flush()
        return token

    async def application_for_token(self, token_hash: str) -> Application | None:
        stmt = (
            select(Application)
            .join(ApiToken, ApiToken.application_id == Application.id)
            .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def revoke_token(self, token_id: UUID) -> bool:
        stmt = (
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(ApiToken.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None
