"""The population the cycle and freshness benchmarks share: N profiles of one application with
two custom attributes (`team`, `toxicity_score`), aggregates for 80% of them, about three raw
events per profile over the last 30 days, and 50 dynamic groups of varied rules. Each rule is
also written as plain SQL by `bare_condition`, independently of the service's compiler."""

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from scratch import insert_application
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

TEAMS = ["red", "blue", "green", "gold", "black", "white", "pink", "grey"]
GROUPS = 50


async def seed(engine: AsyncEngine, n: int) -> uuid.UUID:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        app_id = await insert_application(conn, {"team": "string", "toxicity_score": "number"})
        await conn.execute(
            text(
                "INSERT INTO profiles "
                "  (application_id, id, nickname, custom_attributes, created_at) "
                "SELECT :app, gen_random_uuid(), 'p' || g, jsonb_build_object("
                "  'team', (CAST(:teams AS text[]))[1 + g % 8], "
                "  'toxicity_score', round(random()::numeric, 3)), "
                "  CAST(:now AS timestamptz) - (g % 1000) * interval '1 hour' "
                "FROM generate_series(1, :n) g"
            ),
            {"app": app_id, "n": n, "now": now, "teams": TEAMS},
        )
        await conn.execute(
            text(
                "INSERT INTO profile_activity (application_id, profile_id, reactions, "
                "  comments_posted, last_event_at, last_comment_at, last_reaction_at) "
                "SELECT application_id, id, (random() * 10)::int, (random() * 12)::int, "
                "  CAST(:now AS timestamptz) - random() * interval '30 days', "
                "  CAST(:now AS timestamptz) - random() * interval '30 days', "
                "  CAST(:now AS timestamptz) - random() * interval '30 days' "
                "FROM profiles WHERE application_id = :app AND random() < 0.8"
            ),
            {"app": app_id, "now": now},
        )
        await conn.execute(
            text(
                "INSERT INTO events (application_id, profile_id, type, occurred_at) "
                "SELECT p.application_id, p.id, "
                "  (ARRAY['comment_posted', 'reaction_added', 'comment_posted', "
                "         'leaderboard_viewed'])[1 + k % 4], "
                "  CAST(:now AS timestamptz) - interval '1 hour' - random() * interval '30 days' "
                "FROM profiles p "
                "CROSS JOIN LATERAL generate_series(1, abs(hashtext(p.id::text)) % 7) k "
                "WHERE p.application_id = :app"
            ),
            {"app": app_id, "now": now},
        )
        # The seeding's own change marks are not what the benchmarks measure.
        await conn.execute(text("TRUNCATE profile_changes"))
    return app_id


async def vacuum_analyze(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("profiles", "profile_activity", "events", "group_memberships"):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))


# Leaves: (rule leaf, plain SQL of the same condition).
def _leaf(rng: random.Random) -> tuple[dict[str, Any], str]:
    kind = rng.randrange(8)
    k = rng.randrange(1, 10)
    if kind == 0:
        return (
            {
                "attribute": "total_comments_posted",
                "condition": "greater_than_or_equal",
                "value": k,
            },
            f"coalesce(pa.comments_posted, 0) >= {k}",
        )  # fmt: skip
    if kind == 1:
        return (
            {"attribute": "total_reactions", "condition": "greater_than_or_equal", "value": k},
            f"coalesce(pa.reactions, 0) >= {k}",
        )
    if kind in (2, 3):
        days = rng.choice([7, 30])
        attr, col = ("total_comments_posted", "c") if kind == 2 else ("total_reactions", "r")
        k = rng.randrange(1, 3)
        return (
            {"attribute": attr, "condition": "greater_than_or_equal", "value": k,
             "window_days": days},
            f"coalesce(w{days}.{col}, 0) >= {k}",
        )  # fmt: skip
    if kind == 4:
        teams = rng.sample(TEAMS, rng.randrange(1, 4))
        listed = ", ".join(f"'{t}'" for t in teams)
        return (
            {"attribute": "team", "condition": "in", "value": teams},
            f"(p.custom_attributes ->> 'team') IN ({listed})",
        )
    if kind == 5:
        x = round(rng.random(), 2)
        return (
            {"attribute": "toxicity_score", "condition": "greater_than", "value": x},
            f"(p.custom_attributes ->> 'toxicity_score')::numeric > {x}",
        )
    if kind == 6:
        return (
            {"attribute": "has_ever_reacted", "condition": "is", "value": True},
            "coalesce(pa.reactions, 0) > 0",
        )
    d = rng.randrange(1, 30)
    return (
        {"attribute": "last_comment_at", "condition": "within_last_x_days", "value": d},
        f"pa.last_comment_at >= :now - interval '{d} days'",
    )


def rules(count: int = GROUPS, seed: int = 7) -> list[tuple[dict[str, Any], str]]:
    """`count` rule trees (AND of 1-3 OR buckets of 1-2 leaves) with their plain SQL."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        buckets, sql_buckets = [], []
        for _ in range(rng.randrange(1, 4)):
            leaves = [_leaf(rng) for _ in range(rng.randrange(1, 3))]
            buckets.append({"operator": "OR", "children": [leaf for leaf, _ in leaves]})
            sql_buckets.append("(" + " OR ".join(sql for _, sql in leaves) + ")")
        out.append(({"operator": "AND", "children": buckets}, " AND ".join(sql_buckets)))
    return out


def bare_matching_sql(conditions: list[str]) -> str:
    """One hand-written statement computing every rule's matching set in one scan."""
    columns = ", ".join(f"({c}) AS m{i}" for i, c in enumerate(conditions))
    anyone = " OR ".join(f"({c})" for c in conditions)
    windows = " ".join(
        f"LEFT JOIN (SELECT profile_id, count(*) FILTER (WHERE type = 'comment_posted') AS c, "
        f"count(*) FILTER (WHERE type = 'reaction_added') AS r FROM events "
        f"WHERE application_id = :app AND occurred_at >= :now - interval '{d} days' "
        f"AND type IN ('comment_posted', 'reaction_added') GROUP BY profile_id) w{d} "
        f"ON w{d}.profile_id = p.id"
        for d in (7, 30)
    )
    return (
        f"CREATE TEMP TABLE bare_matches AS SELECT p.id, {columns} FROM profiles p "
        "LEFT JOIN profile_activity pa ON pa.application_id = p.application_id "
        f"AND pa.profile_id = p.id {windows} WHERE p.application_id = :app AND ({anyone})"
    )
