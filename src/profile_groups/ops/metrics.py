"""The domain metrics of `/metrics` (docs/operations.md).

Two sources, because the API and the worker are separate processes:

* In-process counters, where the API itself is the source: events accepted / duplicate /
  rejected at ingestion, static member adds / removes. Counted once the request's transaction has
  committed (a rolled-back batch counts nothing).
* Scrape collectors, for what the worker does: read from PostgreSQL and Redis when Prometheus
  scrapes, each in its own bounded read-only transaction (`ScrapeCollector`). `DomainCollector`
  reports evaluations, the schedule, the job queue and the freshness queue. Other packages add
  theirs with `install_metrics(app, TheirCollector())`; one that fails or is slow is reported as
  `profile_groups_metrics_collector_up{collector} 0` and never fails the scrape.
"""

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from arq.connections import ArqRedis
from fastapi import FastAPI
from prometheus_client import REGISTRY, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.config import Settings
from profile_groups.db import AsyncSessionMaker, after_commit
from profile_groups.kit.state import app_state
from profile_groups.models.changes import CHANGES, REASONS
from profile_groups.ops.heartbeat import last_seen
from profile_groups.ops.repository import MetricsRepository
from profile_groups.queue import QUEUE_NAME

log = logging.getLogger("profile_groups.metrics")

# Evaluations are summarised over this window (a gauge per status, not a counter: the history
# is the database's, read at scrape time, and is pruned).
WINDOW = timedelta(minutes=15)
# Each collector's whole run (connect included) and each of its statements are bounded.
COLLECTOR_TIMEOUT_SECONDS = 2.0
STATEMENT_TIMEOUT_MS = 1_000

EVENTS = Counter(
    "profile_groups_events",
    "Events received by the ingestion endpoint, by outcome (accepted, duplicate, rejected).",
    ["outcome"],
)
MEMBER_CHANGES = Counter(
    "profile_groups_member_changes",
    "Static group memberships added or removed through the API.",
    ["change"],
)
for _outcome in ("accepted", "duplicate", "rejected"):
    EVENTS.labels(_outcome)
for _change in ("added", "removed"):
    MEMBER_CHANGES.labels(_change)


def _count_after_commit(session: AsyncSession, counter: Counter, amounts: dict[str, int]) -> None:
    if not any(amounts.values()):
        return

    async def count() -> None:
        for label, amount in amounts.items():
            if amount:
                counter.labels(label).inc(amount)

    after_commit(session, count)


def count_events(session: AsyncSession, *, accepted: int, duplicates: int, rejected: int) -> None:
    """Ingestion: count a batch's outcome once its transaction has committed."""
    _count_after_commit(
        session, EVENTS, {"accepted": accepted, "duplicate": duplicates, "rejected": rejected}
    )


def count_member_changes(session: AsyncSession, *, added: int = 0, removed: int = 0) -> None:
    """Static membership: count adds / removes once the transaction has committed."""
    _count_after_commit(session, MEMBER_CHANGES, {"added": added, "removed": removed})


@dataclass(frozen=True)
class ScrapeContext:
    """What a scrape collector reads from: the API's own pools, so a scrape opens nothing new."""

    sessionmaker: AsyncSessionMaker
    redis: ArqRedis
    settings: Settings


class ScrapeCollector(Protocol):
    """Metrics read at scrape time. `collect` gets a session in a read-only transaction whose
    statements are bounded (STATEMENT_TIMEOUT_MS); its SQL belongs in its package's repository."""

    name: str

    async def collect(self, session: AsyncSession, ctx: ScrapeContext) -> Iterable[Metric]: ...


def _gauge(name: str, doc: str, value: float | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class DomainCollector:
    """Evaluations, the schedule, the job queue, freshness and the worker's heartbeat."""

    name = "domain"

    async def collect(self, session: AsyncSession, ctx: ScrapeContext) -> Iterable[Metric]:
        repo = MetricsRepository(session)
        now = await repo.now()
        window_s = int(WINDOW.total_seconds())

        open_ = _labelled(
            "profile_groups_evaluations_open",
            "Evaluations queued or running now.",
            ["status"],
        )
        oldest_queued = 0.0
        by_status = {row.status: row for row in await repo.open_evaluations()}
        for status in ("queued", "running"):
            row = by_status.get(status)
            open_.add_metric([status], row.count if row else 0)
        if "queued" in by_status:
            oldest_queued = (now - by_status["queued"].oldest_created_at).total_seconds()

        recent = _labelled(
            "profile_groups_evaluations_recent",
            f"Evaluations finished in the last {window_s} s, by status.",
            ["status"],
        )
        duration = _labelled(
            "profile_groups_evaluation_duration_seconds",
            f"Duration of the evaluations finished in the last {window_s} s "
            "(quantile 1 is the longest).",
            ["quantile"],
        )
        profiles = _labelled(
            "profile_groups_evaluation_profiles_recent",
            f"Profiles matched, added and removed by the evaluations that succeeded in the last "
            f"{window_s} s.",
            ["count"],
        )
        rows = {
            row.status: row
            for row in await repo.recent_evaluations(
                now, WINDOW, timedelta(seconds=ctx.settings.job_timeout_seconds)
            )
        }
        for status in ("succeeded", "failed"):
            finished = rows.get(status)
            recent.add_metric([status], finished.count if finished else 0)
        done = rows.get("succeeded")
        for kind in ("matched", "added", "removed"):
            profiles.add_metric([kind], getattr(done, kind) if done else 0)
        durations = [r for r in rows.values() if r.max_ms is not None]
        if durations:
            # The quantiles of the busiest status stand for both (nearly always "succeeded").
            main = max(durations, key=lambda r: r.count)
            for quantile, ms in (("0.5", main.p50_ms), ("0.95", main.p95_ms)):
                duration.add_metric([quantile], (ms or 0) / 1000)
            duration.add_metric(["1"], max(r.max_ms or 0 for r in durations) / 1000)

        changed = _labelled(
            "profile_groups_membership_changes_recent",
            f"Entries and exits of the membership change log in the last {window_s} s, by "
            "reason (manual, evaluation, activity, profile_deleted); counted up to 100,000.",
            ["change", "reason"],
        )
        counts = {(c, r): n for c, r, n in await repo.recent_membership_changes(now, WINDOW)}
        for change in CHANGES:
            for reason in REASONS:
                changed.add_metric([change, reason], counts.get((change, reason), 0))

        due = await repo.due_groups(now)
        changes = await repo.pending_changes()
        queue_jobs = await ctx.redis.zcard(QUEUE_NAME)
        ready_jobs = await ctx.redis.zcount(QUEUE_NAME, "-inf", int(time.time() * 1000))
        seen = await last_seen(ctx.redis)
        return [
            open_,
            recent,
            duration,
            profiles,
            changed,
            _gauge(
                "profile_groups_evaluation_queue_oldest_seconds",
                "Age of the oldest queued evaluation (0 when none is queued).",
                oldest_queued,
            ),
            _gauge(
                "profile_groups_groups_due",
                "Active dynamic groups whose scheduled evaluation is due and not yet queued.",
                due.count,
            ),
            _gauge(
                "profile_groups_groups_due_oldest_seconds",
                "How long the longest-waiting due group has been due (0 when none is).",
                (now - due.oldest_due_at).total_seconds() if due.oldest_due_at else 0.0,
            ),
            _gauge("profile_groups_queue_jobs", "Jobs in the worker's queue (Redis).", queue_jobs),
            _gauge(
                "profile_groups_queue_ready_jobs",
                "Jobs in the worker's queue whose time has come (not deferred).",
                ready_jobs,
            ),
            _gauge(
                "profile_groups_profile_changes_pending",
                "Profile changes not yet applied to dynamic groups (counted up to 10,000).",
                changes.count,
            ),
            _gauge(
                "profile_groups_freshness_lag_seconds",
                "Age of the oldest profile change not yet applied to dynamic groups (0 when the "
                "queue is empty).",
                (now - changes.oldest_changed_at).total_seconds()
                if changes.oldest_changed_at
                else 0.0,
            ),
            _gauge(
                "profile_groups_worker_last_seen_seconds",
                "Seconds since a worker last beat (-1 when none ever has).",
                -1.0 if seen is None else max(time.time() - seen, 0.0),
            ),
        ]


def _labelled(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def install_metrics(app: FastAPI, *extra: ScrapeCollector) -> None:
    """The collectors `/metrics` runs at each scrape: the domain's, then `extra` in order."""
    app.state.scrape_collectors = (DomainCollector(), *extra)


def scrape_collectors(app: FastAPI) -> Sequence[ScrapeCollector]:
    collectors: Sequence[ScrapeCollector] = getattr(app.state, "scrape_collectors", ())
    return collectors


async def _run(collector: ScrapeCollector, ctx: ScrapeContext) -> list[Metric]:
    async with ctx.sessionmaker() as session, session.begin():
        await session.connection(execution_options={"postgresql_readonly": True})
        await MetricsRepository(session).bound(STATEMENT_TIMEOUT_MS)
        return list(await collector.collect(session, ctx))


class _Families:
    """A registry-like view of families already collected (what generate_latest reads)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


async def render(app: FastAPI) -> bytes:
    """The exposition of `/metrics`: this process's metrics, then every scrape collector's."""
    state = app_state(app)
    ctx = ScrapeContext(state.sessionmaker, state.arq, state.settings)
    collectors = scrape_collectors(app)
    up = GaugeMetricFamily(
        "profile_groups_metrics_collector_up",
        "1 when the collector answered within its bound at this scrape, else 0.",
        labels=["collector"],
    )
    families: list[Metric] = []
    # One after the other: a scrape holds at most one pooled connection.
    for collector in collectors:
        try:
            families += await asyncio.wait_for(_run(collector, ctx), COLLECTOR_TIMEOUT_SECONDS)
        except Exception as exc:  # a metric source down is reported, never a failed scrape
            log.warning(
                "metrics collector failed",
                extra={"collector": collector.name, "error": f"{type(exc).__name__}: {exc}"},
            )
            up.add_metric([collector.name], 0)
        else:
            up.add_metric([collector.name], 1)
    families.append(up)
    return generate_latest(REGISTRY) + generate_latest(_Families(families))
