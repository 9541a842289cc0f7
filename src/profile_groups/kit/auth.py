"""Bearer authentication and tenant scoping for every /api/v1 route (SPEC §2)."""

from typing import Annotated

from fastapi import Depends, Path, Request

from profile_groups.applications.repository import ApplicationRepository
from profile_groups.applications.service import hash_token
from profile_groups.db import SessionDep
from profile_groups.kit.errors import NotAuthenticated, PermissionDenied
from profile_groups.models import Application


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Authentication credentials were not provided.")
    return token.strip()


async def current_application(
    request: Request,
    session: SessionDep,
    client_id: Annotated[str, Path(description="The application's client id.")],
) -> Application:
    """The application named in the path, if the bearer token belongs to it.

    A token of another application gets 403 whether or not `client_id` exists, so the answer
    reveals nothing about other tenants.
    """
    token = _bearer(request)
    app = await ApplicationRepository(session).application_for_token(hash_token(token))
    if app is None:
        raise NotAuthenticated("Invalid token.")
    if app.client_id != client_id:
        raise PermissionDenied()
    return app


AppDep = Annotated[Application, Depends(current_application)]
