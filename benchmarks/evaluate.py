"""Benchmark: evaluating a dynamic group over 1,000,000 profiles, beside the bare SQL.

Seeds (INSERT … SELECT generate_series, not the API) 1M profiles with a custom attribute, their
activity aggregates and ~5M raw events (60% comments) over the last 14 days. The rule has three
leaves mixing an aggregate, a custom attribute and a windowed count:

    AND( OR(total_reactions >= 8, toxicity_score > 0.9),
         OR(total_comments_posted >= 3 in the last 7 days) )

Timed, each beside the hand-written SQL that computes the same matching set and applies the same
difference to a second group in the same database (same lock, same statements' shape):
1. the first evaluation (empty group -> all matches inserted);
2. a re-evaluation after 1% of the profiles changed (half now match, half no longer do);
3. before either, the first evaluation on the freshly loaded, never-analyzed database, against the
   analyzed one (target: within 3x).

The service path is `groups.evaluation.run_evaluation` (claim, lock, compile, diff, record), as
the worker runs it. Usage:

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres \
    python benchmarks/evaluate.py [--profiles 1000000] [--repeat 3] [--keep]
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, TextClause, bindparam
from sqlalchemy import text as sa_text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scratch import insert_application, scratch_database, url_text

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker, create_engine, create_sessionmaker
from profile_groups.groups import evaluation as service
from profile_groups.groups.repositories.evaluations import EvaluationRepository
from profile_groups.groups.repositories.rulesets import RulesetRepository
from profile_groups.models import ProfileGroup

# How long the bare SQL may run on the never-analyzed database before it is reported as stuck.
NEVER_ANALYZED_LIMIT = 120

RULE: dict[str, Any] = {
    "operator": "AND",
    "children": [
        {
            "operator": "OR",
            "children": [
                {"attribute": "total_reactions", "condition": "greater_than_or_equal", "value": 8},
                {"attribute": "toxicity_score", "condition": "greater_than", "value": 0.9},
            ],
        },
        {
            "operator": "OR",
            "children": [
                {
                    "attribute": "total_comments_posted",
                    "condition": "greater_than_or_equal",
                    "value": 3,
                    "window_days": 7,
                }
            ],
        },
    ],
}

# The same matching set and difference, written by hand.
BARE_SQL = """
WITH matched AS MATERIALIZED (
    SELECT p.id AS profile_id
    FROM profiles p
    LEFT JOIN profile_activity pa ON pa.application_id = p.application_id AND pa.profile_id = p.id
    LEFT JOIN (
        SELECT profile_id, count(*) AS comments
        FROM events
        WHERE application_id = :app AND occurred_at >= :cutoff AND type = 'comment_posted'
        GROUP BY profile_id
    ) w ON w.profile_id = p.id
    WHERE p.application_id = :app
      AND (coalesce(pa.reactions, 0) >= 8
           OR (CASE WHEN jsonb_typeof(p.custom_attributes -> 'toxicity_score') = 'number'
               THEN (p.custom_attributes ->> 'toxicity_score')::numeric END) > 0.9)
      AND coalesce(w.comments, 0) >= 3
),
current_members AS MATERIALIZED (
    SELECT profile_id FROM group_memberships WHERE group_id = :group
),
diff AS MATERIALIZED (
    SELECT coalesce(m.profile_id, c.profile_id) AS profile_id, c.profile_id IS NULL AS is_new
    FROM matched m FULL JOIN current_members c ON c.profile_id = m.profile_id
    WHERE m.profile_id IS NULL OR c.profile_id IS NULL
),
removed AS (
    DELETE FROM group_memberships gm USING diff d
    WHERE gm.group_id = :group AND gm.profile_id = d.profile_id AND NOT d.is_new
    RETURNING gm.profile_id
),
added AS (
    INSERT INTO group_memberships (group_id, profile_id, application_id, created_at)
    SELECT :group, d.profile_id, :app, :as_of FROM diff d WHERE d.is_new
    ON CONFLICT DO NOTHING
    RETURNING group_memberships.profile_id
)
SELECT (SELECT count(*) FROM matched), (SELECT count(*) FROM added), (SELECT count(*) FROM removed)
"""


def text(sql: str) -> TextClause:
    """SQL text whose timestamp parameters are typed (asyncpg needs to know)."""
    clause = sa_text(sql)
    typed = [
        bindparam(name, type_=DateTime(timezone=True))
        for name in ("now", "cutoff", "as_of")
        if f":{name}" in sql
    ]
    return clause.bindparams(*typed) if typed else clause


async def seed(engine: AsyncEngine, n: int) -> uuid.UUID:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        app_id = await insert_application(conn, {"toxicity_score": "number"})
        await conn.execute(
            text(
                "INSERT INTO profiles "
                "  (application_id, id, nickname, custom_attributes, created_at) "
                "SELECT :app, gen_random_uuid(), 'p' || g, "
                "  CASE WHEN g % 10 = 0 THEN '{}'::jsonb "
                "  ELSE jsonb_build_object('toxicity_score', round(random()::numeric, 3)) END, "
                "  :now - (g % 1000) * interval '1 hour' "
                "FROM generate_series(1, :n) g"
            ),
            {"app": app_id, "n": n, "now": now},
        )
        # Aggregates for 80% of profiles (the rest never did anything).
        await conn.execute(
            text(
                "INSERT INTO profile_activity (application_id, profile_id, reactions, "
                "  comments_posted, last_event_at, last_comment_at, last_reaction_at) "
                "SELECT application_id, id, (random() * 10)::int, (random() * 6)::int, "
                "  :now - interval '1 day', :now - interval '1 day', :now - interval '2 days' "
                "FROM profiles WHERE application_id = :app AND random() < 0.8"
            ),
            {"app": app_id, "now": now},
        )
        # 0-10 events per profile over the last 14 days (5 on average; 60% comments, the rest
        # reactions and leaderboard views), at whole days plus 12 hours: none is near the 7-day
        # cutoff, so both paths see the same window however far apart they run.
        await conn.execute(
            text(
                "INSERT INTO events (application_id, profile_id, type, occurred_at) "
                "SELECT p.application_id, p.id, "
                "  (ARRAY['comment_posted', 'reaction_added', 'comment_posted', "
                "         'leaderboard_viewed', 'comment_posted'])[1 + k % 5], "
                "  :now - interval '12 hours' - floor(random() * 14) * interval '1 day' "
                "FROM profiles p "
                "CROSS JOIN LATERAL generate_series(1, abs(hashtext(p.id::text)) % 11) k "
                "WHERE p.application_id = :app"
            ),
            {"app": app_id, "now": now},
        )
    return app_id


async def vacuum_analyze(engine: AsyncEngine) -> None:
    """What autovacuum does on a production server (this machine's runs without it)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("profiles", "profile_activity", "events", "group_memberships"):
            await conn.execute(text(f"VACUUM ANALYZE {table}"))


async def change_one_percent(engine: AsyncEngine, app_id: uuid.UUID) -> None:
    """1% of profiles change: half get new comments and high toxicity, half lose both."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TEMP TABLE changed ON COMMIT DROP AS "
                "SELECT id, row_number() OVER () % 2 = 0 AS up FROM profiles "
                "WHERE application_id = :app ORDER BY random() LIMIT "
                "(SELECT count(*) / 100 FROM profiles WHERE application_id = :app)"
            ),
            {"app": app_id},
        )
        await conn.execute(
            text(
                "UPDATE profiles p SET custom_attributes = jsonb_build_object("
                "  'toxicity_score', CASE WHEN c.up THEN 0.99 ELSE 0.01 END), updated_at = :now "
                "FROM changed c WHERE p.application_id = :app AND p.id = c.id"
            ),
            {"app": app_id, "now": now},
        )
        await conn.execute(
            text(
                "UPDATE profile_activity pa SET reactions = CASE WHEN c.up THEN 9 ELSE 0 END "
                "FROM changed c WHERE pa.application_id = :app AND pa.profile_id = c.id"
            ),
            {"app": app_id},
        )
        await conn.execute(
            text(
                "INSERT INTO events (application_id, profile_id, type, occurred_at) "
                "SELECT :app, c.id, 'comment_posted', :now - interval '1 hour' "
                "FROM changed c, generate_series(1, 3) WHERE c.up"
            ),
            {"app": app_id, "now": now},
        )
        await conn.execute(
            text(
                "DELETE FROM events e USING changed c WHERE e.application_id = :app "
                "AND e.profile_id = c.id AND NOT c.up"
            ),
            {"app": app_id},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("profiles", "profile_activity", "events", "group_memberships"):
            await conn.execute(text(f"ANALYZE {table}"))


async def make_group(sessionmaker: AsyncSessionMaker, app_id: uuid.UUID, name: str) -> ProfileGroup:
    async with sessionmaker() as session, session.begin():
        group = ProfileGroup(application_id=app_id, name=name, membership_type="dynamic")
        session.add(group)
        await session.flush()
        await session.refresh(group)
        repo = RulesetRepository(session)
        ruleset = await repo.add_ruleset(group, RULE, ["toxicity_score", "total_comments_posted"])
        await repo.point_at(group, ruleset.id, datetime.now(UTC) + timedelta(hours=1))
    return group


async def service_evaluation(sessionmaker: AsyncSessionMaker, group: ProfileGroup) -> Any:
    async with sessionmaker() as session, session.begin():
        evaluation, _ = await EvaluationRepository(session).request(group.id, "manual")
        assert evaluation is not None
    result = await service.run_evaluation(sessionmaker, evaluation.id, timeout_ms=600_000)
    assert result is not None and result.status == "succeeded", result and result.error
    return (result.matched_count, result.added_count, result.removed_count)


async def bare_evaluation(
    engine: AsyncEngine, app_id: uuid.UUID, group: ProfileGroup, timeout_s: int = 0
) -> Any:
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT set_config('statement_timeout', :v, true)"), {"v": str(timeout_s * 1000)}
        )
        await conn.execute(
            text("SELECT 1 FROM profile_groups WHERE id = :g FOR NO KEY UPDATE"), {"g": group.id}
        )
        # The same per-transaction memory the service gives an evaluation.
        await conn.execute(
            text("SELECT set_config('work_mem', :v, true)"), {"v": service.EVALUATION_WORK_MEM}
        )
        as_of = datetime.now(UTC)
        row = (
            await conn.execute(
                text(BARE_SQL),
                {"app": app_id, "group": group.id, "as_of": as_of,
                 "cutoff": as_of - timedelta(days=7)},
            )
        ).one()  # fmt: skip
        await conn.execute(
            text("UPDATE profile_groups SET profile_count = :n WHERE id = :g"),
            {"n": row[0], "g": group.id},
        )
    return tuple(int(v) for v in row)


async def reset(engine: AsyncEngine, *groups: ProfileGroup) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("DELETE FROM group_memberships WHERE group_id = ANY(:g)"),
            {"g": [g.id for g in groups]},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE group_memberships"))


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await fn()
    return time.perf_counter() - start, result


def line(label: str, ours: float, bare: float, counts: Any) -> None:
    ratio = ours / bare if bare else float("inf")
    print(
        f"{label:<34} service {ours:7.3f} s   bare SQL {bare:7.3f} s   ratio {ratio:5.2f}x   "
        f"(matched, added, removed) = {counts}"
    )


async def main(n: int, repeat: int, keep: bool) -> None:
    async with scratch_database("pg_bench_eval", keep=keep) as url:
        settings = Settings(DATABASE_URL=url_text(url), STATEMENT_TIMEOUT_MS=600_000)
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        t0 = time.perf_counter()
        app_id = await seed(engine, n)
        print(f"seeded {n:,} profiles in {time.perf_counter() - t0:.1f} s")
        ours_group = await make_group(sessionmaker, app_id, "service")
        bare_group = await make_group(sessionmaker, app_id, "bare")

        # Freshly loaded, never analyzed: no planner statistics at all (this machine's
        # PostgreSQL runs without autovacuum; a production one after a bulk load is close).
        t_cold, cold_counts = await timed(lambda: service_evaluation(sessionmaker, ours_group))
        try:
            t_cold_bare, _ = await timed(
                lambda: bare_evaluation(engine, app_id, bare_group, timeout_s=NEVER_ANALYZED_LIMIT)
            )
            cold_bare = f"{t_cold_bare:.3f} s"
        except Exception:
            cold_bare = f"over {NEVER_ANALYZED_LIMIT} s (cancelled)"
        await vacuum_analyze(engine)

        # Warm the caches once so the first timed run is not the one paying for disk reads.
        await bare_evaluation(engine, app_id, bare_group)
        await service_evaluation(sessionmaker, ours_group)

        first_ours, first_bare, counts = [], [], None
        for _ in range(repeat):
            await reset(engine, ours_group, bare_group)
            t_bare, bare_counts = await timed(lambda: bare_evaluation(engine, app_id, bare_group))
            t_ours, counts = await timed(lambda: service_evaluation(sessionmaker, ours_group))
            assert counts == bare_counts, (counts, bare_counts)
            first_bare.append(t_bare)
            first_ours.append(t_ours)
        line("first evaluation (median)", statistics.median(first_ours),
             statistics.median(first_bare), counts)  # fmt: skip
        cold_ratio = t_cold / statistics.median(first_ours)
        print(
            f"first evaluation, never analyzed   service {t_cold:7.3f} s   "
            f"{cold_ratio:.2f}x the analyzed service time   (bare SQL: {cold_bare})   "
            f"{cold_counts}"
        )

        re_ours, re_bare = [], []
        for _ in range(repeat):
            await change_one_percent(engine, app_id)
            t_bare, bare_counts = await timed(lambda: bare_evaluation(engine, app_id, bare_group))
            t_ours, counts = await timed(lambda: service_evaluation(sessionmaker, ours_group))
            assert counts == bare_counts, (counts, bare_counts)
            re_bare.append(t_bare)
            re_ours.append(t_ours)
        line("re-evaluation, 1% changed (median)", statistics.median(re_ours),
             statistics.median(re_bare), counts)  # fmt: skip
        target = (
            statistics.median(first_ours) <= 1.5 * statistics.median(first_bare)
            and statistics.median(re_ours) <= 1.2 * statistics.median(re_bare)
            and cold_ratio <= 3
        )
        print(
            "targets (first within 1.5x of bare SQL, re-evaluation within 1.2x, never analyzed "
            f"within 3x of analyzed): {'met' if target else 'MISSED'}"
        )
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    asyncio.run(main(args.profiles, args.repeat, args.keep))
