"""Property test of the incremental engine: random profiles and random event sequences, sent in
random chunks, each chunk applied by an incremental round and, at random points, interleaved with
full evaluations. Whatever the interleaving, every group's membership ends equal to a full
evaluation from scratch and to the plain-Python reference, and its profile_count is exact.

PROPERTY_EXAMPLES (default 300) / 6 examples.
"""

from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete

from profile_groups.db import AsyncSessionMaker
from profile_groups.groups import incremental
from profile_groups.groups.repositories.membership import MembershipRepository
from profile_groups.groups.repositories.rulesets import RulesetRepository
from profile_groups.models import ProfileGroup
from profile_groups.segmentation.service import check_tree
from tests.conftest import Api
from tests.factories import application_id
from tests.groups.helpers import member_ids, membership_count
from tests.segmentation.strategies import (
    AS_OF,
    EXAMPLES,
    define_custom,
    expected,
    load,
    profiles_and_events,
    property_settings,
    trees,
)


async def _full(
    sessionmaker: AsyncSessionMaker, app_id: UUID, *, apply: bool
) -> dict[str, set[str]]:
    """Every group's matching set at AS_OF; with `apply`, made its membership (a full
    evaluation)."""
    out = {}
    async with sessionmaker() as session, session.begin():
        for current in await RulesetRepository(session).active_of(app_id):
            checked, errors = await check_tree(session, app_id, current.rule_tree)
            assert checked is not None, errors
            matching = checked.matching(app_id, AS_OF)
            out[str(current.group.id)] = {
                str(r) for r in (await session.execute(matching)).scalars()
            }
            if apply:
                await MembershipRepository(session).replace(current.group, matching, AS_OF)
    return out


@property_settings(max(EXAMPLES // 6, 10))
@given(
    data=profiles_and_events(),
    rule_trees=st.lists(trees(), min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 14), max_size=4),
    full_after=st.lists(st.booleans(), min_size=5, max_size=5),
)
async def test_incremental_updates_equal_a_full_evaluation_and_the_reference(
    api: Api,
    sessionmaker: AsyncSessionMaker,
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    rule_trees: list[dict[str, Any]],
    cuts: list[int],
    full_after: list[bool],
) -> None:
    await define_custom(api)
    app_id = await application_id(sessionmaker, api.tenant)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(ProfileGroup).where(ProfileGroup.application_id == app_id))
    groups = []
    for tree in rule_trees:
        body = {"name": "g", "membership_type": "dynamic", "rule_tree": tree}
        r = await api.post("/profile-groups/", json=body)
        assert r.status_code == 201, r.text
        groups.append((r.json()["id"], tree))
    profiles, evs = data
    # The profiles first (no events), then the events in chunks.
    await load(api, sessionmaker, app_id, profiles, [])
    bounds = sorted({min(c, len(evs)) for c in cuts} | {len(evs)})
    sent: list[dict[str, Any]] = []
    start = 0
    for step, end in enumerate([0, *bounds]):
        chunk = evs[start:end]
        start = end
        if chunk:
            body = [
                {k: v for k, v in e.items() if k != "profile"}
                | {"profile_id": profiles[e["profile"]]["id"]}
                for e in chunk
            ]
            r = await api.post("/events/", json={"events": body})
            assert r.status_code == 200 and r.json()["accepted"] == len(body), r.text
            sent += body
        await incremental.apply_changes(sessionmaker, timeout_ms=60_000, as_of=AS_OF)
        if full_after[step % len(full_after)]:
            await _full(sessionmaker, app_id, apply=True)
    from_scratch = await _full(sessionmaker, app_id, apply=False)
    for group_id, tree in groups:
        members = await member_ids(api, group_id)
        assert members == from_scratch[group_id], tree
        assert members == expected(tree, profiles, sent), tree
        rows, count = await membership_count(sessionmaker, group_id)
        assert rows == count == len(members)
