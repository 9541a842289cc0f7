"""The webhooks' scrape collector of /metrics (docs/operations.md, docs/webhooks.md)."""

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncSession

from profile_groups.ops.metrics import ScrapeContext
from profile_groups.webhooks.repository import delivery_stats


class WebhookCollector:
    """Deliveries by status, and the age of the oldest pending delivery of an active webhook
    (0 when none is pending): the delivery lag."""

    name = "webhooks"

    async def collect(self, session: AsyncSession, ctx: ScrapeContext) -> Iterable[Metric]:
        stats = await delivery_stats(session)
        deliveries = GaugeMetricFamily(
            "profile_groups_webhook_deliveries",
            "Webhook deliveries in the delivery log, by status.",
            labels=["status"],
        )
        for status, count in stats.by_status.items():
            deliveries.add_metric([status], count)
        oldest = GaugeMetricFamily(
            "profile_groups_webhook_oldest_pending_seconds",
            "Age of the oldest pending delivery of an active webhook (0 when none).",
            value=stats.oldest_pending_age_seconds or 0.0,
        )
        return [deliveries, oldest]
