"""Benchmark: explaining one profile's membership (docs/segmentation.md, "Explain").

Seeds the population of benchmarks/evaluate.py (profiles with a custom attribute, aggregates for
80%, ~5 raw events per profile over 14 days) and times `segmentation.service.explain` (the ONE
statement evaluating every node of the tree for one profile) for random profiles, with the
benchmark's rule (an aggregate, a custom attribute and a 7-day windowed count). The statement
reads only the profile's own rows (primary keys), so its time should not grow with the
application. Usage:

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres \
    python benchmarks/explain.py [--profiles 200000] [--samples 200]
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from evaluate import RULE, seed, vacuum_analyze
from scratch import scratch_database, url_text

from profile_groups.config import Settings
from profile_groups.db import create_engine, create_sessionmaker
from profile_groups.kit.repository import clock
from profile_groups.segmentation.service import check_tree, explain


async def main(n: int, samples: int) -> None:
    async with scratch_database("bench_explain") as url:
        engine = create_engine(Settings(DATABASE_URL=url_text(url), STATEMENT_TIMEOUT_MS=600_000))
        sessionmaker = create_sessionmaker(engine)
        try:
            t0 = time.perf_counter()
            app_id = await seed(engine, n)
            await vacuum_analyze(engine)
            print(f"seeded {n:,} profiles in {time.perf_counter() - t0:.1f} s")
            async with sessionmaker() as session:
                ids = [
                    uuid.UUID(str(i))
                    for i in (
                        await session.execute(
                            text(
                                "SELECT id FROM profiles WHERE application_id = :app "
                                "ORDER BY random() LIMIT :k"
                            ),
                            {"app": app_id, "k": samples},
                        )
                    ).scalars()
                ]
                checked, errors = await check_tree(session, app_id, RULE)
                assert checked is not None, errors
                times, matched = [], 0
                for pid in ids:
                    start = time.perf_counter()
                    as_of = await clock(session)
                    explained = await explain(session, app_id, checked, RULE, pid, as_of)
                    times.append((time.perf_counter() - start) * 1000)
                    assert explained is not None
                    matched += explained.matches
            times.sort()
            p95 = times[int(len(times) * 0.95) - 1]
            print(
                f"explain, {len(times)} random profiles ({matched} matching): "
                f"median {statistics.median(times):.2f} ms, p95 {p95:.2f} ms, "
                f"max {times[-1]:.2f} ms"
            )
        finally:
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.profiles, args.samples))
