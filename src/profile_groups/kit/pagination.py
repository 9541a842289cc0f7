"""Keyset pagination with opaque, signed cursors and exact counts (docs/api.md).

A page is read with `WHERE (k1, k2) < (:k1, :k2) ORDER BY k1 DESC, k2 DESC LIMIT n + 1`, so a deep
page costs the same as the first. The cursor carries the boundary key and the direction and is
HMAC-signed, so a tampered cursor is refused with a 400 instead of silently reading garbage.

The one way to serve a list: the route takes `PageDep`, its service reads a `Paged` with
`paginate` (SQL) or `paginate_sorted` (a small list in memory), and the route returns
`render(Model, paged)`.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy import ColumnElement, Row, Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from starlette.datastructures import URL

from profile_groups.kit.cursor import CursorCodec, invalid_cursor
from profile_groups.kit.state import state

T = TypeVar("T")
# A sort key of a list: (the SQL expression, the name of its value in a selected row).
Key = tuple[ColumnElement[Any] | InstrumentedAttribute[Any], str]


class Page(BaseModel, Generic[T]):
    """One page of a list (docs/api.md, "Pagination")."""

    count: int = Field(description="The exact number of items in the whole list.")
    next: str | None = Field(
        description="The absolute URL of the next page (the same query, with an opaque "
        "`cursor`); null on the last page."
    )
    previous: str | None = Field(
        description="The absolute URL of the previous page; null on the first page."
    )
    results: list[T] = Field(description="The items of this page.")


@dataclass(frozen=True)
class PageRequest:
    """What a list request asks for, and what its `next`/`previous` links are built from."""

    page_size: int
    cursor: str | None
    url: URL
    codec: CursorCodec
    # What a cursor is bound to: the list's route and path parameters (kit/cursor.py).
    binding: str = ""

    def link(self, key: Sequence[Any], forward: bool) -> str:
        # Other query parameters of the list are kept; `cursor` is replaced.
        cursor = self.codec.encode(key, forward=forward, binding=self.binding)
        return str(self.url.include_query_params(cursor=cursor))

    def boundary(self, types: Sequence[type | None]) -> tuple[list[Any] | None, bool]:
        """The decoded cursor: (boundary key or None for the first page, forward).

        `types` are the Python types of the list's sort key (None: not checked). A key of
        another length or type is refused, so no cursor reaches SQL as the wrong type.
        """
        if self.cursor is None:
            return None, True
        key, forward = self.codec.decode(self.cursor, self.binding)
        if len(key) != len(types) or not all(
            t is None or (isinstance(v, t) and not isinstance(v, bool))
            for v, t in zip(key, types, strict=True)
        ):
            raise invalid_cursor()
        return key, forward


def _binding(request: Request) -> str:
    route = request.scope.get("route")
    return json.dumps(
        [getattr(route, "path", request.url.path), sorted(request.path_params.items())]
    )


def _page_request(
    request: Request,
    page_size: Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")] = 20,
    cursor: Annotated[
        str | None, Query(description="Opaque cursor from `next`/`previous`.")
    ] = None,
) -> PageRequest:
    return PageRequest(
        page_size, cursor, request.url, state(request).cursor_codec, _binding(request)
    )


PageDep = Annotated[PageRequest, Depends(_page_request)]


@dataclass(frozen=True)
class Paged(Generic[T]):
    """One page of a list: its rows, the exact count of the whole list and the links."""

    rows: Sequence[T]
    count: int
    next: str | None
    previous: str | None


def _links(
    page: PageRequest,
    rows: Sequence[Any],
    key_of: Callable[[Any], list[Any]],
    *,
    forward: bool,
    has_more: bool,
    first: bool,
) -> tuple[str | None, str | None]:
    next_url = prev_url = None
    if rows:
        if (forward and has_more) or (not forward and not first):
            next_url = page.link(key_of(rows[-1]), forward=True)
        if (forward and not first) or (not forward and has_more):
            prev_url = page.link(key_of(rows[0]), forward=False)
    return next_url, prev_url


async def paginate(
    session: AsyncSession,
    page: PageRequest,
    statement: Select[Any],
    keys: Sequence[Key],
    count: int,
    *,
    entity: bool = False,
    ascending: bool = False,
) -> Paged[Any]:
    """One page of `statement`, newest first by `keys` (descending, unique together), or
    oldest first with `ascending` (a change feed).

    With `entity`, rows are the selected ORM objects; otherwise SQLAlchemy rows.
    """
    boundary, forward = page.boundary([_python_type(expr) for expr, _ in keys])
    stmt = statement
    key_tuple = tuple_(*(expr for expr, _ in keys))
    # Whether this read walks the keys downwards: a forward page of a descending list, or a
    # backward page of an ascending one.
    down = forward != ascending
    if boundary is not None:
        stmt = stmt.where(key_tuple < tuple_(*boundary) if down else key_tuple > tuple_(*boundary))
    order = [expr.desc() if down else expr.asc() for expr, _ in keys]
    stmt = stmt.order_by(*order).limit(page.page_size + 1)
    result = await session.execute(stmt)
    rows = list(result.scalars().all() if entity else result.all())
    has_more = len(rows) > page.page_size
    rows = rows[: page.page_size]
    if not forward:
        rows.reverse()

    def key_of(row: Any) -> list[Any]:
        return [getattr(row, name) for _, name in keys]

    next_url, prev_url = _links(
        page, rows, key_of, forward=forward, has_more=has_more, first=boundary is None
    )
    return Paged(rows, count, next_url, prev_url)


def _python_type(expr: Any) -> type | None:
    try:
        python_type: type = expr.type.python_type
    except (AttributeError, NotImplementedError):
        return None
    return python_type


def paginate_sorted(page: PageRequest, items: Sequence[tuple[str, T]]) -> Paged[T]:
    """One page of a small list held in memory, as (unique text sort key, item) in list order,
    with the same signed cursors as lists read from the database."""
    boundary, forward = page.boundary([str])
    size = page.page_size
    if boundary is None:
        window, has_more = list(items[:size]), len(items) > size
    elif forward:
        after = [i for i in items if i[0] > boundary[0]]
        window, has_more = after[:size], len(after) > size
    else:
        before = [i for i in items if i[0] < boundary[0]]
        window, has_more = before[-size:], len(before) > size
    next_url, prev_url = _links(
        page, window, lambda i: [i[0]], forward=forward, has_more=has_more, first=boundary is None
    )
    return Paged([item for _, item in window], len(items), next_url, prev_url)


@lru_cache(maxsize=64)
def _page_adapter(item: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(Page[item])  # type: ignore[valid-type]


def render(item: type[BaseModel], paged: Paged[Any]) -> Response:
    """Validate the rows once and serialise the page straight to JSON bytes.

    Returning a Response skips FastAPI's second validation of the return value against
    `response_model` (kept on the route for the OpenAPI schema), which on a 1,000-row page costs
    more than the query.
    """
    adapter = _page_adapter(item)
    # Plain dicts validate several times faster than attribute access on SQLAlchemy rows.
    results: Sequence[Any] = paged.rows
    if results and isinstance(results[0], Row):
        names = tuple(results[0]._fields)
        results = [dict(zip(names, r, strict=True)) for r in results]
    page = adapter.validate_python(
        {"count": paged.count, "next": paged.next, "previous": paged.previous, "results": results},
        from_attributes=True,
    )
    return Response(adapter.dump_json(page), media_type="application/json")
