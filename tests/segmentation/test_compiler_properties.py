"""The main guard of the rule compiler: random profiles with random custom attributes and
activity, random rule trees over the whole catalogue, evaluated by the compiler in PostgreSQL and
by the plain-Python reference evaluator (tests/segmentation/reference.py); the sets must be equal.

Data goes in through the public API (profiles bulk, events), so the attribute values the compiler
reads are the ones the service really maintains (tests/segmentation/strategies.py draws it).

PROPERTY_EXAMPLES (default 300) sets the number of examples.
"""

from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from profile_groups.attributes.expressions import AttributeContext
from profile_groups.db import AsyncSessionMaker
from profile_groups.segmentation.compiler import compile_tree
from profile_groups.segmentation.rules import parse_rule_tree
from tests.conftest import Api
from tests.factories import application_id
from tests.segmentation.strategies import (
    AS_OF,
    CATALOGUE,
    CUSTOM_DEFS,
    EXAMPLES,
    define_custom,
    expected,
    load,
    profiles_and_events,
    property_settings,
    trees,
)


async def _actual(sessionmaker: AsyncSessionMaker, app_id: UUID, tree: dict[str, Any]) -> set[str]:
    parsed, errors = parse_rule_tree(tree, CATALOGUE)
    assert parsed is not None, errors
    ctx = AttributeContext(app_id, AS_OF, CUSTOM_DEFS)
    condition = compile_tree(parsed.root, ctx)
    async with sessionmaker() as session:
        rows = await session.execute(ctx.select(ctx.profile.id).where(condition))
        return {str(pid) for pid in rows.scalars()}


@property_settings(EXAMPLES)
@given(data=profiles_and_events(), rule_trees=st.lists(trees(), min_size=1, max_size=4))
async def test_compiler_matches_reference(
    api: Api,
    sessionmaker: AsyncSessionMaker,
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    rule_trees: list[dict[str, Any]],
) -> None:
    await define_custom(api)
    app_id = await application_id(sessionmaker, api.tenant)
    profiles, evs = data
    sent = await load(api, sessionmaker, app_id, profiles, evs)
    for tree in rule_trees:
        want = expected(tree, profiles, sent)
        actual = await _actual(sessionmaker, app_id, tree)
        assert actual == want, tree
