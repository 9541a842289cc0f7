"""Rule trees (docs/segmentation.md): parse a client's JSON tree into typed nodes, reporting every
problem.

The validator walks the raw JSON itself instead of leaning on pydantic's union errors so that each
problem is reported once, at its full path inside the tree, in words that name what is allowed
(the attribute's conditions, the expected value type, the key that was probably meant).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, get_args

from profile_groups.attributes.registry import (
    ALIASES,
    CONDITIONS,
    WINDOW_DAYS_MAX,
    WINDOW_DAYS_MIN,
    AttributeDef,
    Condition,
    resolve,
)
from profile_groups.kit.numbers import is_finite_number
from profile_groups.kit.suggest import closest
from profile_groups.kit.timestamps import parse_timestamp

Operator = Literal["AND", "OR"]
OPERATORS: tuple[Operator, ...] = get_args(Operator)

MAX_CHILDREN = 50
MAX_DEPTH = 5  # levels of nodes, the root being level 1 and leaves included
MAX_LEAVES = 100
MAX_LIST_ITEMS = 1000
MAX_STRING_LENGTH = 2000
MAX_DAYS = 3650

GROUP_KEYS = ("operator", "children")
LEAF_KEYS = ("attribute", "condition", "value", "window_days")

# Each negative condition is the complement of a positive one (docs/segmentation.md).
NEGATIONS: dict[Condition, Condition] = {
    "not_equals": "equals",
    "not_in": "in",
    "not_contains": "contains",
    "not_within_last_x_days": "within_last_x_days",
    "is_not_empty": "is_empty",
}

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Leaf:
    """A condition on one attribute; `value` parsed: Decimal, datetime, str, bool, int or tuple."""

    attribute: AttributeDef
    condition: Condition
    value: Any
    window_days: int | None = None


@dataclass(frozen=True)
class Group:
    operator: Operator
    children: tuple["Node", ...]


Node = Leaf | Group


@dataclass
class ParsedTree:
    root: Node
    # Canonical keys of the attributes the tree reads.
    attribute_keys: list[str]


@dataclass
class _Walker:
    catalogue: Mapping[str, AttributeDef]
    errors: list[dict[str, Any]] = field(default_factory=list)
    leaves: int = 0
    keys: set[str] = field(default_factory=set)

    def error(self, loc: Loc, msg: str, type_: str) -> None:
        self.errors.append({"loc": list(loc), "msg": msg, "type": type_})

    # Nodes ---------------------------------------------------------------------------------

    def node(self, raw: Any, loc: Loc, depth: int) -> Node | None:
        if not isinstance(raw, dict):
            self.error(
                loc,
                "Expected a rule node: an object with 'operator' and 'children', or a leaf with "
                "'attribute', 'condition' and 'value'.",
                "invalid_type",
            )
            return None
        if depth > MAX_DEPTH:
            self.error(loc, f"A rule tree may nest at most {MAX_DEPTH} levels deep.", "too_deep")
            return None
        has_group = any(k in raw for k in GROUP_KEYS)
        has_leaf = any(k in raw for k in LEAF_KEYS)
        if has_group and has_leaf:
            self.error(
                loc,
                "A node is either an inner node ('operator', 'children') or a leaf ('attribute', "
                "'condition', 'value'), not both.",
                "invalid_node",
            )
            return None
        if not has_group and not has_leaf:
            # Only unknown keys: guess the kind from what they most resemble.
            has_group = self._resembles(raw, GROUP_KEYS) > self._resembles(raw, LEAF_KEYS)
            if not any(self._suggest(k, (*GROUP_KEYS, *LEAF_KEYS)) for k in raw):
                self.error(
                    loc,
                    "Expected a rule node: an object with 'operator' and 'children', or a leaf "
                    "with 'attribute', 'condition' and 'value'.",
                    "invalid_node",
                )
                return None
        if has_group:
            return self.group(raw, loc, depth)
        return self.leaf(raw, loc)

    @staticmethod
    def _suggest(word: str, options: Iterable[str]) -> str | None:
        return closest(word, options)

    def _resembles(self, raw: dict[str, Any], keys: Sequence[str]) -> int:
        return sum(1 for k in raw if self._suggest(str(k), keys))

    def _unknown_keys(self, raw: dict[str, Any], loc: Loc, allowed: Sequence[str]) -> set[str]:
        """Report keys outside `allowed`; return the allowed keys they were probably meant as."""
        meant: set[str] = set()
        for key in raw:
            if key in allowed:
                continue
            guess = self._suggest(str(key), [a for a in allowed if a not in raw])
            if guess is not None:
                meant.add(guess)
                msg = f"Unknown key '{key}'; did you mean '{guess}'?"
            else:
                msg = f"Unknown key '{key}'; allowed keys: {', '.join(allowed)}."
            self.error((*loc, str(key)), msg, "extra_forbidden")
        return meant

    def _missing(self, raw: dict[str, Any], loc: Loc, key: str, meant: set[str]) -> bool:
        """True (and an error, unless a misspelt key already explains it) when `key` is absent."""
        if key in raw:
            return False
        if key not in meant:
            self.error((*loc, key), "This field is required.", "missing")
        return True

    def group(self, raw: dict[str, Any], loc: Loc, depth: int) -> Group | None:
        meant = self._unknown_keys(raw, loc, GROUP_KEYS)
        operator: Operator | None = None
        if not self._missing(raw, loc, "operator", meant):
            op = raw["operator"]
            if op in OPERATORS:
                operator = op
            else:
                hint = (
                    f" (did you mean '{op.upper()}'?)"
                    if isinstance(op, str) and op.upper() in OPERATORS
                    else ""
                )
                self.error((*loc, "operator"), f"Operator must be 'AND' or 'OR'{hint}.", "enum")
        children: list[Node] = []
        ok = True
        if not self._missing(raw, loc, "children", meant):
            items = raw["children"]
            if not isinstance(items, list):
                self.error(
                    (*loc, "children"),
                    f"Expected a list of 1 to {MAX_CHILDREN} rule nodes.",
                    "list_type",
                )
                ok = False
            else:
                if not 1 <= len(items) <= MAX_CHILDREN:
                    self.error(
                        (*loc, "children"),
                        f"An inner node needs 1 to {MAX_CHILDREN} children (got {len(items)}).",
                        "too_short" if not items else "too_long",
                    )
                    ok = False
                for i, item in enumerate(items):
                    child = self.node(item, (*loc, "children", i), depth + 1)
                    if child is None:
                        ok = False
                    else:
                        children.append(child)
        else:
            ok = False
        if operator is None or not ok:
            return None
        return Group(operator, tuple(children))

    def leaf(self, raw: dict[str, Any], loc: Loc) -> Leaf | None:
        self.leaves += 1
        meant = self._unknown_keys(raw, loc, LEAF_KEYS)
        attr = self._attribute(raw, loc, meant)
        condition = self._condition(raw, loc, meant, attr)
        window = self._window(raw, loc, attr)
        value: Any = None
        value_ok = False
        if not self._missing(raw, loc, "value", meant) and attr is not None and condition:
            value, value_ok = self._value(raw["value"], (*loc, "value"), attr, condition)
        if attr is None or condition is None or not value_ok or window is False:
            return None
        self.keys.add(attr.key)
        # `window` is True when absent (bool is an int subclass: test for it first).
        return Leaf(attr, condition, value, None if isinstance(window, bool) else window)

    # Leaf parts -----------------------------------------------------------------------------

    def _attribute(self, raw: dict[str, Any], loc: Loc, meant: set[str]) -> AttributeDef | None:
        if self._missing(raw, loc, "attribute", meant):
            return None
        key = raw["attribute"]
        where = (*loc, "attribute")
        if not isinstance(key, str):
            self.error(where, "Expected an attribute key (a string).", "string_type")
            return None
        attr = self.catalogue.get(resolve(key))
        if attr is None:
            guess = self._suggest(key, [*self.catalogue, *ALIASES])
            hint = (
                f"; did you mean '{guess}'?" if guess else " (see GET /profile-group-attributes/)."
            )
            self.error(where, f"Unknown attribute '{key}'{hint}", "unknown_attribute")
        return attr

    def _condition(
        self, raw: dict[str, Any], loc: Loc, meant: set[str], attr: AttributeDef | None
    ) -> Condition | None:
        if self._missing(raw, loc, "condition", meant):
            return None
        cond = raw["condition"]
        where = (*loc, "condition")
        allowed: Sequence[str] = attr.conditions if attr is not None else CONDITIONS
        if not isinstance(cond, str):
            self.error(where, f"Expected a condition, one of: {', '.join(allowed)}.", "string_type")
            return None
        if cond not in CONDITIONS:
            guess = self._suggest(cond, allowed)
            hint = f"did you mean '{guess}'? " if guess else ""
            self.error(
                where,
                f"Unknown condition '{cond}'; {hint}allowed"
                + (f" for '{attr.key}'" if attr is not None else "")
                + f": {', '.join(allowed)}.",
                "unknown_condition",
            )
            return None
        if attr is not None and cond not in attr.conditions:
            self.error(
                where,
                f"Condition '{cond}' does not apply to '{attr.key}' ({attr.data_type}); allowed: "
                f"{', '.join(attr.conditions)}.",
                "condition_not_allowed",
            )
            return None
        return cond

    def _window(self, raw: dict[str, Any], loc: Loc, attr: AttributeDef | None) -> int | bool:
        """The window in days, True when absent, False when invalid."""
        days = raw.get("window_days")
        if days is None:
            return True
        where = (*loc, "window_days")
        if attr is not None and not attr.supports_window:
            self.error(
                where,
                f"'{attr.key}' does not support 'window_days' (only attributes whose catalogue "
                "entry has supports_window do).",
                "window_not_supported",
            )
            return False
        if not _is_int(days) or not WINDOW_DAYS_MIN <= days <= WINDOW_DAYS_MAX:
            self.error(
                where,
                f"Expected an integer number of days from {WINDOW_DAYS_MIN} to {WINDOW_DAYS_MAX}.",
                "window_days",
            )
            return False
        return int(days)

    def _value(self, raw: Any, where: Loc, attr: AttributeDef, cond: Condition) -> tuple[Any, bool]:
        dtype = attr.data_type
        what = f"for '{attr.key}' with '{cond}'"
        if cond in ("is_empty", "is_not_empty", "is"):
            if isinstance(raw, bool):
                return raw, True
            return self._bad(where, f"Expected true or false {what}.", "bool_type")
        if cond in ("within_last_x_days", "not_within_last_x_days"):
            if _is_int(raw) and 0 <= raw <= MAX_DAYS:
                return int(raw), True
            return self._bad(
                where,
                f"Expected an integer number of days from 0 to {MAX_DAYS} {what}.",
                "int_type",
            )
        if cond == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                return self._bad(
                    where, f"Expected [low, high], two {_type_name(dtype)}s, {what}.", "between"
                )
            low, ok_low = self._scalar(raw[0], (*where, 0), dtype, what)
            high, ok_high = self._scalar(raw[1], (*where, 1), dtype, what)
            if not (ok_low and ok_high):
                return None, False
            if low > high:
                return self._bad(where, f"Expected low <= high in [low, high] {what}.", "between")
            return (low, high), True
        if cond in ("in", "not_in"):
            if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LIST_ITEMS:
                return self._bad(
                    where,
                    f"Expected a list of 1 to {MAX_LIST_ITEMS} {_type_name(dtype)}s {what}.",
                    "list_type",
                )
            items = [self._scalar(item, (*where, i), dtype, what) for i, item in enumerate(raw)]
            if not all(ok for _, ok in items):
                return None, False
            return tuple(dict.fromkeys(v for v, _ in items)), True
        if cond in ("before", "after"):
            return self._scalar(raw, where, "datetime", what)
        return self._scalar(raw, where, dtype, what)

    def _scalar(self, raw: Any, where: Loc, dtype: str, what: str) -> tuple[Any, bool]:
        if dtype == "number":
            # Finite as a double, as every number the API takes (docs/api.md): 10^400 written
            # out as digits is no more a number here than NaN is.
            if is_finite_number(raw):
                return _decimal(raw), True
            return self._bad(
                where,
                f"Expected a number {what} (finite: within the range of a double).",
                "number_type",
            )
        if dtype == "string":
            # PostgreSQL text cannot hold NUL, so such a value could never match anything stored.
            if isinstance(raw, str) and len(raw) <= MAX_STRING_LENGTH and "\x00" not in raw:
                return raw, True
            return self._bad(
                where,
                f"Expected a string of at most {MAX_STRING_LENGTH} characters (no NUL) {what}.",
                "string_type",
            )
        if dtype == "datetime":
            parsed = parse_timestamp(raw)
            if parsed is not None:
                return parsed, True
            return self._bad(
                where,
                f"Expected an ISO 8601 datetime (e.g. 2025-04-28T12:16:49Z) {what}.",
                "datetime_type",
            )
        if isinstance(raw, bool):
            return raw, True
        return self._bad(where, f"Expected true or false {what}.", "bool_type")

    def _bad(self, where: Loc, msg: str, type_: str) -> tuple[None, bool]:
        self.error(where, msg, type_)
        return None, False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decimal(value: int | float) -> Decimal:
    # repr() is the shortest round-tripping form: 0.1 stays 0.1, as the JSON said it.
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _type_name(dtype: str) -> str:
    return {"number": "number", "string": "string", "datetime": "ISO 8601 datetime"}.get(
        dtype, "value"
    )


def parse_rule_tree(
    raw: Any,
    catalogue: Mapping[str, AttributeDef],
    loc: Sequence[str | int] = ("body", "rule_tree"),
) -> tuple[ParsedTree | None, list[dict[str, Any]]]:
    """The typed tree, or None and every problem found (each with its full `loc`)."""
    walker = _Walker(catalogue)
    root = walker.node(raw, tuple(loc), 1)
    if walker.leaves > MAX_LEAVES:
        walker.error(
            tuple(loc),
            f"A rule tree may have at most {MAX_LEAVES} leaves (this one has {walker.leaves}).",
            "too_many_leaves",
        )
    if walker.errors or root is None:
        return None, walker.errors
    return ParsedTree(root, sorted(walker.keys)), []


def windows_of(node: Node) -> dict[int, set[str]]:
    """{window_days: canonical keys} of the windowed leaves of a parsed tree."""
    out: dict[int, set[str]] = {}
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Group):
            stack.extend(current.children)
        elif current.window_days is not None:
            out.setdefault(current.window_days, set()).add(resolve(current.attribute.key))
    return out


def referenced_keys(raw: Any) -> set[str]:
    """Canonical attribute keys named anywhere in a stored tree (valid or not)."""
    out: set[str] = set()
    stack = [raw]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("attribute"), str):
                out.add(resolve(node["attribute"]))
            children = node.get("children")
            if isinstance(children, list):
                stack.extend(children)
    return out
