"""Event ingestion endpoint (docs/activity.md)."""

from profile_groups.activity import service
from profile_groups.activity.schemas import EventBatch, EventBatchResult
from profile_groups.applications.auth import AppDep
from profile_groups.kit.errors import Conflict, responses
from profile_groups.kit.routing import api_router
from profile_groups.kit.state import SessionDep

router = api_router("activity")


@router.post(
    "/events/",
    response_model=EventBatchResult,
    # A batch that keeps colliding with concurrent writers after its retries (kit/retry.py).
    responses=responses(Conflict),
    summary="Ingest a batch of activity events",
)
async def ingest_events(batch: EventBatch, app: AppDep, session: SessionDep) -> EventBatchResult:
    """Store up to 1,000 events (docs/activity.md).

    Each event has a `type`, exactly one of `profile_id` / `custom_id`, an optional `occurred_at`
    (default now; more than 5 minutes in the future is refused), `value` and `properties` where the
    type needs them, and an optional client `id`. Items are checked one by one: bad ones are listed
    under `rejected` with their index and the reason, good ones are kept. An event whose `id` was
    already accepted counts under `duplicates` and changes nothing, so a batch can be retried
    safely. Events may arrive in any order and in any batching: attributes depend only on the set
    of events.
    """
    return await service.ingest(session, app, batch.events)
