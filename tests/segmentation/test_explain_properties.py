"""Explain agrees with the reference and with evaluations, on random trees over random profiles
and activity (tests/segmentation/strategies.py): for every profile, `matches` equals the
plain-Python reference's membership and the membership the evaluation's statement
(`matching_many`) computes, and every node's `result` and every leaf's `actual` equal the
reference's for that node (docs/segmentation.md, "Explain").

PROPERTY_EXAMPLES (default 300) scales the number of examples (a third of it here: each example
explains every profile under every tree).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from profile_groups.db import AsyncSessionMaker
from profile_groups.segmentation.rules import parse_rule_tree
from profile_groups.segmentation.schemas import ExplainedGroup, ExplainedLeaf, ExplainedNode
from profile_groups.segmentation.service import CheckedTree, explain, matching_many
from tests.activity.reference import as_json, reference_values, windowed_counts
from tests.conftest import Api
from tests.factories import application_id
from tests.segmentation.reference import ALIASES, holds
from tests.segmentation.strategies import (
    AS_OF,
    CATALOGUE,
    CUSTOM_DEFS,
    DATA_TYPES,
    EXAMPLES,
    define_custom,
    expected,
    load,
    profiles_and_events,
    property_settings,
    trees,
)


class _Reference:
    """The reference's attribute values of one profile, and its verdict on any node."""

    def __init__(self, profile: dict[str, Any], sent: list[dict[str, Any]]) -> None:
        self.events = [
            {**e, "occurred_at": datetime.fromisoformat(e["occurred_at"])}
            for e in sent
            if e["profile_id"] == profile["id"]
        ]
        ref_profile = {**profile, "created_at": datetime.fromisoformat(profile["created_at"])}
        self.values = reference_values(self.events, ref_profile, AS_OF, CUSTOM_DEFS)

    def windowed(self, key: str, days: int) -> Any:
        return windowed_counts(self.events, AS_OF, days)[key]

    def holds(self, node: dict[str, Any]) -> bool:
        return holds(node, self.values, DATA_TYPES, AS_OF, self.windowed)

    def actual(self, leaf: dict[str, Any]) -> Any:
        """The leaf's value in the API's JSON form; an empty string is no value."""
        key = ALIASES.get(leaf["attribute"], leaf["attribute"])
        days = leaf.get("window_days")
        value = self.values[key] if days is None else self.windowed(key, days)
        if value == "" and DATA_TYPES[key] == "string":
            value = None
        return as_json({"v": value})["v"]


def _check_node(raw: dict[str, Any], node: ExplainedNode, ref: _Reference) -> None:
    assert node.result == ref.holds(raw), raw
    if isinstance(node, ExplainedGroup):
        assert node.operator == raw["operator"]
        assert len(node.children) == len(raw["children"])
        for raw_child, child in zip(raw["children"], node.children, strict=True):
            _check_node(raw_child, child, ref)
        return
    assert isinstance(node, ExplainedLeaf)
    assert (node.attribute, node.condition, node.value, node.window_days) == (
        raw["attribute"],
        raw["condition"],
        raw["value"],
        raw.get("window_days"),
    )
    assert node.actual == ref.actual(raw), raw


@property_settings(max(EXAMPLES // 3, 10))
@given(data=profiles_and_events(), rule_trees=st.lists(trees(), min_size=1, max_size=3))
async def test_explain_agrees_with_reference_and_evaluation(
    api: Api,
    sessionmaker: AsyncSessionMaker,
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    rule_trees: list[dict[str, Any]],
) -> None:
    await define_custom(api)
    app_id = await application_id(sessionmaker, api.tenant)
    profiles, evs = data
    sent = await load(api, sessionmaker, app_id, profiles, evs)
    references = {p["id"]: _Reference(p, sent) for p in profiles}
    for tree in rule_trees:
        parsed, errors = parse_rule_tree(tree, CATALOGUE)
        assert parsed is not None, errors
        checked = CheckedTree(parsed, CATALOGUE)
        want = expected(tree, profiles, sent)
        async with sessionmaker() as session:
            rows = await session.execute(matching_many(app_id, AS_OF, [checked]))
            evaluated = {str(row.profile_id) for row in rows}
            assert evaluated == want, tree
            for p in profiles:
                explained = await explain(session, app_id, checked, tree, UUID(p["id"]), AS_OF)
                assert explained is not None
                assert explained.as_of == AS_OF
                assert explained.matches == (p["id"] in want), (tree, p)
                _check_node(tree, explained.tree, references[p["id"]])
