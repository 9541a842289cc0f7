"""Rule tree -> one SQL boolean expression over the profile and its aggregates
(docs/segmentation.md).

Every value from the client is a bound parameter; no SQL text is built from input. The semantics:

* A value is *missing* when the attribute's SQL value is NULL, or, for strings, the empty string
  ("no value (unset; empty string)"). Strings are read through NULLIF(x, '') so every
  condition sees the same notion of "missing".
* Positive conditions never match a missing value: SQL comparisons with NULL are NULL, which the
  tree treats as false. Inner nodes are only AND/OR (no NOT), so NULL and false are interchangeable
  inside them.
* A negative condition is the exact complement of its positive form: `x IS NULL OR NOT (positive)`.
  `positive` is never NULL when x is not NULL (every parameter is non-NULL), so this is exact.
* Substring conditions use ILIKE with `%`, `_` and `\\` escaped: case-insensitive, wildcards
  literal.
* Rolling windows (`window_days`, `within_last_x_days`) are measured from the context's `as_of`.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Numeric,
    String,
    and_,
    any_,
    bindparam,
    func,
    not_,
    or_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from profile_groups.attributes.expressions import AttributeContext
from profile_groups.kit.repository import like_escape
from profile_groups.segmentation.rules import NEGATIONS, Group, Leaf, Node

Expr = ColumnElement[Any]


@dataclass(frozen=True)
class CompiledNode:
    """One node of a tree compiled over a context: its boolean SQL and, for a leaf, the SQL of
    the value its condition reads (strings through NULLIF, so an empty string reads NULL).

    `compile_tree` is the root's `predicate`, so whatever selects these columns (the
    explanation of one profile) evaluates exactly what evaluations evaluate.
    """

    node: Node
    predicate: ColumnElement[bool]
    actual: Expr | None = None
    children: tuple["CompiledNode", ...] = ()


def compile_nodes(node: Node, ctx: AttributeContext) -> CompiledNode:
    """Every node of a parsed tree compiled; call before `ctx.from_clause()` (it registers
    windows)."""
    if isinstance(node, Group):
        children = tuple(compile_nodes(child, ctx) for child in node.children)
        parts = [child.predicate for child in children]
        predicate = and_(*parts) if node.operator == "AND" else or_(*parts)
        return CompiledNode(node, predicate, children=children)
    x = _read(node, ctx)
    return CompiledNode(node, _leaf(node, x, ctx), actual=x)


def compile_tree(node: Node, ctx: AttributeContext) -> ColumnElement[bool]:
    """The boolean SQL of a parsed tree. Call before `ctx.from_clause()` (it registers windows)."""
    return compile_nodes(node, ctx).predicate


def _read(leaf: Leaf, ctx: AttributeContext) -> Expr:
    """The value a leaf's condition reads: NULL when it has none (strings: also '')."""
    x = ctx.value(leaf.attribute, leaf.window_days)
    return func.nullif(x, "") if leaf.attribute.data_type == "string" else x


def _leaf(leaf: Leaf, x: Expr, ctx: AttributeContext) -> ColumnElement[bool]:
    positive = NEGATIONS.get(leaf.condition)
    if leaf.condition in ("is_empty", "is_not_empty"):
        # is_empty(true) / is_not_empty(false): no value; the other two: a value.
        empty = bool(leaf.value) == (leaf.condition == "is_empty")
        return x.is_(None) if empty else x.is_not(None)
    if positive is None:
        return _positive(leaf.condition, x, leaf, ctx)
    return or_(x.is_(None), not_(_positive(positive, x, leaf, ctx)))


def _param(value: Any, x: Expr, dtype: str) -> BindParameter[Any]:
    if dtype == "number":
        # Compare in the column's own type: NUMERIC exactly, float8 (a ratio) as float.
        if isinstance(x.type, Float):
            return bindparam(None, float(value), type_=Float())
        return bindparam(None, Decimal(value), type_=Numeric())
    if dtype == "datetime":
        return bindparam(None, value, type_=DateTime(timezone=True))
    if dtype == "boolean":
        return bindparam(None, value, type_=Boolean())
    return bindparam(None, value, type_=String())


def _array(values: tuple[Any, ...], x: Expr, dtype: str) -> BindParameter[Any]:
    if dtype == "number":
        if isinstance(x.type, Float):
            return bindparam(None, [float(v) for v in values], type_=ARRAY(Float()))
        return bindparam(None, list(values), type_=ARRAY(Numeric()))
    return bindparam(None, list(values), type_=ARRAY(String()))


def _like(x: Expr, pattern: str) -> ColumnElement[bool]:
    return x.ilike(bindparam(None, pattern, type_=String()), escape="\\")


def _positive(cond: str, x: Expr, leaf: Leaf, ctx: AttributeContext) -> ColumnElement[bool]:
    dtype = leaf.attribute.data_type
    v = leaf.value
    if cond == "equals" or cond == "is":
        return x == _param(v, x, dtype)
    if cond == "greater_than":
        return x > _param(v, x, dtype)
    if cond == "greater_than_or_equal":
        return x >= _param(v, x, dtype)
    if cond == "less_than":
        return x < _param(v, x, dtype)
    if cond == "less_than_or_equal":
        return x <= _param(v, x, dtype)
    if cond == "between":
        low, high = v
        return and_(x >= _param(low, x, dtype), x <= _param(high, x, dtype))
    if cond == "in":
        return x == any_(_array(v, x, dtype))
    if cond == "contains":
        return _like(x, f"%{like_escape(v)}%")
    if cond == "starts_with":
        return _like(x, f"{like_escape(v)}%")
    if cond == "ends_with":
        return _like(x, f"%{like_escape(v)}")
    if cond == "before":
        return x < _param(v, x, "datetime")
    if cond == "after":
        return x > _param(v, x, "datetime")
    if cond == "within_last_x_days":
        return x >= _param(ctx.as_of - timedelta(days=v), x, "datetime")
    raise ValueError(f"unsupported condition {cond!r}")  # the validator never lets one through
