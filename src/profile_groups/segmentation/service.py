"""The rule language as the rest of the service uses it: validate a tree against an application's
catalogue, turn it into the query of the profiles it matches, and preview that set.

Segmentation knows nothing of groups and writes nothing: the groups feature stores rule trees and
applies the matching set (groups.evaluation).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, ColumnElement, Select, column, false, func, or_, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.attributes.expressions import AttributeContext
from profile_groups.attributes.registry import AttributeDef
from profile_groups.attributes.service import catalogue, json_value
from profile_groups.kit.errors import QUERY_CANCELED, BadRequest, Unavailable, sqlstate
from profile_groups.kit.repository import clock, set_statement_timeout
from profile_groups.segmentation import repository
from profile_groups.segmentation.compiler import CompiledNode, compile_nodes, compile_tree
from profile_groups.segmentation.rules import ParsedTree, parse_rule_tree, windows_of
from profile_groups.segmentation.schemas import (
    ExplainedGroup,
    ExplainedLeaf,
    ExplainedNode,
    Preview,
    PreviewProfile,
    TreeExplanation,
)

BODY_LOC: tuple[str, ...] = ("body", "rule_tree")


def describe(errors: Sequence[dict[str, Any]]) -> str:
    """One sentence for a tree's problems: the first one, and how many more there are."""
    first = errors[0] if errors else {"loc": [], "msg": "Invalid rule tree."}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "rule_tree"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"Invalid rule tree: {where}: {first['msg']}{more}"


@dataclass(frozen=True)
class CheckedTree:
    """A tree valid against an application's catalogue, with the definitions it was checked on."""

    parsed: ParsedTree
    catalogue: dict[str, AttributeDef]

    def compile(
        self, application_id: UUID, as_of: datetime
    ) -> tuple[AttributeContext, ColumnElement[bool]]:
        """The tree as one boolean SQL expression over the application's profiles at `as_of`,
        with the context whose `select()` reads it."""
        ctx = _context(application_id, as_of, [self])
        return ctx, compile_tree(self.parsed.root, ctx)

    def compile_for(
        self, application_id: UUID, as_of: datetime, profile_id: UUID
    ) -> tuple[AttributeContext, CompiledNode]:
        """Every node of the tree compiled over one profile (windows included) at `as_of`: the
        same compiler and context as an incremental evaluation restricted to that profile."""
        ctx = _context(application_id, as_of, [self], [profile_id])
        return ctx, compile_nodes(self.parsed.root, ctx)

    def matching(self, application_id: UUID, as_of: datetime) -> Select[Any]:
        """The query of the profiles the tree holds for at `as_of`: one `profile_id` column."""
        ctx, condition = self.compile(application_id, as_of)
        return ctx.select(ctx.profile.id.label("profile_id")).where(condition)


def _context(
    application_id: UUID,
    as_of: datetime,
    trees: Sequence[CheckedTree],
    profile_ids: Sequence[UUID] | None = None,
) -> AttributeContext:
    """One context for the trees (of one application): each window aggregates only what they
    read."""
    windows: dict[int, set[str]] = {}
    custom: dict[str, AttributeDef] = {}
    for tree in trees:
        for days, keys in windows_of(tree.parsed.root).items():
            windows.setdefault(days, set()).update(keys)
        custom.update((k, a) for k, a in tree.catalogue.items() if a.source == "custom")
    return AttributeContext(application_id, as_of, custom, windows=windows, profile_ids=profile_ids)


def matching_many(
    application_id: UUID,
    as_of: datetime,
    trees: Sequence[CheckedTree],
    *,
    profile_ids: Sequence[UUID] | None = None,
) -> Select[Any]:
    """Every tree's predicate in ONE pass over the application's profiles (and their
    aggregates and windows): `profile_id, custom_id, m0, m1, ...` with `m<i>` true where tree i
    holds (`custom_id` rides along for the change log, which records it with every entry).

    Over all profiles, only rows matching some tree are selected; restricted to `profile_ids`
    (incremental updates), every one of those profiles is, so a profile that matches nothing
    any more is seen too.
    """
    ctx = _context(application_id, as_of, trees, profile_ids)
    conditions = [compile_tree(tree.parsed.root, ctx) for tree in trees]
    stmt = ctx.select(
        ctx.profile.id.label("profile_id"),
        ctx.profile.custom_id.label("custom_id"),
        *(func.coalesce(c, false()).label(f"m{i}") for i, c in enumerate(conditions)),
    )
    return stmt if profile_ids is not None else stmt.where(or_(*conditions))


def matched_in(table_name: str, index: int) -> Select[Any]:
    """The profiles tree `index` matched (profile_id, custom_id), from a table holding
    `matching_many`'s rows."""
    m = table(table_name, column("profile_id"), column("custom_id"), column(f"m{index}", Boolean()))
    return select(m.c.profile_id, m.c.custom_id).where(m.c[f"m{index}"])


async def check_trees(
    session: AsyncSession,
    application_id: UUID,
    trees: Sequence[Any],
    loc: Sequence[str | int] = BODY_LOC,
) -> list[tuple[CheckedTree | None, list[dict[str, Any]]]]:
    """Each tree checked against ONE reading of the application's current catalogue: the checked
    tree, or None and every problem found, each with its full `loc`."""
    defs = await catalogue(session, application_id)
    out: list[tuple[CheckedTree | None, list[dict[str, Any]]]] = []
    for tree in trees:
        parsed, errors = parse_rule_tree(tree, defs, loc)
        out.append(((CheckedTree(parsed, defs) if parsed is not None else None), errors))
    return out


async def check_tree(
    session: AsyncSession,
    application_id: UUID,
    tree: Any,
    loc: Sequence[str | int] = BODY_LOC,
) -> tuple[CheckedTree | None, list[dict[str, Any]]]:
    """One tree checked against the application's current catalogue (see `check_trees`)."""
    (result,) = await check_trees(session, application_id, [tree], loc)
    return result


async def validate_rule_tree(
    session: AsyncSession,
    application_id: UUID,
    tree: Any,
    loc: Sequence[str | int] = BODY_LOC,
) -> CheckedTree:
    """The checked tree, or a 400 listing EVERY problem, each with its full `loc`
    (docs/segmentation.md)."""
    checked, errors = await check_tree(session, application_id, tree, loc)
    if checked is None:
        raise BadRequest(describe(errors), errors)
    return checked


async def preview(
    session: AsyncSession,
    application_id: UUID,
    tree: Any,
    sample_size: int,
    timeout_ms: int,
) -> Preview:
    """Count and sample of the profiles a tree matches now, bounded by a statement timeout."""
    checked = await validate_rule_tree(session, application_id, tree)
    as_of = await clock(session)
    ctx, condition = checked.compile(application_id, as_of)
    try:
        # A savepoint keeps the request's transaction usable after a cancelled statement.
        async with session.begin_nested():
            await set_statement_timeout(session, timeout_ms)
            total, rows = await repository.preview(session, ctx, condition, sample_size)
    except DBAPIError as exc:
        if sqlstate(exc) != QUERY_CANCELED:
            raise
        raise Unavailable(
            f"The preview did not finish within {timeout_ms} ms. The rule can still be saved: "
            "dynamic groups are evaluated in the background."
        ) from exc
    return Preview(
        count=total,
        sample=[PreviewProfile(id=r.id, nickname=r.nickname, custom_id=r.custom_id) for r in rows],
        as_of=as_of,
    )


# Explanation -------------------------------------------------------------------------------


def _preorder(node: CompiledNode) -> list[CompiledNode]:
    out = [node]
    for child in node.children:
        out.extend(_preorder(child))
    return out


async def explain(
    session: AsyncSession,
    application_id: UUID,
    checked: CheckedTree,
    tree: Any,
    profile_id: UUID,
    as_of: datetime,
) -> TreeExplanation | None:
    """Every node of `tree` (as stored; `checked` is its checked form) evaluated for one profile
    at `as_of` in ONE statement; None when the application has no such profile.

    Each node's result is its compiled predicate with NULL read as false, as an evaluation reads
    it (`matching_many`); without NOT, NULL and false are interchangeable inside the tree, so the
    children's results combine into their parent's. `matches` is the root's predicate itself.
    """
    ctx, root = checked.compile_for(application_id, as_of, profile_id)
    nodes = _preorder(root)
    columns: list[ColumnElement[Any]] = []
    for i, node in enumerate(nodes):
        columns.append(func.coalesce(node.predicate, false()).label(f"r{i}"))
        if node.actual is not None:
            columns.append(node.actual.label(f"a{i}"))
    row = await repository.explain(session, ctx, columns)
    if row is None:
        return None
    values = row._mapping
    index = {id(node): i for i, node in enumerate(nodes)}

    def annotate(raw: dict[str, Any], node: CompiledNode) -> ExplainedNode:
        i = index[id(node)]
        result = bool(values[f"r{i}"])
        if node.actual is None:
            return ExplainedGroup(
                operator=raw["operator"],
                result=result,
                children=[
                    annotate(c, n) for c, n in zip(raw["children"], node.children, strict=True)
                ],
            )
        return ExplainedLeaf(
            attribute=raw["attribute"],
            condition=raw["condition"],
            value=raw["value"],
            window_days=raw.get("window_days"),
            actual=json_value(values[f"a{i}"]),
            result=result,
        )

    return TreeExplanation(as_of=as_of, matches=bool(values["r0"]), tree=annotate(tree, root))
