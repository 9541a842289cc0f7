"""Bearer authentication, tenant scoping and the profile-token read policy (docs/api.md).

Two kinds of bearer token, told apart without a lookup:
- producer tokens (`pgt_…`, server to server): full access to one application; only their
  SHA-256 is stored;
- profile tokens (a JWT: two dots): HS256 signed with the application's client secret, claims
  `iss` (client id), `iat`, optional `exp`, and `profile_id` or `custom_profile_id`. They may
  only read their own profile's groups and memberships (routes using `ReaderDep`): the policy is
  `check_may_ask` before a lookup and `readable` after it, both below and nowhere else.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar
from uuid import UUID

import jwt
from fastapi import Depends, Path, Request

from profile_groups.applications.repository import ApplicationRepository
from profile_groups.applications.service import TOKEN_PREFIX, hash_token
from profile_groups.kit.errors import NotAuthenticated, NotFound, PermissionDenied
from profile_groups.kit.state import SessionDep
from profile_groups.models import Application

JWT_ALGORITHM = "HS256"
# Tolerated clock skew between the token issuer and this service, for `iat` and `exp`.
JWT_LEEWAY_SECONDS = 30
PROFILE_TOKEN_FORBIDDEN = "A profile token may only read its own profile's groups and memberships."


@dataclass(frozen=True)
class Principal:
    """Who is calling: an application's producer, or one of its profiles (profile token)."""

    app: Application
    profile_id: UUID | None = None
    custom_profile_id: str | None = None

    @property
    def is_producer(self) -> bool:
        return self.profile_id is None and self.custom_profile_id is None


NO_CREDENTIALS = (
    "Authentication credentials were not provided: send the header 'Authorization: Bearer <token>'."
)
NO_BEARER_PREFIX = (
    "The Authorization header must be 'Bearer <token>': the 'Bearer ' prefix is missing."
)
ANOTHER_APPLICATION = (
    "This token belongs to another application: use the client id of the application the "
    "token was created for."
)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise NotAuthenticated(NO_CREDENTIALS)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        # The commonest mistake: the token alone, or another scheme's word before it.
        raise NotAuthenticated(NO_BEARER_PREFIX)
    if not token.strip():
        raise NotAuthenticated("The Authorization header has no token after 'Bearer '.")
    return token.strip()


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


async def _producer(session: SessionDep, token: str, client_id: str) -> Principal:
    app = await ApplicationRepository(session).application_for_token(hash_token(token))
    if app is None:
        raise NotAuthenticated("Invalid token.")
    if app.client_id != client_id:
        raise PermissionDenied(ANOTHER_APPLICATION)
    return Principal(app=app)


def _profile_claims(claims: dict[str, Any]) -> tuple[UUID | None, str | None]:
    raw_id = claims.get("profile_id")
    custom_id = claims.get("custom_profile_id")
    profile_id: UUID | None = None
    if raw_id is not None:
        try:
            profile_id = UUID(str(raw_id))
        except ValueError:
            raise NotAuthenticated("Invalid token: 'profile_id' is not a UUID.") from None
    if custom_id is not None and (not isinstance(custom_id, str) or not custom_id):
        raise NotAuthenticated("Invalid token: 'custom_profile_id' must be a non-empty string.")
    if profile_id is None and custom_id is None:
        raise NotAuthenticated("Invalid token: 'profile_id' or 'custom_profile_id' is required.")
    return profile_id, custom_id


async def _profile(session: SessionDep, token: str, client_id: str) -> Principal:
    try:
        # The issuer names the application whose secret verifies the signature.
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise NotAuthenticated("Invalid token.") from None
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise NotAuthenticated("Invalid token: 'iss' is required.")
    app = await ApplicationRepository(session).get_by_client_id(issuer)
    if app is None:
        raise NotAuthenticated("Invalid token.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            app.client_secret,
            algorithms=[JWT_ALGORITHM],
            issuer=app.client_id,
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["iss", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("Token has expired.") from None
    except jwt.PyJWTError:
        raise NotAuthenticated("Invalid token.") from None
    profile_id, custom_id = _profile_claims(claims)
    if app.client_id != client_id:
        raise PermissionDenied(ANOTHER_APPLICATION)
    return Principal(app=app, profile_id=profile_id, custom_profile_id=custom_id)


async def current_principal(
    request: Request,
    session: SessionDep,
    client_id: Annotated[str, Path(description="The application's client id.")],
) -> Principal:
    """The caller, if its bearer token belongs to the application named in the path.

    A token of another application gets 403 whether or not `client_id` exists, so the answer
    reveals nothing about other tenants.
    """
    token = _bearer(request)
    if token.startswith(TOKEN_PREFIX):
        return await _producer(session, token, client_id)
    if _is_jwt(token):
        return await _profile(session, token, client_id)
    raise NotAuthenticated("Invalid token.")


async def current_application(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Application:
    """Producer-only routes: a valid profile token is refused with 403."""
    if not principal.is_producer:
        raise PermissionDenied(PROFILE_TOKEN_FORBIDDEN)
    return principal.app


class ProfileLike(Protocol):
    """A profile, or any row carrying its `id` and `custom_id`."""

    @property
    def id(self) -> UUID: ...

    @property
    def custom_id(self) -> str | None: ...


P = TypeVar("P", bound=ProfileLike)


def check_may_ask(
    principal: Principal, *, profile_id: UUID | None = None, custom_id: str | None = None
) -> None:
    """Before a lookup: a profile token that names its own profile may ask for no other one."""
    if principal.is_producer:
        return
    if profile_id is not None and principal.profile_id not in (None, profile_id):
        raise PermissionDenied(PROFILE_TOKEN_FORBIDDEN)
    if custom_id is not None and principal.custom_profile_id not in (None, custom_id):
        raise PermissionDenied(PROFILE_TOKEN_FORBIDDEN)


def readable(
    principal: Principal,
    profile: P | None,
    *,
    profile_id: UUID | None = None,
    custom_id: str | None = None,
) -> P:
    """After the lookup of the profile named by `profile_id` or `custom_id`: the profile if the
    caller may read it. A producer reads any profile of its application; a profile token only its
    own, and it learns nothing about other ids (403 whether or not they exist)."""
    if profile is None:
        own = (profile_id is not None and principal.profile_id == profile_id) or (
            custom_id is not None and principal.custom_profile_id == custom_id
        )
        if principal.is_producer or own:
            raise NotFound()
        raise PermissionDenied(PROFILE_TOKEN_FORBIDDEN)
    if principal.is_producer:
        return profile
    if principal.profile_id is not None and principal.profile_id != profile.id:
        raise PermissionDenied(PROFILE_TOKEN_FORBIDDEN)
    if principal.custom_profile_id is not None and principal.custom_profile_id != profile.custom_id:
        raise PermissionDenied(PROFILE_TOKEN_FORBIDDEN)
    return profile


AppDep = Annotated[Application, Depends(current_application)]
ReaderDep = Annotated[Principal, Depends(current_principal)]
