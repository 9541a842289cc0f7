"""SQL of the attributes feature: one profile's values through the shared AttributeContext."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes.expressions import AttributeContext
from profile_groups.attributes.registry import AttributeDef


async def profile_values(
    session: AsyncSession,
    application_id: UUID,
    profile_id: UUID,
    as_of: datetime,
    catalogue: dict[str, AttributeDef],
) -> dict[str, Any] | None:
    """Every catalogue attribute's SQL value for one profile (None if there is no such profile).

    The same expressions a rule compiles to, so this explains a profile's group memberships.
    """
    custom = {k: d for k, d in catalogue.items() if d.source == "custom"}
    ctx = AttributeContext(application_id, as_of, custom)
    keys = list(catalogue)
    columns = [ctx.value(catalogue[key]).label(f"v{i}") for i, key in enumerate(keys)]
    stmt = ctx.select(*columns).where(ctx.profile.id == profile_id)
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    return dict(zip(keys, row, strict=True))
