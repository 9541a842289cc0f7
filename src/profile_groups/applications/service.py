"""Applications (tenants) and producer tokens (docs/api.md)."""

import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.applications.repository import ApplicationRepository
from profile_groups.kit.errors import NotFound
from profile_groups.models import ApiToken, Application

TOKEN_PREFIX = "pgt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_client_id() -> str:
    # 40 url-safe random characters (docs/api.md).
    return secrets.token_urlsafe(30)[:40]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: UUID


async def create_application(session: AsyncSession, name: str) -> tuple[Application, IssuedToken]:
    repo = ApplicationRepository(session)
    app = await repo.create(new_client_id(), name, secrets.token_urlsafe(48))
    return app, await create_token(session, app)


async def create_token(session: AsyncSession, app: Application) -> IssuedToken:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await ApplicationRepository(session).add_token(app.id, hash_token(token))
    return IssuedToken(token=token, token_id=row.id)


async def get_application(session: AsyncSession, client_id: str) -> Application:
    app = await ApplicationRepository(session).get_by_client_id(client_id)
    if app is None:
        raise NotFound(f"No application with client id {client_id!r}.")
    return app


async def revoke_token(session: AsyncSession, token_id: UUID) -> None:
    if not await ApplicationRepository(session).revoke_token(token_id):
        raise NotFound(f"No active token with id {token_id}.")


async def list_applications(session: AsyncSession) -> list[tuple[Application, int]]:
    """CLI: every application with its number of active tokens."""
    return await ApplicationRepository(session).list_with_token_counts()


async def list_tokens(session: AsyncSession, app: Application) -> list[ApiToken]:
    """CLI: an application's tokens (ids and dates only: a token itself is never stored)."""
    return await ApplicationRepository(session).list_tokens(app.id)
