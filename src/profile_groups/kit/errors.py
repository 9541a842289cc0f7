"""One error hierarchy and the handlers that render the contract's error body (docs/api.md)."""

import re
from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from profile_groups.kit import validation

T = TypeVar("T")

# A dependency that cannot answer: 503 `unavailable` with Retry-After (docs/api.md).
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,  # also BusyLoadingError: Redis loading its data after a restart
    RedisTimeoutError,
    PoolTimeoutError,  # no pooled connection free within pool_timeout
    # Not wrapped by SQLAlchemy: asyncpg's connection refused or reset (ConnectionError), its
    # connect and command timeouts (TimeoutError), a missing unix socket (FileNotFoundError).
    OSError,
)


UNIQUE_VIOLATION = "23505"
QUERY_CANCELED = "57014"
# A race lost to a concurrent transaction, after which the whole unit of work is safe to redo:
# deadlock_detected, serialization_failure, foreign_key_violation (a profile deleted while it was
# being added) and unique_violation (a custom_id taken by a batch that committed meanwhile).
# kit.retry retries them; a request that still loses is a 409 (see on_db_error below).
RACE_SQLSTATES = frozenset({"40P01", "40001", "23503", UNIQUE_VIOLATION})
# The database cannot serve the request now, whatever the request: a 503 with Retry-After.
# Class 08 (connection exception), 53 (insufficient resources, e.g. too_many_connections),
# 57P01-57P05 (admin or crash shutdown, cannot_connect_now while starting or stopping, idle
# session timeout), 58 (system error) and a statement cut off by statement_timeout (57014).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "58")
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", QUERY_CANCELED})


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "PostgreSQL cannot serve now" (503), not a bug (500)."""
    if not isinstance(exc, DBAPIError):
        return False
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return True
    code = sqlstate(exc) or ""
    if code in UNAVAILABLE_SQLSTATES or code[:2] in UNAVAILABLE_SQLSTATE_CLASSES:
        return True
    # asyncpg errors SQLAlchemy does not map (a socket error during connect or a command).
    return isinstance(exc.orig, OSError) or isinstance(
        getattr(exc.orig, "__cause__", None), OSError
    )


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a database error as SQLAlchemy wraps it, if any."""
    orig = getattr(exc, "orig", None)
    return (
        getattr(orig, "sqlstate", None)
        or getattr(orig, "pgcode", None)
        or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    )


def constraint_name(exc: BaseException) -> str | None:
    """The name of the constraint (or unique index) a database error violated, from the driver."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "constraint_name", None) or getattr(
        getattr(orig, "__cause__", None), "constraint_name", None
    )


class ErrorItem(BaseModel):
    """One offending field of a 400 `invalid`."""

    loc: list[str | int] = Field(
        description="Where the problem is: `body`, `query` or `path`, then the field names and "
        "list indexes leading to it (for rule trees, the full path inside the tree).",
        examples=[["body", "rule_tree", "children", 0, "children", 1, "condition"]],
    )
    msg: str = Field(
        description="What is wrong and what is allowed, as a sentence for a person.",
        examples=["Unknown field 'desciption'; did you mean 'description'?"],
    )
    type: str = Field(
        description="A stable machine-readable kind of problem (`missing`, `extra_forbidden`, "
        "`string_type`, `unknown_attribute`, ...).",
        examples=["extra_forbidden"],
    )


class ErrorBody(BaseModel):
    """The body of every error response (docs/api.md, "Errors")."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "Not found.", "error_code": "not_found"},
                {
                    "detail": "Invalid input: desciption: Unknown field 'desciption'; did you "
                    "mean 'description'?",
                    "error_code": "invalid",
                    "errors": [
                        {
                            "loc": ["body", "desciption"],
                            "msg": "Unknown field 'desciption'; did you mean 'description'?",
                            "type": "extra_forbidden",
                        }
                    ],
                },
            ]
        }
    )

    detail: str = Field(description="What went wrong, as a sentence for a person.")
    error_code: str = Field(
        description="A stable code for programs: `invalid` (400), `not_authenticated` (401), "
        "`permission_denied` (403), `not_found` (404), `method_not_allowed` (405), `conflict` "
        "(409), `too_large` (413), `unsupported_media_type` (415), `throttled` (429), "
        "`internal` (500), `unavailable` (503).",
        examples=["not_found"],
    )
    errors: list[ErrorItem] | None = Field(
        default=None,
        description="400 `invalid` only: every offending field, each with its `loc`.",
    )
    request_id: str | None = Field(
        default=None,
        description="500 `internal` only: the request id to quote when reporting the problem "
        "(also in the `X-Request-ID` header of every response).",
    )


class ProfileGroupsError(Exception):
    status_code = 500
    error_code = "internal"
    default_detail = "Internal server error."

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers = headers
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "error_code": self.error_code}

    @classmethod
    def example(cls) -> dict[str, Any]:
        """The body as the OpenAPI document shows it."""
        return {"detail": cls.default_detail, "error_code": cls.error_code}


class BadRequest(ProfileGroupsError):
    status_code = 400
    error_code = "invalid"
    default_detail = "Invalid request."

    def __init__(
        self,
        detail: str | None = None,
        errors: Sequence[dict[str, Any]] | None = None,
    ):
        super().__init__(detail)
        self.errors = list(errors or [])

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": self.errors}

    @classmethod
    def example(cls) -> dict[str, Any]:
        msg = validation.unknown_field("desciption", ["name", "description"])
        return {
            "detail": f"Invalid input: desciption: {msg}",
            "error_code": cls.error_code,
            "errors": [{"loc": ["body", "desciption"], "msg": msg, "type": "extra_forbidden"}],
        }


def invalid_field(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> BadRequest:
    """A 400 naming one offending field, in the same shape as body validation errors."""
    return BadRequest(msg, [{"loc": list(loc), "msg": msg, "type": type_}])


class NotAuthenticated(ProfileGroupsError):
    status_code = 401
    error_code = "not_authenticated"
    default_detail = "Authentication credentials were not provided or are invalid."

    def __init__(self, detail: str | None = None):
        # RFC 9110: a 401 names the scheme the client should authenticate with.
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class PermissionDenied(ProfileGroupsError):
    status_code = 403
    error_code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class NotFound(ProfileGroupsError):
    status_code = 404
    error_code = "not_found"
    default_detail = "Not found."


def found(value: T | None) -> T:
    """`value`, or the contract's 404 when a lookup found nothing."""
    if value is None:
        raise NotFound()
    return value


class MethodNotAllowed(ProfileGroupsError):
    status_code = 405
    error_code = "method_not_allowed"
    default_detail = "Method not allowed."


class Conflict(ProfileGroupsError):
    status_code = 409
    error_code = "conflict"
    default_detail = "Conflict."


class TooLarge(ProfileGroupsError):
    status_code = 413
    error_code = "too_large"
    default_detail = "Request body is too large (limit 5 MiB)."


class UnsupportedMediaType(ProfileGroupsError):
    status_code = 415
    error_code = "unsupported_media_type"
    default_detail = "Request body must be JSON (Content-Type: application/json)."


class Throttled(ProfileGroupsError):
    status_code = 429
    error_code = "throttled"
    default_detail = "Request was throttled."


class Unavailable(ProfileGroupsError):
    status_code = 503
    error_code = "unavailable"
    default_detail = "A dependency of the service is unavailable; retry shortly."

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"Retry-After": "5"})


def internal_error_body(request_id: str) -> dict[str, Any]:
    # Unexpected errors are rendered by the request middleware (kit/middleware.py), which sits
    # outside the routing layer and can still attach the request id header.
    return {
        "detail": f"Internal server error (request id {request_id}).",
        "error_code": "internal",
        "request_id": request_id,
    }


def error_response(exc: ProfileGroupsError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def _body_model(request: Request) -> Any:
    """The type a route reads its JSON body into, for the did-you-mean of unknown fields."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return getattr(getattr(body_field, "field_info", None), "annotation", None)


def _validation_errors(request: Request, exc: RequestValidationError) -> list[dict[str, Any]]:
    """Every error of the request, in our words (kit/validation.py)."""
    out: list[dict[str, Any]] = []
    model = _body_model(request)
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, BadRequest) and ctx_error.errors:
            out.extend(ctx_error.errors)
            continue
        out.extend(validation.items([err], model, ("body",)))
    return out


def _validation_detail(items: list[dict[str, Any]]) -> str:
    if any(item["type"] == "json_invalid" for item in items):
        return "Malformed JSON in request body."
    first = items[0] if items else {"loc": [], "msg": "Invalid request."}
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return f"Invalid input: {where + ': ' if where else ''}{first['msg']}{more}"


def _status_error(status_code: int) -> ProfileGroupsError:
    by_status: dict[int, type[ProfileGroupsError]] = {
        401: NotAuthenticated,
        403: PermissionDenied,
        404: NotFound,
        405: MethodNotAllowed,
        409: Conflict,
        413: TooLarge,
        415: UnsupportedMediaType,
        429: Throttled,
        503: Unavailable,
    }
    cls = by_status.get(status_code)
    if cls is not None:
        return cls()
    if 400 <= status_code < 500:
        return BadRequest()
    return ProfileGroupsError()


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProfileGroupsError)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        items = _validation_errors(request, exc)
        if items and all(item["loc"][:1] == ["path"] for item in items):
            # A malformed id in the path names no resource: 404, as an unknown id would.
            return error_response(NotFound())
        return JSONResponse(
            {"detail": _validation_detail(items), "error_code": "invalid", "errors": items},
            status_code=400,
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = _status_error(exc.status_code)
        if exc.status_code == 405:
            error.headers = {"Allow": _allowed_methods(request, exc)}
        return error_response(error)

    async def on_dependency_down(request: Request, exc: Exception) -> JSONResponse:
        return error_response(Unavailable())

    async def on_db_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DBAPIError)
        if sqlstate(exc) in RACE_SQLSTATES:
            # Rare races between concurrent requests (e.g. a member added while its profile is
            # deleted) end in a deadlock or a vanished row; the transaction rolled back whole.
            return error_response(
                Conflict(
                    "The request collided with a concurrent change and was not applied; retry it."
                )
            )
        if database_unavailable(exc):
            return error_response(Unavailable())
        raise exc

    app.add_exception_handler(ProfileGroupsError, on_app_error)
    # PostgreSQL or Redis unreachable: 503 with Retry-After rather than a 500.
    for exc_type in DEPENDENCY_ERRORS:
        app.add_exception_handler(exc_type, on_dependency_down)
    app.add_exception_handler(DBAPIError, on_db_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _allowed_methods(request: Request, exc: StarletteHTTPException) -> str:
    """Every method the request's path answers to (all routes of the path, not only the one
    the router tried first), for the `Allow` header of a 405; read from the OpenAPI document,
    which lists every route of the API."""
    methods = {m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()}
    path = request.scope.get("path", "")
    for template, item in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
            methods |= {m.upper() for m in item if m.upper() in _HTTP_METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def responses(*errors: type[ProfileGroupsError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each listed error with the contract's body."""
    out: dict[int | str, dict[str, Any]] = {}
    for err in errors:
        out[err.status_code] = {
            "model": ErrorBody,
            "description": err.default_detail,
            "content": {"application/json": {"example": err.example()}},
        }
    return out
