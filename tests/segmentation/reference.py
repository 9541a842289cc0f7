"""A plain-Python reference evaluator of rule trees (docs/segmentation.md), for the property tests.

Written from the contract's table, independent of the compiler: it reads the raw JSON tree and the
attribute values the activity reference (tests/activity/reference.py) computes for one profile.

* "No value": None, or the empty string for string attributes (docs/segmentation.md is_empty).
* Positive conditions never match a missing value; negative ones are their exact complements.
* Substring tests are case-insensitive with `%` and `_` literal (plain `in` / startswith here).
* Numbers compare exactly (JSON numbers as decimals), except float-valued attributes
  (quest_completion_rate, a ratio), which compare as floats.
"""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

ALIASES = {"tier_upragde_count": "tier_upgrade_count"}
NEGATIVE = {
    "not_equals": "equals",
    "not_in": "in",
    "not_contains": "contains",
    "not_within_last_x_days": "within_last_x_days",
}

# (key, window_days) -> value of a windowed attribute for the profile at hand.
Windowed = Callable[[str, int], Any]


def as_datetime(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(value: Any, like: Any) -> Any:
    """A rule's JSON number in the domain of the attribute value it is compared with."""
    if isinstance(like, float):
        return float(value)
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _value_number(x: Any) -> Any:
    if isinstance(x, float):
        return x
    return Decimal(x) if isinstance(x, int) else x


def _missing(x: Any, data_type: str) -> bool:
    return x is None or (data_type == "string" and x == "")


def _positive(cond: str, x: Any, v: Any, data_type: str, as_of: datetime) -> bool:
    if _missing(x, data_type):
        return False
    if data_type == "number":
        x = _value_number(x)

        def conv(raw: Any) -> Any:
            return _number(raw, x)

    elif data_type == "datetime":
        conv = as_datetime
    else:

        def conv(raw: Any) -> Any:
            return raw

    if cond in ("equals", "is"):
        return bool(x == conv(v))
    if cond == "greater_than":
        return bool(x > conv(v))
    if cond == "greater_than_or_equal":
        return bool(x >= conv(v))
    if cond == "less_than":
        return bool(x < conv(v))
    if cond == "less_than_or_equal":
        return bool(x <= conv(v))
    if cond == "between":
        return bool(conv(v[0]) <= x <= conv(v[1]))
    if cond == "in":
        return any(x == conv(item) for item in v)
    if cond == "contains":
        return v.lower() in x.lower()
    if cond == "starts_with":
        return bool(x.lower().startswith(v.lower()))
    if cond == "ends_with":
        return bool(x.lower().endswith(v.lower()))
    if cond == "before":
        return bool(x < as_datetime(v))
    if cond == "after":
        return bool(x > as_datetime(v))
    if cond == "within_last_x_days":
        return bool(x >= as_of - timedelta(days=v))
    raise AssertionError(f"unknown condition {cond}")


def holds(
    node: Mapping[str, Any],
    values: Mapping[str, Any],
    data_types: Mapping[str, str],
    as_of: datetime,
    windowed: Windowed,
) -> bool:
    """Whether the (valid) rule tree `node` holds for a profile with these attribute values."""
    if "operator" in node:
        results = [holds(c, values, data_types, as_of, windowed) for c in node["children"]]
        return all(results) if node["operator"] == "AND" else any(results)
    key = ALIASES.get(node["attribute"], node["attribute"])
    data_type = data_types[key]
    days = node.get("window_days")
    x = values[key] if days is None else windowed(key, days)
    cond, v = node["condition"], node["value"]
    if cond == "is_empty":
        return _missing(x, data_type) is bool(v)
    if cond == "is_not_empty":
        return _missing(x, data_type) is not bool(v)
    if cond in NEGATIVE:
        return not _positive(NEGATIVE[cond], x, v, data_type, as_of)
    return _positive(cond, x, v, data_type, as_of)
