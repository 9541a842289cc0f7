"""Every feature's API router: how JSON request bodies are parsed and checked, and the errors
every authenticated call documents."""

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from profile_groups.kit.errors import (
    BadRequest,
    NotAuthenticated,
    PermissionDenied,
    invalid_field,
    responses,
)

BAD_TEXT = "Text must not contain NUL characters or unpaired surrogates."
# The only ways a strictly parsed (UTF-8) JSON body can carry text PostgreSQL cannot store.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# How deep a JSON body may nest: pydantic-core's parser limit (no request body of the API comes
# near it; a rule tree stops far earlier). Deeper is a 400 at `["body"]`.
MAX_JSON_DEPTH = 200
TOO_DEEP = f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels."


class _Request(Request):
    _strict = True

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                # About three times faster than json.loads on a 1,000-event batch.
                self._json = pydantic_core.from_json(body)
            except ValueError as exc:
                if "recursion limit exceeded" in str(exc):
                    raise invalid_field(["body"], TOO_DEEP, "json_too_deep") from None
                # Malformed or non-UTF-8 JSON: the standard parser decides, so a bad body gets
                # exactly the error it always got (FastAPI turns JSONDecodeError into a 400).
                self._strict = False
                self._json = json.loads(body)
        return self._json

    async def check_text(self) -> None:
        """A 400 for a string PostgreSQL cannot store (NUL, unpaired surrogate) anywhere in the
        body, instead of a database error on the way in."""
        body = await self.body()
        if not body:
            return
        try:
            value = await self.json()
        except RecursionError:
            raise invalid_field(["body"], TOO_DEEP, "json_too_deep") from None
        except ValueError:
            return  # malformed: FastAPI reports it
        if self._strict and not _SUSPECT_ESCAPE.search(body):
            return
        where = _bad_text(value, ["body"])
        if where is not None:
            raise invalid_field(where, BAD_TEXT, "string_unicode")


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _bad_text(value: Any, loc: list[str | int]) -> list[str | int] | None:
    """Where the first unstorable string (or object key) in a parsed body is, if any."""
    stack: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, str):
            if _unstorable(value):
                return loc
        elif isinstance(value, dict):
            for key in value:
                if _unstorable(key):
                    return [*loc, key.encode(errors="replace").decode()]
            stack.extend((item, [*loc, key]) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((item, [*loc, i]) for i, item in reversed(list(enumerate(value))))
    return None


def check_parameters(request: Request, allowed: frozenset[str]) -> None:
    """The contract's checks of a request's path and query (docs/api.md): no text PostgreSQL
    cannot store in either, and no query parameter the route does not define."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and _unstorable(value):
            raise invalid_field(["path", name], BAD_TEXT, "string_unicode")
    for name, value in request.query_params.multi_items():
        if _unstorable(name):
            raise invalid_field(["query", name.encode(errors="replace").decode()], BAD_TEXT)
        if _unstorable(value):
            raise invalid_field(["query", name], BAD_TEXT, "string_unicode")
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        names = ", ".join(unknown)
        known = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(
            f"Unknown query parameter(s): {names}. Allowed: {known}.",
            [
                {
                    "loc": ["query", name],
                    "msg": f"Unknown query parameter. Allowed: {known}.",
                    "type": "unknown_parameter",
                }
                for name in unknown
            ],
        )


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route reads, its dependencies' included (e.g. `PageDep`)."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.update(param.alias for param in current.query_params)
        stack.extend(current.dependencies)
    return frozenset(names)


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = _query_names(self.dependant)

        async def route_handler(request: Request) -> Response:
            checked = _Request(request.scope, request.receive)
            check_parameters(checked, allowed)
            await checked.check_text()
            return await handler(checked)

        return route_handler


def api_router(tag: str) -> APIRouter:
    """A feature's router under /api/v1/applications/{client_id}.

    `strict_content_type=False`: a body sent without `Content-Type` is read as JSON (another
    non-JSON type is a 415 from the request middleware)."""
    return APIRouter(
        route_class=JSONRoute,
        tags=[tag],
        responses=responses(BadRequest, NotAuthenticated, PermissionDenied),
        strict_content_type=False,
    )
