"""The statements segmentation runs itself (read-only): the preview of a tree's matching set and
the explanation of one profile."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Row, bindparam, func
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes.expressions import AttributeContext


async def preview(
    session: AsyncSession, ctx: AttributeContext, condition: ColumnElement[bool], sample_size: int
) -> tuple[int, list[Row[Any]]]:
    """Count of the profiles matching `condition` and a sample, newest profiles first."""
    p = ctx.profile
    if sample_size == 0:
        stmt = ctx.select(func.count()).where(condition)
        return int((await session.execute(stmt)).scalar_one()), []
    # One pass: the window count sees every matching row before LIMIT keeps the sample.
    stmt = (
        ctx.select(p.id, p.nickname, p.custom_id, func.count().over().label("total"))
        .where(condition)
        .order_by(p.created_at.desc(), p.id.desc())
        .limit(bindparam(None, sample_size, type_=Integer()))
    )
    rows = list((await session.execute(stmt)).all())
    return (int(rows[0].total) if rows else 0), rows


async def explain(
    session: AsyncSession, ctx: AttributeContext, columns: Sequence[ColumnElement[Any]]
) -> Row[Any] | None:
    """`columns` (every node's result and leaf value) for the one profile `ctx` is restricted
    to; None when the application has no such profile."""
    row: Row[Any] | None = (await session.execute(ctx.select(*columns))).first()
    return row
