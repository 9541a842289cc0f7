"""Numbers in rule values (docs/segmentation.md, "Rule trees"): a JSON number must be finite as a
double, as everywhere in the API (docs/api.md, "Numbers"). An integer past that range written out
as digits (10^400) is refused with a 400 at its own `loc`, like a profile's or an event's value,
never accepted into a rule (or a 500 where the attribute compares as a double)."""

from typing import Any

from tests.conftest import Api

ROOT = ["body", "rule_tree"]
HUGE = 10**400
BIG_BUT_FINITE = 10**300


def _tree(*leaves: dict[str, Any]) -> dict[str, Any]:
    return {"operator": "AND", "children": [{"operator": "OR", "children": list(leaves)}]}


async def _errors(api: Api, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "invalid"
    return list(r.json()["errors"])


async def test_a_number_beyond_a_double_is_refused_at_its_loc(api: Api) -> None:
    r = await api.post("/custom-attributes/", json={"key": "score", "data_type": "number"})
    assert r.status_code == 201, r.text
    tree = _tree(
        {"attribute": "total_comments_posted", "condition": "greater_than", "value": HUGE},
        # A double-valued attribute: float(10^400) would overflow.
        {"attribute": "quest_completion_rate", "condition": "equals", "value": -HUGE},
        {"attribute": "score", "condition": "between", "value": [0, HUGE]},
        {"attribute": "total_reactions", "condition": "in", "value": [1, HUGE, 2]},
        {"attribute": "score", "condition": "not_in", "value": [HUGE]},
    )
    leaf = [*ROOT, "children", 0, "children"]
    expected = [
        [*leaf, 0, "value"],
        [*leaf, 1, "value"],
        [*leaf, 2, "value", 1],
        [*leaf, 3, "value", 1],
        [*leaf, 4, "value", 0],
    ]
    for path, body in (
        ("/profile-groups/preview/", {"rule_tree": tree}),
        ("/profile-groups/", {"name": "G", "membership_type": "dynamic", "rule_tree": tree}),
    ):
        errors = await _errors(api, path, body)
        assert [e["loc"] for e in errors] == expected, errors
        assert {e["type"] for e in errors} == {"number_type"}
        assert all("finite" in e["msg"] for e in errors), errors
    # Nothing was created.
    assert (await api.get("/profile-groups/")).json()["count"] == 0


async def test_a_large_finite_number_is_accepted(api: Api) -> None:
    tree = _tree(
        {"attribute": "total_comments_posted", "condition": "less_than", "value": BIG_BUT_FINITE},
        {"attribute": "quest_completion_rate", "condition": "less_than", "value": BIG_BUT_FINITE},
        {"attribute": "reward_balance", "condition": "greater_than", "value": -1e308},
    )
    r = await api.post("/profile-groups/preview/", json={"rule_tree": tree, "sample_size": 0})
    assert r.status_code == 200, r.text
