"""Rule tree validation: every kind of error, its `loc` inside the tree, the hints.

Validation runs wherever a tree comes in (group create/patch, preview); these tests go through
POST /profile-groups/preview/, which validates exactly like group creation.
"""

from typing import Any

import pytest

from profile_groups.attributes.registry import PLATFORM_ATTRIBUTES
from profile_groups.segmentation.rules import parse_rule_tree
from tests.conftest import Api

ROOT = ["body", "rule_tree"]


def leaf(attribute: str = "total_comments_posted", condition: str = "greater_than",
         value: Any = 3, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {"attribute": attribute, "condition": condition, "value": value, **extra}


def tree(*children: Any, operator: str = "AND") -> dict[str, Any]:
    return {"operator": operator, "children": list(children)}


async def errors_of(api: Api, rule_tree: Any) -> list[dict[str, Any]]:
    r = await api.post("/profile-groups/preview/", json={"rule_tree": rule_tree})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_code"] == "invalid"
    assert body["detail"].startswith("Invalid rule tree: ")
    return list(body["errors"])


async def one_error(api: Api, rule_tree: Any) -> dict[str, Any]:
    errors = await errors_of(api, rule_tree)
    assert len(errors) == 1, errors
    return errors[0]


async def test_the_contract_example_is_valid(api: Api) -> None:
    example = tree(
        tree(
            leaf("total_comments_posted", "greater_than", 32),
            leaf("has_ever_commented", "is", True),
            operator="OR",
        ),
        tree(leaf("total_comments_posted", "greater_than", 10, window_days=7), operator="OR"),
    )
    r = await api.post("/profile-groups/preview/", json={"rule_tree": example})
    assert r.status_code == 200, r.text


async def test_unknown_key_in_a_leaf_says_which_was_meant(api: Api) -> None:
    bad = tree(tree(leaf(), {"attribute": "nickname", "condtion": "equals", "value": "x"}))
    err = await one_error(api, bad)
    assert err["loc"] == [*ROOT, "children", 0, "children", 1, "condtion"]
    assert err["type"] == "extra_forbidden"
    assert "did you mean 'condition'?" in err["msg"]


async def test_unknown_key_in_an_inner_node_says_which_was_meant(api: Api) -> None:
    err = await one_error(api, {"operator": "AND", "childern": [leaf()]})
    assert err["loc"] == [*ROOT, "childern"]
    assert "did you mean 'children'?" in err["msg"]
    err = await one_error(api, {"opertor": "OR", "children": [leaf()]})
    assert err["loc"] == [*ROOT, "opertor"]
    assert "did you mean 'operator'?" in err["msg"]


async def test_an_unrelated_key_lists_the_allowed_keys(api: Api) -> None:
    err = await one_error(api, tree({**leaf(), "zzz": 1}))
    assert err["loc"] == [*ROOT, "children", 0, "zzz"]
    assert "allowed keys: attribute, condition, value, window_days" in err["msg"]


async def test_missing_fields(api: Api) -> None:
    errors = await errors_of(api, tree({"attribute": "nickname"}, {"operator": "OR"}))
    locs = {tuple(e["loc"]): e["type"] for e in errors}
    assert locs == {
        (*ROOT, "children", 0, "condition"): "missing",
        (*ROOT, "children", 0, "value"): "missing",
        (*ROOT, "children", 1, "children"): "missing",
    }


async def test_unknown_attribute_with_hint(api: Api) -> None:
    err = await one_error(api, tree(leaf("total_coments_posted")))
    assert err["loc"] == [*ROOT, "children", 0, "attribute"]
    assert err["type"] == "unknown_attribute"
    assert "did you mean 'total_comments_posted'?" in err["msg"]
    err = await one_error(api, tree(leaf("qqqqqqq")))
    assert "Unknown attribute 'qqqqqqq'" in err["msg"]


async def test_condition_not_allowed_names_the_allowed_ones(api: Api) -> None:
    err = await one_error(api, tree(leaf("total_comments_posted", "contains", "x")))
    assert err["loc"] == [*ROOT, "children", 0, "condition"]
    assert err["type"] == "condition_not_allowed"
    allowed = PLATFORM_ATTRIBUTES["total_comments_posted"].conditions
    assert ", ".join(allowed) in err["msg"]
    assert "(number)" in err["msg"]


async def test_unknown_condition_with_hint(api: Api) -> None:
    err = await one_error(api, tree(leaf("total_comments_posted", "greater_then", 3)))
    assert err["loc"] == [*ROOT, "children", 0, "condition"]
    assert err["type"] == "unknown_condition"
    assert "did you mean 'greater_than'?" in err["msg"]


@pytest.mark.parametrize(
    ("node", "loc_tail", "words"),
    [
        (leaf("total_comments_posted", "greater_than", "3"), ["value"], "Expected a number"),
        (leaf("total_comments_posted", "greater_than", True), ["value"], "Expected a number"),
        (leaf("nickname", "equals", 3), ["value"], "Expected a string"),
        (leaf("nickname", "contains", "x" * 2001), ["value"], "at most 2000 characters"),
        (leaf("last_comment_at", "after", "yesterday"), ["value"], "ISO 8601"),
        (leaf("last_comment_at", "before", 1700000000), ["value"], "ISO 8601"),
        (leaf("last_comment_at", "before", "0001-01-01T00:00:00+01:00"), ["value"], "ISO 8601"),
        (leaf("has_ever_commented", "is", "true"), ["value"], "true or false"),
        (leaf("nickname", "is_empty", 1), ["value"], "true or false"),
        (leaf("total_reactions", "between", [5, 1]), ["value"], "low <= high"),
        (leaf("total_reactions", "between", [1]), ["value"], "[low, high]"),
        (leaf("total_reactions", "between", [1, "x"]), ["value", 1], "Expected a number"),
        (leaf("nickname", "in", []), ["value"], "list of 1 to 1000"),
        (leaf("nickname", "in", ["a"] * 1001), ["value"], "list of 1 to 1000"),
        (leaf("nickname", "not_in", ["a", 2]), ["value", 1], "Expected a string"),
        (leaf("last_active_at", "within_last_x_days", 3651), ["value"], "0 to 3650"),
        (leaf("last_active_at", "within_last_x_days", 1.5), ["value"], "0 to 3650"),
        (leaf(window_days=0), ["window_days"], "1 to 365"),
        (leaf(window_days=366), ["window_days"], "1 to 365"),
        (leaf(window_days="7"), ["window_days"], "1 to 365"),
        (leaf("last_comment_at", "after", "2025-01-01T00:00:00Z", window_days=7),
         ["window_days"], "does not support 'window_days'"),
        (leaf("reward_balance", window_days=7), ["window_days"], "does not support"),
    ],
)  # fmt: skip
async def test_values_are_checked_against_the_condition_and_type(
    api: Api, node: dict[str, Any], loc_tail: list[Any], words: str
) -> None:
    err = await one_error(api, tree(tree(node, operator="OR")))
    assert err["loc"] == [*ROOT, "children", 0, "children", 0, *loc_tail]
    assert words in err["msg"], err["msg"]
    assert node["attribute"] in err["msg"] or loc_tail == ["window_days"]


async def test_operator_must_be_and_or_or(api: Api) -> None:
    err = await one_error(api, tree(leaf(), operator="and"))
    assert err["loc"] == [*ROOT, "operator"]
    assert "did you mean 'AND'" in err["msg"]
    err = await one_error(api, tree(leaf(), operator="XOR"))
    assert err["type"] == "enum"


async def test_children_limits(api: Api) -> None:
    err = await one_error(api, tree())
    assert err["loc"] == [*ROOT, "children"]
    assert "1 to 50" in err["msg"]
    err = await one_error(api, tree(*[leaf()] * 51))
    assert err["loc"] == [*ROOT, "children"]
    assert "(got 51)" in err["msg"]
    r = await api.post("/profile-groups/preview/", json={"rule_tree": tree(*[leaf()] * 50)})
    assert r.status_code == 200
    err = await one_error(api, {"operator": "AND", "children": {"a": 1}})
    assert err["type"] == "list_type"


async def test_depth_limit(api: Api) -> None:
    five = tree(tree(tree(tree(leaf()))))  # four inner levels and the leaf: 5 levels
    r = await api.post("/profile-groups/preview/", json={"rule_tree": five})
    assert r.status_code == 200, r.text
    err = await one_error(api, tree(five))
    assert err["loc"] == [*ROOT, *["children", 0] * 5]
    assert err["type"] == "too_deep"
    assert "at most 5 levels" in err["msg"]


async def test_leaf_limit(api: Api) -> None:
    hundred = tree(*[tree(*[leaf()] * 50)] * 2)
    r = await api.post("/profile-groups/preview/", json={"rule_tree": hundred})
    assert r.status_code == 200, r.text
    err = await one_error(api, tree(*[tree(*[leaf()] * 50)] * 2, leaf()))
    assert err["loc"] == ROOT
    assert err["type"] == "too_many_leaves"
    assert "at most 100 leaves (this one has 101)" in err["msg"]


async def test_node_shape_errors(api: Api) -> None:
    err = await one_error(api, tree(5))
    assert err["loc"] == [*ROOT, "children", 0]
    assert err["type"] == "invalid_type"
    err = await one_error(api, tree({**leaf(), "operator": "AND"}))
    assert err["type"] == "invalid_node"
    err = await one_error(api, tree({"foo": 1}))
    assert err["type"] == "invalid_node"
    r = await api.post("/profile-groups/preview/", json={"rule_tree": [leaf()]})
    assert r.status_code == 400


async def test_every_problem_is_reported_at_once(api: Api) -> None:
    bad = tree(
        tree(leaf("total_coments_posted"), leaf("nickname", "contains", 5), operator="OR"),
        tree(leaf(window_days=400), {"attribute": "nickname", "condtion": "equals", "value": "a"},
             operator="OR"),
        operator="ANDD",
    )  # fmt: skip
    errors = await errors_of(api, bad)
    assert [e["loc"] for e in errors] == [
        [*ROOT, "operator"],
        [*ROOT, "children", 0, "children", 0, "attribute"],
        [*ROOT, "children", 0, "children", 1, "value"],
        [*ROOT, "children", 1, "children", 0, "window_days"],
        [*ROOT, "children", 1, "children", 1, "condtion"],
    ]
    r = await api.post("/profile-groups/preview/", json={"rule_tree": bad})
    assert "(and 4 more)" in r.json()["detail"]


async def test_aliases_and_custom_attributes(api: Api, other_tenant: Any) -> None:
    alias = tree(leaf("tier_upragde_count", "greater_than", 0, window_days=30))
    r = await api.post("/profile-groups/preview/", json={"rule_tree": alias})
    assert r.status_code == 200, r.text
    # A custom attribute is usable once defined, with the conditions of its type.
    custom = tree(leaf("toxicity_score", "greater_than", 0.5))
    err = await one_error(api, custom)
    assert err["type"] == "unknown_attribute"
    r = await api.post("/custom-attributes/", json={"key": "toxicity_score", "data_type": "number"})
    assert r.status_code == 201
    r = await api.post("/profile-groups/preview/", json={"rule_tree": custom})
    assert r.status_code == 200, r.text
    err = await one_error(api, tree(leaf("toxicity_score", "contains", "x")))
    assert err["type"] == "condition_not_allowed"
    err = await one_error(api, tree(leaf("toxicity_score", "greater_than", 1, window_days=3)))
    assert err["type"] == "window_not_supported"
    # ...and only in its own application.
    other = Api(api.client, other_tenant)
    r = await other.post("/profile-groups/preview/", json={"rule_tree": custom})
    assert r.status_code == 400


def test_parser_types_values() -> None:
    parsed, errors = parse_rule_tree(
        tree(
            leaf("total_comments_posted", "between", [1, 2.5]),
            leaf("last_comment_at", "after", "2025-04-28T12:16:49"),
            leaf("nickname", "in", ["a", "a", "b"]),
            leaf("tier_upragde_count", "equals", 1),
        ),
        PLATFORM_ATTRIBUTES,
    )
    assert errors == [] and parsed is not None
    assert parsed.attribute_keys == [
        "last_comment_at", "nickname", "tier_upgrade_count", "total_comments_posted"
    ]  # fmt: skip
    leaves = parsed.root.children  # type: ignore[union-attr]
    assert [str(v) for v in leaves[0].value] == ["1", "2.5"]  # type: ignore[union-attr]
    assert leaves[1].value.tzinfo is not None  # type: ignore[union-attr]  # naive = UTC
    assert leaves[2].value == ("a", "b")  # type: ignore[union-attr]


async def test_a_nul_in_a_value_is_refused_with_its_loc(api: Api) -> None:
    # PostgreSQL text cannot hold NUL: every JSON body is checked for it before validation.
    r = await api.post(
        "/profile-groups/preview/",
        json={"rule_tree": tree(tree(leaf("nickname", "equals", "a\x00b"), operator="OR"))},
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["loc"] == [*ROOT, "children", 0, "children", 0, "value"]
