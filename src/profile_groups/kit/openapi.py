"""The OpenAPI document's description and the corrections the contract makes to FastAPI's."""

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from profile_groups.kit.errors import (
    ProfileGroupsError,
    TooLarge,
    Unavailable,
    UnsupportedMediaType,
)

DESCRIPTION = """
Profile Groups puts your users' profiles into named, addressable groups.

* **Static groups**: members are added and removed through the API.
* **Dynamic groups**: membership follows a rule tree over profile attributes and activity and is
  kept up to date by the segmentation worker.

Every `/api/v1` call needs `Authorization: Bearer <token>`. Errors always carry `detail` and
`error_code`; validation errors are 400 with `errors[].loc`.
"""

# The tags, in the order the docs pages show them (a tag missing here is listed after them).
TAGS: list[dict[str, Any]] = [
    {"name": "profile groups", "description": "Groups, their members, a profile's groups, "
     "rule tree previews and the evaluations of dynamic groups."},
    {"name": "profiles", "description": "The people groups are made of, pushed by your platform."},
    {"name": "custom attributes", "description": "Your own metrics, carried by profiles and "
     "usable in rules."},
    {"name": "attributes", "description": "The catalogue of attributes rules can use, and a "
     "profile's values of them."},
    {"name": "activity", "description": "Events that feed the platform attributes."},
    {"name": "webhooks", "description": "Signed deliveries of membership changes and group "
     "events to your endpoints."},
    {"name": "operations", "description": "Liveness, readiness and metrics (no token)."},
]  # fmt: skip

BEARER_SCHEME = "bearer"
_API_PREFIX = "/api/v1/"
_BODY_METHODS = frozenset({"post", "put", "patch", "delete"})


def operation_id(route: APIRoute) -> str:
    """An operation's id is its route function's name: short, stable, and unique (checked by
    tests/kit/test_openapi.py) because every route function name is."""
    return route.name


def _error_response(error: type[ProfileGroupsError]) -> dict[str, Any]:
    return {
        "description": error.default_detail,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"},
                "example": error.example(),
            }
        },
    }


def _named(examples: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    return {
        name: {"summary": summary, "value": value} for name, (summary, value) in examples.items()
    }


def body_examples(**examples: tuple[str, Any]) -> dict[str, Any]:
    """A route's `openapi_extra`: named request body examples (`name=(summary, value)`), which
    Swagger UI offers in a menu."""
    return {"requestBody": {"content": {"application/json": {"examples": _named(examples)}}}}


def response_examples(description: str, **examples: tuple[str, Any]) -> dict[str, Any]:
    """A `responses=` entry: the response's named examples (`name=(summary, value)`)."""
    return {
        "description": description,
        "content": {"application/json": {"examples": _named(examples)}},
    }


def shape_openapi(
    schema: dict[str, Any], extra_schemas: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The contract's corrections to FastAPI's document (docs/api.md, "The OpenAPI document").

    - the bearer scheme, required by every /api/v1 operation, so Swagger UI's Authorize and
      "Try it out" send `Authorization: Bearer <token>`;
    - no 422: the service answers every validation error with 400 and `ErrorBody`;
    - 413 and 415 on the methods that take a body (the request middleware answers them before
      routing) and 503 on every /api/v1 operation (a dependency down);
    - the components of `extra_schemas`.
    """
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A producer token (`profile-groups tokens create CLIENT_ID`) or a profile "
        "token signed with the application's secret.",
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if not path.startswith(_API_PREFIX):
                continue
            operation["security"] = [{BEARER_SCHEME: []}]
            responses.setdefault("503", _error_response(Unavailable))
            if method in _BODY_METHODS:
                responses.setdefault("413", _error_response(TooLarge))
                responses.setdefault("415", _error_response(UnsupportedMediaType))
    schemas = components.setdefault("schemas", {})
    # The 422 models are referenced by nothing any more.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    # Models that fields reference by hand (`WithJsonSchema`), such as the rule tree's nodes.
    for name, model_schema in (extra_schemas or {}).items():
        schemas.setdefault(name, model_schema)
    return schema


def install_openapi(app: FastAPI, extra_schemas: dict[str, Any] | None = None) -> None:
    """Serve `shape_openapi` of FastAPI's document at /openapi.json (built once, then cached).
    `extra_schemas` are components that fields reference by hand (`WithJsonSchema`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = shape_openapi(generate(), extra_schemas)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
